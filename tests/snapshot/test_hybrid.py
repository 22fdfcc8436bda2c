"""HybridValidator: the snapshot answers, the gateway only on a miss; counts exact."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest

import maxa_async as maxa
from maxa_async.snapshot import HybridStats, HybridValidator, SnapshotStore
from maxa_async.testing import FakeGateway, Term

CT = "ContactType"


def _ct(value: str, code: str, terminology: str = CT) -> maxa.CodedText:
    return maxa.CodedText(value, terminology, code)


def _invariants(stats: HybridStats) -> None:
    assert stats.items == stats.invalid_input + stats.offline_hits + stats.online_calls
    assert stats.offline_hits == stats.offline_valid + stats.offline_invalid
    assert stats.online_calls == (
        stats.code_misses + stats.terminology_misses + stats.stale_rechecks
    )
    assert stats.online_calls == stats.online_valid + stats.online_invalid + stats.online_errors


async def test_counts_are_exact_and_only_misses_reach_the_gateway(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, CT)
    gateway.add_terms(CT, [Term("15", "تلکس"), Term("16", "بی‌سیم")])  # newer than the snapshot
    hybrid = HybridValidator(store, client)
    items: list[Any] = [
        _ct("تلفن منزل", "1"),  # offline valid
        _ct(" تلفن محل کار ", " 2 "),  # offline valid (stripped)
        _ct("تلفن منزل", "2"),  # offline invalid: the snapshot has code 2
        _ct("تلکس", "15"),  # code miss -> gateway: valid
        _ct("غلط", "16"),  # code miss -> gateway: invalid
        _ct("هیچ", "404"),  # code miss -> gateway: invalid
        _ct("اسلام", "1", "thritaEHR.Religion"),  # terminology miss -> gateway: valid
        _ct("", "1"),  # bad input: no lookup, no request
        "not a coded text",
    ]
    before = gateway.stats.requests_by_operation.get("ValidateCts", 0)

    async def produce() -> AsyncIterator[Any]:
        for item in items:
            yield item

    outcomes = [o async for o in hybrid.validate_many(produce())]

    assert [o.item for o in outcomes] == items
    assert [o.valid for o in outcomes] == [True, True, False, True, False, False, True, None, None]
    assert all(isinstance(o.error, maxa.InvalidInputError) for o in outcomes[-2:])
    assert hybrid.stats == HybridStats(
        items=9,
        invalid_input=2,
        offline_hits=3,
        offline_valid=2,
        offline_invalid=1,
        online_calls=4,
        online_valid=2,
        online_invalid=2,
        online_errors=0,
        code_misses=3,
        terminology_misses=1,
        stale_rechecks=0,
    )
    _invariants(hybrid.stats)
    assert gateway.stats.requests_by_operation["ValidateCts"] - before == 4
    assert hybrid.stats.as_dict()["online_calls"] == 4


async def test_many_items_keep_order_and_exact_counts(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, CT)
    new_terms = [Term(str(100 + i), f"نوع {i}") for i in range(300)]
    gateway.add_terms(CT, new_terms)
    known = (await store.index(CT)).terms()
    items: list[maxa.CodedText] = []
    for i in range(3000):
        if i % 10 == 0:  # 300 distinct misses, valid online
            term = new_terms[i // 10]
            items.append(_ct(term.value, term.code))
        else:
            term_ct = known[i % len(known)]
            value = term_ct.value if i % 7 else term_ct.value + "!"
            items.append(_ct(value, term_ct.coded_string))
    hybrid = HybridValidator(store, client, window=64)
    before = gateway.stats.requests_by_operation.get("ValidateCts", 0)
    done: list[int] = []

    outcomes = [o async for o in hybrid.validate_many(iter(items), progress=done.append)]

    expected_invalid = sum(1 for i in range(3000) if i % 10 and not i % 7)
    assert [o.item for o in outcomes] == items
    assert [o.valid for o in outcomes] == [bool(i % 10 == 0 or i % 7) for i in range(3000)]
    assert (hybrid.stats.online_calls, hybrid.stats.online_valid) == (300, 300)
    assert hybrid.stats.offline_hits == 2700
    assert hybrid.stats.offline_invalid == expected_invalid
    assert gateway.stats.requests_by_operation["ValidateCts"] - before == 300
    assert done[-1] == 3000 and len(done) == 3000
    _invariants(hybrid.stats)


async def test_a_different_value_is_false_offline_unless_older_than_max_age(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, CT)
    gateway.change_term(CT, "4", "دورنگار منزل")  # changed upstream after the snapshot
    item = _ct("دورنگار منزل", "4")

    trusting = HybridValidator(store, client)
    assert await trusting.validate(item) is False  # definitive offline: the snapshot has code 4
    assert (trusting.stats.offline_invalid, trusting.stats.online_calls) == (1, 0)

    fresh_enough = HybridValidator(store, client, max_age=dt.timedelta(hours=1))
    assert await fresh_enough.validate(item) is False
    assert fresh_enough.stats.stale_rechecks == 0

    strict = HybridValidator(store, client, max_age=0)
    assert await strict.validate(item) is True  # rechecked: the gateway has the new value
    assert await strict.validate(_ct("غلط", "4")) is False  # rechecked, False online too
    # A match is never rechecked: the old value still passes until the next sync.
    assert await strict.validate(_ct("فاکس منزل", "4")) is True
    assert strict.stats.stale_rechecks == strict.stats.online_calls == 2
    assert (strict.stats.online_valid, strict.stats.online_invalid) == (1, 1)
    assert strict.stats.offline_valid == 1
    _invariants(strict.stats)

    await store.sync(client, CT)
    assert await trusting.validate(item) is True
    assert await trusting.validate(_ct("فاکس منزل", "4")) is False
    assert trusting.stats.online_calls == 0


async def test_gateway_down_offline_hits_still_answer(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, CT)
    gateway.config.error_rate = 1.0
    hybrid = HybridValidator(store, client)
    items = [_ct("تلفن منزل", "1"), _ct("x", "999"), _ct("فاکس منزل", "4")]

    outcomes = [o async for o in hybrid.validate_many(items)]

    assert [o.valid for o in outcomes] == [True, None, True]
    assert isinstance(outcomes[1].error, maxa.ServiceError)
    assert (hybrid.stats.online_errors, hybrid.stats.offline_hits) == (1, 2)
    _invariants(hybrid.stats)
    with pytest.raises(maxa.ServiceError):
        await hybrid.validate(_ct("x", "998"))
    with pytest.raises(maxa.InvalidInputError):
        await hybrid.validate(_ct("x", ""))


def test_options_are_checked(store: SnapshotStore, client: maxa.MaxaClient) -> None:
    for bad in ({"max_age": -1}, {"max_age": "1h"}, {"window": 0}, {"window": True}):
        with pytest.raises(maxa.InvalidInputError):
            HybridValidator(store, client, **bad)
