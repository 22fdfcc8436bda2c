"""The bulk runs of the store, the hybrid and the client share one engine: offline answers
cost no task, gateway calls run on a few workers, and the store's public methods are all
the hybrid needs. Counts are exact: tasks created (by their coroutine's name), requests."""

from __future__ import annotations

from typing import Any

import maxa_async as maxa
from maxa_async.snapshot import HybridValidator, SnapshotStore, TerminologyIndex
from maxa_async.testing import FakeGateway, Term

CT = "ContactType"


async def _items(store: SnapshotStore, count: int) -> list[maxa.CodedText]:
    """``count`` items over the snapshot's terms; every third has a wrong value."""
    terms = (await store.index(CT)).terms()
    return [
        maxa.CodedText(
            term.value + (" x" if i % 3 == 0 else ""), term.terminology_id, term.coded_string
        )
        for i, term in ((i, terms[i % len(terms)]) for i in range(count))
    ]


async def test_offline_runs_create_no_task(
    client: maxa.MaxaClient, store: SnapshotStore, tasks_created: list[str]
) -> None:
    await store.pull(client, CT)
    items = await _items(store, 3000)
    hybrid = HybridValidator(store, client)
    tasks_created.clear()

    offline = [o async for o in store.validate_many(items)]
    through_hybrid = [o async for o in hybrid.validate_many(items)]

    assert tasks_created == []
    assert [o.valid for o in offline] == [i % 3 != 0 for i in range(3000)]
    assert through_hybrid == offline == list(store.validate_many_sync(items))
    assert (hybrid.stats.offline_hits, hybrid.stats.online_calls) == (3000, 0)


async def test_a_terminology_is_loaded_in_turn_by_one_task(
    client: maxa.MaxaClient, snapshot_path: Any, tasks_created: list[str]
) -> None:
    async with SnapshotStore.open(snapshot_path) as store:
        await store.pull(client, CT)
        items = await _items(store, 500)
    async with SnapshotStore.open(snapshot_path) as store:  # nothing in memory yet
        tasks_created.clear()
        outcomes = [o async for o in store.validate_many(items)]
    assert [o.item for o in outcomes] == items
    assert tasks_created == ["SnapshotStore._run"]  # the one load, nothing per item


async def test_gateway_misses_run_on_workers_started_as_needed(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore, tasks_created: list[str]
) -> None:
    await store.pull(client, CT)
    gateway.add_terms(CT, [Term("900", "نو")])  # newer than the snapshot
    items = await _items(store, 2000)
    items[700] = maxa.CodedText("نو", CT, "900")  # the one code the snapshot lacks
    hybrid = HybridValidator(store, client, window=64)
    before = gateway.stats.requests_by_operation.get("ValidateCts", 0)
    tasks_created.clear()

    outcomes = [o async for o in hybrid.validate_many(items)]

    assert [o.item for o in outcomes] == items
    assert outcomes[700].valid is True
    assert gateway.stats.requests_by_operation["ValidateCts"] - before == 1
    # the first worker asks the gateway; one more answers the next items from the
    # snapshot meanwhile; nothing per item
    assert [name for name in tasks_created if name == "_Pool._work"] == ["_Pool._work"] * 2
    assert (hybrid.stats.code_misses, hybrid.stats.offline_hits) == (1, 1999)


async def test_bad_input_to_the_client_is_answered_without_a_task_or_a_request(
    gateway: FakeGateway, client: maxa.MaxaClient, tasks_created: list[str]
) -> None:
    bad: list[Any] = [maxa.CodedText("", CT, "1"), "not a coded text", None]
    before = gateway.stats.requests
    tasks_created.clear()
    outcomes = [o async for o in client.validate_many(bad * 100)]
    assert [o.item for o in outcomes] == bad * 100
    assert all(isinstance(o.error, maxa.InvalidInputError) for o in outcomes)
    assert tasks_created == []
    assert gateway.stats.requests == before


async def test_the_store_answers_what_the_hybrid_asks_through_public_methods(
    client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, CT)
    assert store.loaded_index(" contacttype ") is not None  # the pull left it in memory
    await store.reload()
    assert store.loaded_index(" contacttype ") is None  # not in memory until asked
    assert store.known_missing("thritaEHR.Religion") is False  # not looked for yet
    index = await store.find_index(" contacttype ")
    assert isinstance(index, TerminologyIndex)
    assert store.loaded_index(CT) is store.loaded_index(" CONTACTTYPE ") is index
    assert store.loaded_index(42) is None and store.loaded_index("") is None
    assert await store.find_index("thritaEHR.Religion") is None
    assert store.known_missing(" thritaEHR.Religion ") is True
    await store.reload()
    assert store.loaded_index(CT) is None and not store.known_missing("thritaEHR.Religion")


async def test_index_answer_says_none_where_it_cannot_answer(
    client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, CT)
    index = await store.index(CT)
    term = index.terms()[0]
    same = maxa.CodedText(term.value, " contacttype ", term.coded_string)
    answers = [
        index.answer(term),
        index.answer(same),
        index.answer(maxa.CodedText(f" {term.value}\u00a0", CT, term.coded_string)),
        index.answer(maxa.CodedText(term.value + "!", CT, term.coded_string)),
        index.answer(maxa.CodedText(term.value, CT, "no such code")),
        index.answer(maxa.CodedText(term.value, "eRx", term.coded_string)),
    ]
    assert [None if a is None else a.valid for a in answers] == [
        True,
        True,
        True,
        False,
        None,
        None,
    ]
    assert [a.item for a in answers[:4] if a is not None] == [
        term,
        same,
        maxa.CodedText(f" {term.value}\u00a0", CT, term.coded_string),
        maxa.CodedText(term.value + "!", CT, term.coded_string),
    ]
    for bad in (maxa.CodedText("", CT, term.coded_string), "x", None):
        refused = index.answer(bad)
        assert refused is not None and refused.item is bad
        assert isinstance(refused.error, maxa.InvalidInputError) and refused.valid is None
    # a value the wire cannot carry is refused as the client refuses it, not just False
    unsendable = index.answer(maxa.CodedText(term.value + "\x00", CT, term.coded_string))
    assert unsendable is not None and isinstance(unsendable.error, maxa.InvalidInputError)
