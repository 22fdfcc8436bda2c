"""The one engine behind every ``validate_many``: ordered, bounded memory, answered at
once where it can be.

``MaxaClient.validate_many``, ``SnapshotStore.validate_many`` (and its plain-generator
twin ``validate_many_sync``) and ``HybridValidator.validate_many`` differ only in how
they answer one item; each says that with two or three functions, and :func:`ordered`
runs them over a plain or async iterable:

- ``now(item)`` answers synchronously when it can (a snapshot lookup, bad input refused
  before anything is sent), else returns whatever ``later`` needs (a built request, a
  terminology to load);
- ``later(item, pending)`` finds the outcome asynchronously (a gateway call, a load);
- ``needs_worker(pending)`` (optional) says whether ``later`` is worth running alongside the
  items after it (a gateway call), or is best awaited in its turn (a load from the
  local file, which the items after it need anyway).

The run has two phases:

direct
    Nothing is outstanding, so the consumer takes the next item itself, and an item
    ``now`` answers is yielded at once: no task, no future, no buffer (the offline
    hot path). ``later`` work that needs no worker is awaited in turn.
pooled
    From the first item whose ``later`` needs a worker to the end of the run: up to
    ``workers`` long-lived tasks take items in input order, answer them (``now``, or
    ``later``) and file each outcome under its index; the consumer yields them in order.
    A worker is started only when every other one awaits a ``later`` that needs a worker
    (and, with ``may_grow``, while it says yes: checked as a worker begins an item, and
    every few milliseconds while all of them wait).
    Workers take items at most ``window`` ahead of the consumer, so memory stays flat
    however long the input is, and one slow item (say, in back-off) holds back nothing
    but its own turn. Still no task or future per item.

Either way: outcomes come out in input order, one per item; an item ``now`` or ``later``
answers with an error outcome does not stop the run; an exception raised by ``later``
(say, ``ClientClosedError``) or by the source itself ends the run: the consumer raises it
once every outcome before it is out (the first, if several fail). Closing or cancelling
the consumer cancels the workers and waits for them, so no task outlives the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from typing import Any, Final, Generic, TypeVar

import attrs

from .models import ValidationOutcome

__all__ = ["Later", "Now", "default_window", "make_outcome", "ordered", "ordered_sync"]

P = TypeVar("P")

#: Over a plain iterable answered at once, the run lets other tasks in every this many items.
_YIELD_EVERY: Final = 4096
#: The fewest items a default window holds. An item waiting out a whole-second
#: Retry-After (or two, if the retry lands in a window spent again) holds back every item
#: after it once the window is full, so the window must hold what the gateway admits over
#: a few seconds, not only what the slots hold at once: a window of 16 slots' worth at
#: thousands of requests a second fills within a fraction of that second, and the run
#: stalls at every refusal.
_MIN_DEFAULT_WINDOW: Final = 16_384
#: How often a pool with ``may_grow`` checks whether it may grow while every worker waits.
_GROW_CHECK: Final = 0.02


def default_window(max_concurrency: int) -> int:
    """The items a ``validate_many`` run holds in progress when no ``window`` is given:
    16 per slot, and at least a few seconds' worth of sends at thousands a second."""
    return max(16 * max_concurrency, _MIN_DEFAULT_WINDOW)


def _outcome_builder() -> Callable[[Any, bool | None], ValidationOutcome]:
    """``ValidationOutcome(item, valid)``, built without attrs' frozen ``__init__`` (one
    ``object.__setattr__`` call per field) when the class is still the plain three-slot
    value it is today: the offline hot path builds one per item, and the frozen
    ``__init__`` is most of that path's cost. Any other shape gets the class itself."""
    fields = attrs.fields(ValidationOutcome)
    plain = [f.name for f in fields] == ["item", "valid", "error"] and all(
        f.validator is None and f.converter is None and f.on_setattr is None for f in fields
    )
    slots = ValidationOutcome.__dict__
    if not plain or not all(
        type(slots.get(name)).__name__ == "member_descriptor" for name in ("item", "valid", "error")
    ):
        return ValidationOutcome
    new = object.__new__
    set_item = slots["item"].__set__
    set_valid = slots["valid"].__set__
    set_error = slots["error"].__set__

    def build(item: Any, valid: bool | None) -> ValidationOutcome:
        made: ValidationOutcome = new(ValidationOutcome)
        set_item(made, item)
        set_valid(made, valid)
        set_error(made, None)
        return made

    return build


#: ``make_outcome(item, valid)`` equals ``ValidationOutcome(item, valid)``, built faster.
make_outcome: Final = _outcome_builder()

#: ``now``: the outcome at once, or what ``later`` needs to find it.
Now = Callable[[Any], "ValidationOutcome | P"]
#: ``later``: the outcome of an item ``now`` could not answer.
Later = Callable[[Any, P], Awaitable[ValidationOutcome]]


def _always(pending: object) -> bool:
    return True


async def ordered(
    items: Iterable[Any] | AsyncIterable[Any],
    now: Now[P],
    later: Later[P],
    *,
    needs_worker: Callable[[P], bool] = _always,
    window: int,
    workers: int,
    may_grow: Callable[[], bool] | None = None,
    progress: Callable[[int], None] | None = None,
) -> AsyncGenerator[ValidationOutcome, None]:
    """One outcome per item, in input order (see the module docstring).

    ``workers`` bounds the tasks of the pooled phase (0: never pooled, every ``later`` is
    awaited in turn); ``window`` bounds how far they take items ahead of the consumer.
    ``needs_worker(pending)`` is False for ``later`` work best awaited in turn.
    ``may_grow()``, if given, must also say yes before another worker starts (the client:
    only while its limiter has a slot no worker claims, so workers waiting out a
    Retry-After, holding no slot, are replaced, and workers never queue for slots).
    ``progress`` is called with the count of outcomes yielded so far.
    """
    done = 0
    handoff: tuple[Any, P] | None = None
    plain: Iterator[Any] | None = None
    source: AsyncIterator[Any] | None = None
    if isinstance(items, AsyncIterable):
        source = aiter(items)
    else:
        plain = iter(items)
    while handoff is None:
        # direct: a plain iterable is one batch; an async one is read an item at a time
        if source is not None:
            try:
                batch: Iterable[Any] = (await anext(source),)
            except StopAsyncIteration:
                return
        else:
            assert plain is not None
            batch = plain
        for item in batch:
            answer = now(item)
            if not isinstance(answer, ValidationOutcome):
                if workers and needs_worker(answer):
                    handoff = item, answer
                    break
                answer = await later(item, answer)
            done += 1
            if progress is not None:
                progress(done)
            yield answer
            if not done % _YIELD_EVERY:
                await asyncio.sleep(0)  # a long run answered at once must not starve the loop
        if handoff is None and source is None:
            return

    pool = _Pool(
        plain,
        source,
        now,
        later,
        needs_worker,
        handoff,
        window=window,
        workers=workers,
        may_grow=may_grow,
    )
    ready = pool.ready
    try:
        while True:
            outcome = ready()
            if outcome is None:
                outcome = await pool.next_outcome()
                if outcome is None:
                    return
            done += 1
            if progress is not None:
                progress(done)
            yield outcome
    finally:
        await pool.aclose()


def ordered_sync(
    items: Iterable[Any],
    now: Now[P],
    settle: Callable[[Any, P], ValidationOutcome],
    *,
    progress: Callable[[int], None] | None = None,
) -> Iterator[ValidationOutcome]:
    """:func:`ordered`'s direct phase as a plain generator: ``settle`` blocks for what
    ``now`` could not answer (no event loop needed)."""
    done = 0
    for item in items:
        answer = now(item)
        if not isinstance(answer, ValidationOutcome):
            answer = settle(item, answer)
        if progress is not None:
            done += 1
            progress(done)
        yield answer


class _Pool(Generic[P]):
    """The pooled phase: long-lived workers take items in input order and file each
    outcome under its index (counted from the item that started the pool); the consumer
    takes them in order with :meth:`ready` (no await: the hot path) or
    :meth:`next_outcome`. No task, no future per item."""

    def __init__(
        self,
        plain: Iterator[Any] | None,
        source: AsyncIterator[Any] | None,
        now: Now[P],
        later: Later[P],
        needs_worker: Callable[[P], bool],
        first: tuple[Any, P] | None,
        *,
        window: int,
        workers: int,
        may_grow: Callable[[], bool] | None = None,
    ) -> None:
        self._plain = plain
        self._may_grow = may_grow
        self._source = source
        self._take_lock = asyncio.Lock() if source is not None else None
        self._now = now
        self._later = later
        self._needs_worker = needs_worker
        self._window = window
        self._max_workers = workers
        self._first = first  # taken by the consumer, answered by the first worker
        self._results: dict[int, ValidationOutcome] = {}
        self._taken = 0 if first is None else 1  # index of the next item to take
        self._yielded = 0  # index of the next outcome to yield
        self._exhausted = False
        self._failure: BaseException | None = None
        self._failed_at = 0  # index of the item that failed (or that the source failed at)
        self._room = asyncio.Event()  # the consumer moved on: workers may take more
        self._full = False  # a worker waits for room
        self._progress = asyncio.Event()  # an outcome was filed or a worker ended
        self._waiting = False  # the consumer waits on _progress
        self._busy = 0  # workers awaiting ``later``
        self._alive = 0
        self._workers: list[asyncio.Task[None]] = []
        self._spawn()
        # A worker starts another only as it begins its own ``later``. When every worker
        # is already inside one (each waiting out a Retry-After, say, holding no slot),
        # nobody would start another until one came back: the run would stop sending
        # while the gateway (and the pacer) would take more. So the pool also looks,
        # now and then, for a claim it may grow by.
        self._grow_timer: asyncio.TimerHandle | None = None
        if may_grow is not None:
            self._schedule_grow_check()

    def _spawn(self) -> None:
        self._alive += 1
        self._workers.append(asyncio.get_running_loop().create_task(self._work()))

    def _schedule_grow_check(self) -> None:
        self._grow_timer = asyncio.get_running_loop().call_later(_GROW_CHECK, self._grow_check)

    def _grow_check(self) -> None:
        if self._exhausted:
            return  # nothing left to take: no more checks
        if (
            self._busy == self._alive
            and self._alive < self._max_workers
            and self._may_grow is not None
            and self._may_grow()
        ):
            self._spawn()
        self._schedule_grow_check()

    async def _take_async(self) -> tuple[int, Any] | None:
        assert self._take_lock is not None and self._source is not None
        async with self._take_lock:  # an async generator cannot be entered twice
            if self._exhausted:
                return None
            try:
                item = await anext(self._source)
            except StopAsyncIteration:
                self._exhausted = True
                return None
        index = self._taken
        self._taken += 1
        return index, item

    async def _work(self) -> None:
        now = self._now
        later = self._later
        results = self._results
        plain = self._plain
        answer: ValidationOutcome | P
        index = 0
        in_hand = False  # False while taking: a failure then is the source's
        try:
            while True:
                if self._first is not None:
                    item, answer = self._first
                    self._first = None
                    in_hand = True
                else:
                    in_hand = False
                    while self._taken - self._yielded >= self._window and not self._exhausted:
                        self._full = True
                        self._room.clear()
                        await self._room.wait()
                    if plain is not None:  # a plain iterable: taken inline (the hot path)
                        if self._exhausted:
                            return
                        try:
                            item = next(plain)
                        except StopIteration:
                            self._exhausted = True
                            return
                        index = self._taken
                        self._taken = index + 1
                    else:
                        taken = await self._take_async()
                        if taken is None:
                            return
                        index, item = taken
                    in_hand = True
                    answer = now(item)
                if not isinstance(answer, ValidationOutcome):
                    self._busy += 1
                    if (  # every worker is busy: one more takes the next items meanwhile
                        self._busy == self._alive
                        and self._alive < self._max_workers
                        and not self._exhausted
                        and self._needs_worker(answer)
                        and (self._may_grow is None or self._may_grow())
                    ):
                        self._spawn()
                    try:
                        outcome = await later(item, answer)
                    finally:
                        self._busy -= 1
                else:
                    outcome = answer
                results[index] = outcome
                if index == self._yielded and self._waiting:  # the consumer waits for it
                    self._waiting = False
                    self._progress.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # later() or the source failed: the consumer raises it
            at = index if in_hand else self._taken
            if self._failure is None or at < self._failed_at:
                self._failure, self._failed_at = exc, at
            self._exhausted = True
        finally:
            self._alive -= 1
            self._progress.set()

    def ready(self) -> ValidationOutcome | None:
        """The next outcome in order if it is in already (no await: the hot path)."""
        outcome = self._results.pop(self._yielded, None)
        if outcome is not None:
            self._yielded += 1
            if self._full:  # a worker waits for room
                self._full = False
                self._room.set()
        return outcome

    async def next_outcome(self) -> ValidationOutcome | None:
        """The next outcome in order, once it is in; None when the run is over."""
        while True:
            outcome = self.ready()
            if outcome is not None:
                return outcome
            if self._failure is not None and (self._yielded >= self._failed_at or self._alive == 0):
                raise self._failure  # after every outcome before it
            if self._alive == 0:
                return None
            self._waiting = True
            self._progress.clear()
            await self._progress.wait()

    async def aclose(self) -> None:
        if self._grow_timer is not None:
            self._grow_timer.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
