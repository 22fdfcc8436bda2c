"""maxa_async.bulk: the ordered, bounded bulk engine behind every validate_many.

Each test drives ``ordered`` with plain functions (no gateway), so every count is exact:
items taken from the source, ``later`` calls started and running, tasks created.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

from maxa_async.bulk import make_outcome, ordered, ordered_sync
from maxa_async.errors import ClientClosedError, InvalidInputError
from maxa_async.models import ValidationOutcome


class Source:
    """A plain iterable that counts the items taken from it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.taken = 0

    def __iter__(self) -> Iterator[int]:
        for item in range(self.count):
            self.taken += 1
            yield item


class Gated:
    """``now``/``later`` for ints: a negative item is bad input (answered at once), an item
    in ``fast`` is answered at once, any other waits in ``later`` until its gate opens."""

    def __init__(self, fast: frozenset[int] = frozenset(), *, open_all: bool = False) -> None:
        self.fast = fast
        self.gates: dict[int, asyncio.Event] = {}
        self.started: list[int] = []
        self.running = 0
        self.most_running = 0
        self.cancelled = 0
        self.open_all = open_all

    def gate(self, item: int) -> asyncio.Event:
        return self.gates.setdefault(item, asyncio.Event())

    def now(self, item: int) -> ValidationOutcome | str:
        if item < 0:
            return ValidationOutcome(item, None, InvalidInputError("item", "is negative"))
        if item in self.fast:
            return ValidationOutcome(item, item % 2 == 0)
        return "ask"

    async def later(self, item: int, pending: str) -> ValidationOutcome:
        self.started.append(item)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.open_all:
                await asyncio.sleep(0)  # still a real await: other items overlap it
            else:
                await self.gate(item).wait()
            return ValidationOutcome(item, item % 2 == 0)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_outcomes_come_in_input_order_when_later_ones_finish_first() -> None:
    answers = Gated()
    run = ordered(range(6), answers.now, answers.later, window=10, workers=6)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    assert sorted(answers.started) == [0, 1, 2, 3, 4, 5]
    for item in reversed(range(6)):  # the last item finishes first, the first last
        answers.gate(item).set()
        await _settle()
    outcomes = await consumer
    assert [o.item for o in outcomes] == [0, 1, 2, 3, 4, 5]
    assert [o.valid for o in outcomes] == [True, False, True, False, True, False]
    assert answers.most_running == 6


async def _collect(run: AsyncIterator[ValidationOutcome]) -> list[ValidationOutcome]:
    return [outcome async for outcome in run]


async def test_workers_take_at_most_a_window_ahead_of_the_consumer() -> None:
    source = Source(1000)
    answers = Gated(fast=frozenset(range(1, 1000)))  # only item 0 is slow
    run = ordered(source, answers.now, answers.later, window=5, workers=3)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    # item 0 waits; items 1..4 were taken and answered, nothing beyond the window
    assert (source.taken, answers.started) == (5, [0])
    answers.gate(0).set()
    outcomes = await consumer
    assert [o.item for o in outcomes] == list(range(1000))
    assert source.taken == 1000


async def test_one_slow_item_holds_back_only_its_own_turn() -> None:
    answers = Gated()
    run = ordered(range(4), answers.now, answers.later, window=8, workers=4)
    got: list[int] = []

    async def consume() -> None:
        async for outcome in run:
            got.append(outcome.item)

    consumer = asyncio.ensure_future(consume())
    await _settle()
    for item in (1, 2, 3):
        answers.gate(item).set()
    await _settle()
    assert got == []  # item 0 is still out: nothing after it is yielded before it
    assert answers.running == 1  # ... but 1, 2 and 3 are done, not waiting behind it
    answers.gate(0).set()
    await consumer
    assert got == [0, 1, 2, 3]


async def test_at_most_workers_laters_run_at_once() -> None:
    answers = Gated(open_all=True)
    outcomes = await _collect(ordered(range(200), answers.now, answers.later, window=50, workers=4))
    assert [o.item for o in outcomes] == list(range(200))
    assert answers.most_running == 4
    assert len(answers.started) == 200


async def test_a_bad_item_yields_one_error_outcome_and_the_run_goes_on() -> None:
    answers = Gated(open_all=True)
    items = [0, -1, 1, 2, -2, 3]
    seen: list[int] = []
    outcomes = await _collect(
        ordered(items, answers.now, answers.later, window=3, workers=2, progress=seen.append)
    )
    assert [o.item for o in outcomes] == items
    assert [type(o.error) for o in outcomes] == [
        type(None),
        InvalidInputError,
        type(None),
        type(None),
        InvalidInputError,
        type(None),
    ]
    assert [o.valid for o in outcomes] == [True, None, False, True, None, False]
    assert sorted(answers.started) == [0, 1, 2, 3]  # the bad ones never reached later()
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_cancelling_the_consumer_mid_run_leaves_no_task() -> None:
    answers = Gated()
    run = ordered(range(100), answers.now, answers.later, window=10, workers=4)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    assert answers.running == 4
    assert len(_other_tasks()) == 5  # the consumer and its four workers
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert answers.cancelled == 4
    assert _other_tasks() == set()


async def test_leaving_the_loop_early_leaves_no_task() -> None:
    answers = Gated(fast=frozenset(range(0, 100, 2)))
    for item in range(1, 100, 2):
        answers.gate(item).set()
    answers.gate(51).clear()  # item 51 never finishes
    run = ordered(range(100), answers.now, answers.later, window=16, workers=3)
    got = []
    async for outcome in run:
        got.append(outcome.item)
        if outcome.item == 50:
            break
    await run.aclose()
    assert got == list(range(51))
    assert answers.cancelled == 1  # 51 was still waiting
    assert _other_tasks() == set()


async def test_an_error_raised_by_later_ends_the_run_and_leaves_no_task() -> None:
    async def later(item: int, pending: str) -> ValidationOutcome:
        if item == 3:
            raise ClientClosedError("closed")
        await asyncio.sleep(0)
        return ValidationOutcome(item, True)

    got = []
    with pytest.raises(ClientClosedError):
        async for outcome in ordered(range(50), Gated().now, later, window=4, workers=2):
            got.append(outcome.item)
    assert got == [0, 1, 2]
    assert _other_tasks() == set()


@pytest.mark.parametrize("slow", [False, True])
async def test_a_failing_source_is_raised_after_the_outcomes_before_it(slow: bool) -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise OSError("the file went away")

    answers = Gated(fast=frozenset() if slow else frozenset(range(5)), open_all=True)
    got = []
    with pytest.raises(OSError, match="went away"):
        async for outcome in ordered(items(), answers.now, answers.later, window=2, workers=2):
            got.append(outcome.item)
            await _settle()  # the pooled run files each outcome before the source fails
    assert got == [0, 1, 2, 3, 4]
    assert _other_tasks() == set()


async def test_an_async_source_keeps_order_and_the_window() -> None:
    taken = 0

    async def items() -> AsyncIterator[int]:
        nonlocal taken
        for item in range(300):
            taken += 1
            await asyncio.sleep(0)
            yield item

    answers = Gated(fast=frozenset(range(1, 300)))
    run = ordered(items(), answers.now, answers.later, window=7, workers=3)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    assert taken == 7  # item 0 waits: 1..6 taken, nothing beyond the window
    answers.gate(0).set()
    outcomes = await consumer
    assert [o.item for o in outcomes] == list(range(300))


async def test_answers_given_at_once_create_no_task(tasks_created: list[str]) -> None:
    tasks_created.clear()  # the test's own task
    answers = Gated(fast=frozenset(range(10_000)))
    seen: list[int] = []
    outcomes = await _collect(
        ordered(
            Source(10_000), answers.now, answers.later, window=4, workers=4, progress=seen.append
        )
    )
    assert len(outcomes) == 10_000 and seen[-1] == 10_000
    assert answers.started == []
    assert tasks_created == []


async def test_later_in_turn_creates_no_task(tasks_created: list[str]) -> None:
    tasks_created.clear()  # the test's own task
    answers = Gated(open_all=True)

    def needs_worker(pending: str) -> bool:
        return False

    outcomes = await _collect(
        ordered(
            range(20), answers.now, answers.later, needs_worker=needs_worker, window=4, workers=4
        )
    )
    assert [o.item for o in outcomes] == list(range(20))
    assert answers.started == list(range(20))  # one at a time, in turn
    assert answers.most_running == 1
    assert tasks_created == []


async def test_workers_start_only_as_they_are_needed(tasks_created: list[str]) -> None:
    tasks_created.clear()  # the test's own task
    answers = Gated(fast=frozenset(range(1, 500)), open_all=True)  # one slow item, at 0
    outcomes = await _collect(
        ordered(range(500), answers.now, answers.later, window=16, workers=32)
    )
    assert [o.item for o in outcomes] == list(range(500))
    # the first worker answers item 0; one more takes the others meanwhile
    assert tasks_created == ["_Pool._work", "_Pool._work"]


def test_the_plain_generator_answers_in_turn() -> None:
    settled: list[int] = []

    def settle(item: int, pending: str) -> ValidationOutcome:
        settled.append(item)
        return ValidationOutcome(item, True)

    seen: list[int] = []
    answers = Gated(fast=frozenset(range(0, 10, 3)))
    outcomes = list(ordered_sync(range(-1, 10), answers.now, settle, progress=seen.append))
    assert [o.item for o in outcomes] == list(range(-1, 10))
    assert isinstance(outcomes[0].error, InvalidInputError)
    assert settled == [1, 2, 4, 5, 7, 8]
    assert seen == list(range(1, 12))


@pytest.mark.parametrize("valid", [True, False, None])
def test_make_outcome_equals_the_constructor(valid: bool | None) -> None:
    item = object()
    made = make_outcome(item, valid)
    built = ValidationOutcome(item, valid)
    assert type(made) is ValidationOutcome
    assert (made, hash(made), repr(made)) == (built, hash(built), repr(built))
    assert made.item is item and made.error is None and made.ok
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.valid = not valid  # type: ignore[misc]


async def test_later_work_in_turn_starts_no_worker_in_the_pooled_phase(
    tasks_created: list[str],
) -> None:
    tasks_created.clear()
    answers = Gated()

    def now(item: int) -> ValidationOutcome | str:
        return "load" if item == 1 else "ask"

    def needs_worker(pending: str) -> bool:
        return pending == "ask"

    run = ordered(range(3), now, answers.later, needs_worker=needs_worker, window=8, workers=8)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    # item 0 (a gateway call) started the pool and a second worker; that one waits on
    # item 1 (a load, in turn), so nothing starts a third to take item 2 meanwhile
    assert answers.started == [0, 1]
    assert [name for name in tasks_created if name == "_Pool._work"] == ["_Pool._work"] * 2
    for item in range(3):
        answers.gate(item).set()
    outcomes = await consumer
    assert [o.item for o in outcomes] == [0, 1, 2]


class Room:
    """A ``may_grow`` that says yes ``left`` more times (the client's: a slot nobody
    claims, taken by the worker it lets start)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def __call__(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def test_may_grow_must_agree_before_another_worker_starts() -> None:
    # The client's may_grow says yes only while its limiter has a slot nobody holds: a
    # worker waiting out a Retry-After holds none and is replaced; otherwise no more start.
    room = Room(2)  # workers may_grow still allows
    answers = Gated()
    run = ordered(range(10), answers.now, answers.later, window=10, workers=8, may_grow=room)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    assert answers.most_running == 3  # the first worker and the two may_grow allowed
    room.left = 1  # a slot came free (a caller is waiting out its Retry-After)
    answers.gate(0).set()  # the first worker takes the next item: may_grow is asked again
    await _settle()
    assert answers.running == 4
    for item in range(10):
        answers.gate(item).set()
    outcomes = await consumer
    assert [o.item for o in outcomes] == list(range(10))
    assert answers.most_running == 4  # never more than may_grow allowed, under workers=8


async def test_a_pool_whose_workers_all_wait_grows_when_may_grow_says_yes() -> None:
    # Every worker is inside a later (each waiting out a Retry-After, holding no slot):
    # none begins another item, so none would start a worker. The pool looks by itself.
    room = Room(1)
    answers = Gated()
    run = ordered(range(10), answers.now, answers.later, window=10, workers=8, may_grow=room)
    consumer = asyncio.ensure_future(_collect(run))
    await _settle()
    assert answers.running == 2  # the first worker and the one may_grow allowed
    room.left = 2  # two slots came free while both workers wait: nobody begins an item
    for _ in range(500):  # at most 5 s
        if answers.running == 4:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the check keeps running: it finds no more room
    assert (answers.running, sorted(answers.started)) == (4, [0, 1, 2, 3])
    for item in range(10):
        answers.gate(item).set()
    outcomes = await consumer
    assert [o.item for o in outcomes] == list(range(10))
    assert answers.most_running == 4
