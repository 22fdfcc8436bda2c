"""Offline answers equal the gateway's: lookup on every term of a version, validate on a
few hundred varied items, bad input refused with the client's own errors."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import maxa_async as maxa
from maxa_async.snapshot import NoSnapshotError, SnapshotStore
from maxa_async.testing import FakeGateway, GatewayConfig, Term

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Persian terms with the spellings that trip exact comparison: Arabic yeh/kaf, ZWNJ.
PERSIAN = [
    Term("1", "کپسول خوراکی"),
    Term("2", "قرص روکش\u200cدار"),  # ZWNJ
    Term("3", "شربت كودكان"),  # Arabic kaf
    Term("4", "  محلول تزريقي  "),  # Arabic yeh, padded
    Term("5", "Tablet Film-Coated"),
]

#: Terms no valid input can match or even ask for: a blank value, an over-long code.
EDGE = [Term("blank", "   "), Term("A", "Alpha"), Term("L" * 300, "Long"), Term("T", "\tTab\n")]


class MyCodedText(maxa.CodedText):
    """A subclass: accepted by the client's checks, so by the store too."""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[FakeGateway, maxa.MaxaClient, SnapshotStore]]:
    path: Path = tmp_path_factory.mktemp("answers") / "maxa.db"
    async with FakeGateway(GatewayConfig(seed=7)) as gateway:
        gateway.add_version("DrugForm", "1", PERSIAN)
        gateway.add_version("Edge", "1", EDGE)
        async with (
            maxa.MaxaClient(
                gateway.credentials, base_url=gateway.base_url, retry=maxa.RetryPolicy.for_tests()
            ) as client,
            SnapshotStore.open(path) as store,
        ):
            for terminology in ("eRx", "ContactType", "DrugForm", "Edge"):
                await store.pull(client, terminology)
            yield gateway, client, store


def _variants(term: maxa.CodedText, rng: random.Random) -> list[maxa.CodedText]:
    value, tid, code = term.value, term.terminology_id, term.coded_string
    return [
        term,
        maxa.CodedText(value + " X", tid, code),  # wrong value
        maxa.CodedText(f"  {value}\u00a0", tid.upper(), f" {code} "),  # padded: still valid
        maxa.CodedText(value.lower(), tid, code),  # case counts
        maxa.CodedText(value.replace(" ", "  ", 1), tid, code),  # inner space counts
        maxa.CodedText(value + "\u200c", tid, code),  # ZWNJ is not white space
        maxa.CodedText(value, f" {tid.lower()}", code + "0" * rng.randint(1, 3)),  # other code
    ]


async def test_lookup_equals_the_gateway_on_every_term_of_the_version(world: Any) -> None:
    _, client, store = world
    terms = await client.terminologies_term_by_version("eRx", version="10000")
    index = await store.index("eRx")

    assert len(terms) == len(index) == 50_000
    assert all(index.lookup(t.coded_string) == t.value for t in terms)
    assert sorted(index.terms(), key=lambda t: t.coded_string) == sorted(
        terms, key=lambda t: t.coded_string
    )
    assert await store.lookup("ERX", " 60281 ") == (
        "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"
    )
    assert await store.lookup("eRx", "1") is None
    for code in ("1", "60002"):
        assert await store.lookup("ContactType", code) == await _gateway_lookup(client, code)


async def _gateway_lookup(client: maxa.MaxaClient, code: str) -> str | None:
    try:
        return await client.terminology("ContactType", code)
    except maxa.NotFoundError:
        return None


async def test_validate_equals_the_gateway_on_a_varied_sample(world: Any) -> None:
    gateway, client, store = world
    rng = random.Random(5)
    erx = (await store.index("eRx")).terms()
    sample = rng.sample(erx, 40) + (await store.index("ContactType")).terms()
    sample += (await store.index("DrugForm")).terms()
    items = [variant for term in sample for variant in _variants(term, rng)]
    items += [
        maxa.CodedText("کپسول خوراكی", "DrugForm", "1"),  # Arabic kaf where Persian is stored
        maxa.CodedText("شربت کودکان", "DrugForm", "3"),  # Persian kaf where Arabic is stored
        maxa.CodedText("محلول تزريقي", "drugform", "4"),  # stored padded: equal once stripped
        maxa.CodedText("قرص روکشدار", "DrugForm", "2"),  # ZWNJ missing
    ]
    assert len(items) >= 300
    before = gateway.stats.requests_by_operation.get("ValidateCts", 0)

    online = [o async for o in client.validate_many(items)]
    offline = [o async for o in store.validate_many(items)]

    sent = gateway.stats.requests_by_operation["ValidateCts"] - before
    assert 300 <= sent <= len(items)  # identical concurrent calls share one request
    assert [o.error for o in online] == [None] * len(items)
    assert [o.valid for o in offline] == [o.valid for o in online]
    assert [o.item for o in offline] == items
    assert 0 < sum(bool(o.valid) for o in offline) < len(items)
    assert list(store.validate_many_sync(items)) == offline
    for item, outcome in zip(items[:60], online, strict=False):
        assert await store.validate(item) is outcome.valid


BAD_INPUTS = [
    "not a CodedText",
    maxa.CodedText("   ", "eRx", "60002"),
    maxa.CodedText("x" * 9000, "eRx", "60002"),
    maxa.CodedText("value", "", "60002"),
    maxa.CodedText("value", "thrिताEHR.Religion", "1"),  # the guide's corrupted id
    maxa.CodedText("value", "eRx", " "),
    maxa.CodedText("value", "eRx", "6" * 300),
    maxa.CodedText(None, "eRx", "60002"),  # type: ignore[arg-type]
    maxa.CodedText("value", 7, "60002"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
async def test_bad_input_refused_with_the_clients_error(world: Any, bad: Any) -> None:
    _, client, store = world
    with pytest.raises(maxa.InvalidInputError) as online:
        await client.validate_cts(bad)
    with pytest.raises(maxa.InvalidInputError) as offline:
        await store.validate(bad)
    assert offline.value.field == online.value.field
    assert str(offline.value) == str(online.value)
    [outcome] = [o async for o in store.validate_many([bad])]
    assert outcome.valid is None and isinstance(outcome.error, maxa.InvalidInputError)
    assert outcome.error.field == online.value.field


async def test_bad_lookup_input_names_the_field(world: Any) -> None:
    _, _, store = world
    with pytest.raises(maxa.InvalidInputError) as caught:
        await store.lookup("eRx", "  ")
    assert caught.value.field == "coded_string"
    with pytest.raises(maxa.InvalidInputError) as caught:
        await store.lookup("e\u0631x", "1")
    assert caught.value.field == "terminology"
    with pytest.raises(maxa.InvalidInputError) as caught:
        await store.pull(world[1], "eRx", version=" ")
    assert caught.value.field == "version"


async def test_validate_many_mixes_terminologies_and_async_iterables(world: Any) -> None:
    _, _, store = world
    items = [
        maxa.CodedText("تلفن منزل", "ContactType", "1"),
        maxa.CodedText("ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL", "ERX", "60002"),
        maxa.CodedText("اسلام", "thritaEHR.Religion", "1"),  # never pulled
        maxa.CodedText("تلفن منزل", "ContactType", "2"),
        "garbage",
    ]

    async def produce() -> AsyncIterator[Any]:
        for item in items:
            yield item

    seen: list[int] = []
    outcomes = [o async for o in store.validate_many(produce(), progress=seen.append)]

    assert [o.valid for o in outcomes] == [True, True, None, False, None]
    assert isinstance(outcomes[2].error, NoSnapshotError)
    assert outcomes[2].error.terminology_id == "thritaEHR.Religion"
    assert isinstance(outcomes[4].error, maxa.InvalidInputError)
    assert all(isinstance(o, maxa.ValidationOutcome) for o in outcomes)
    assert seen == [1, 2, 3, 4, 5]
    assert [(o.valid, type(o.error)) for o in store.validate_many_sync(items)] == [
        (o.valid, type(o.error)) for o in outcomes
    ]


async def test_index_validate_refuses_another_terminology(world: Any) -> None:
    _, _, store = world
    index = await store.index("contacttype")
    assert index.validate(maxa.CodedText(" تلفن منزل ", "CONTACTTYPE", "1")) is True
    with pytest.raises(maxa.InvalidInputError) as caught:
        index.validate(maxa.CodedText("x", "eRx", "1"))
    assert caught.value.field == "coded_text.terminology_id"
    assert "1" in index and " 1 " in index and "0" not in index and 5 not in index
    assert repr(index) == "TerminologyIndex('ContactType', version='1', terms=14)"


async def test_search_value_normalises_persian(world: Any) -> None:
    _, _, store = world

    async def codes(text: str, **options: Any) -> list[str]:
        return [t.coded_string for t in await store.search_value("DrugForm", text, **options)]

    assert await codes("كپسول") == ["1"]  # Arabic kaf in the query
    assert await codes("روکشدار") == ["2"]  # ZWNJ in the value, none in the query
    assert await codes("روکش\u200cدار") == ["2"]
    assert await codes("شربت کودکان") == ["3"]  # Persian kaf finds the Arabic spelling
    assert await codes("محلول   تزریقی") == ["4"]  # white space and Persian yeh
    assert await codes("tablet film") == ["5"]  # casefolded
    assert await codes("coated tablet") == ["5"]  # every word, in any order
    assert await codes("شربت کودکان", normalize=False) == []  # exact: not the same letters
    assert await codes("شربت كودكان", normalize=False) == ["3"]
    [term] = await store.search_value("drugform", "كودك")
    assert term == maxa.CodedText("شربت كودكان", "DrugForm", "3")  # the value as stored
    # search finds it, validate stays exact
    assert not await store.validate(maxa.CodedText("شربت کودکان", "DrugForm", "3"))


async def test_search_value_ranks_and_limits(world: Any) -> None:
    _, _, store = world
    hits = await store.search_value("eRx", "acetaminophen 100 mg", limit=5)
    assert len(hits) == 5
    assert all("ACETAMINOPHEN 100 mg" in t.value for t in hits)
    exact = await store.search_value("ContactType", "تلفن منزل")
    assert [t.coded_string for t in exact][:1] == ["1"]
    for bad, field in ((" \u200c ", "text"), (None, "text")):
        with pytest.raises(maxa.InvalidInputError) as caught:
            await store.search_value("eRx", bad)
        assert caught.value.field == field
    with pytest.raises(maxa.InvalidInputError) as caught:
        await store.search_value("eRx", "x", limit=0)
    assert caught.value.field == "limit"


async def test_edge_terms_answer_like_the_gateway_in_every_path(world: Any) -> None:
    _, client, store = world
    items: list[Any] = [
        maxa.CodedText("Alpha", "Edge", "A"),
        maxa.CodedText(" Alpha\u3000", "Edge", "A"),  # ideographic space is white space
        maxa.CodedText("alpha", "Edge", "A"),
        MyCodedText("Alpha", "Edge", "A"),
        maxa.CodedText("Tab", "EDGE", "T"),  # stored with a tab and a newline around it
        maxa.CodedText("\tTab\n", "edge", "T"),
        maxa.CodedText("x", "Edge", "blank"),  # blank stored value never matches
        maxa.CodedText("   ", "Edge", "blank"),  # blank input: refused
        maxa.CodedText("Long", "Edge", "L" * 300),  # code too long to ask for: refused
        maxa.CodedText(["Alpha"], "Edge", "A"),  # type: ignore[arg-type]  # not a str: refused
        maxa.CodedText("Alpha", "Edge", ["A"]),  # type: ignore[arg-type]  # unhashable: refused
    ]
    online = [o async for o in client.validate_many(items)]
    for answers in (
        [o async for o in store.validate_many(items)],
        list(store.validate_many_sync(items)),
    ):
        assert [o.valid for o in answers] == [o.valid for o in online]
        assert [o.valid for o in answers][:7] == [True, True, False, True, True, True, False]
        assert [getattr(o.error, "field", None) for o in answers] == [
            getattr(o.error, "field", None) for o in online
        ]
    assert await store.lookup("Edge", "blank") == "   "
    assert await store.lookup("Edge", "T") == "\tTab\n"  # values kept exactly as sent
    with pytest.raises(maxa.InvalidInputError):
        await store.lookup("Edge", "L" * 300)
