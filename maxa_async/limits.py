"""How hard the client presses the gateway: the limiter and its parts.

* :class:`Limiter` composes three parts, each usable and testable on its own:
  :class:`ConcurrencyBound` (FIFO slots for in-flight requests, adapting by AIMD),
  :class:`~maxa_async.pacer.Pacer` (finds the rate the gateway admits, whatever the shape
  of its limiter, and paces sends under it) and :class:`Cooldown` (a pause of every
  caller, for a Retry-After longer than a second: a spent window or a quota).

:class:`RetryPolicy`, :class:`RetryBudget` and :class:`Timeout` live in
:mod:`maxa_async.retry`; they are importable from here too.

Every wait here is cancellation-safe: a cancelled waiter leaves no slot behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

from .errors import ClientLimitError, RateLimitedError
from .pacer import Budget, Pacer
from .retry import RetryBudget, RetryPolicy, Timeout
from .retry import finite_number as _finite

__all__ = [
    "ConcurrencyBound",
    "Cooldown",
    "Limiter",
    "RateGate",
    "RetryBudget",
    "RetryPolicy",
    "Timeout",
]

Clock = Callable[[], float]


@runtime_checkable
class RateGate(Protocol):
    """A rate budget shared beyond one client (e.g. a fleet of processes through Redis).

    The client asks it before every MAXA send, after taking a local slot, tells it what
    each answer said (``observe``), and tells it about every long Retry-After
    (``cool_down``). Adaptive concurrency stays per client.
    """

    async def acquire(self, deadline: float | None) -> None:
        """Wait for the shared budget's next send (and any shared cooldown).

        ``deadline`` is on ``time.monotonic()``; raise RateLimitedError rather than
        wait past it."""

    def observe(self, rate_limited: bool, retry_after: float | None) -> None:
        """An answer came (a 429 when ``rate_limited``): a gate that learns the shared
        pace counts it. Called on the hot path: it must not block."""

    async def cool_down(self, seconds: float) -> None:
        """Pause every member of the budget for ``seconds``."""

    @property
    def learns_pace(self) -> bool:
        """Whether the gate learns the shared pace from what ``observe`` tells it. Then
        the client's own pacer does not also react to refusals (two pacers in series cut
        twice for one overshoot); its concurrency bound still adapts."""

    async def aclose(self) -> None:
        """Release connections."""


_DECREASE_FACTOR: Final = 0.9  # on a refusal: gentle, since the pacer handles the rate
_LATENCY_DECREASE_FACTOR: Final = 0.9
#: In flight at first, before any answer says how much the gateway takes (TCP's initial
#: window): a gateway that limits finds only this many sends to refuse at once.
INITIAL_CONCURRENCY: Final = 8


class ConcurrencyBound:
    """A FIFO bound on requests in flight that adapts (AIMD): it shrinks on a refusal
    (once per congestion event) and, with ``latency_tolerance``, when latency climbs well
    above the best seen; it grows by about one per round of successes. Waiters are served
    in order; a cancelled waiter leaves no slot behind.

    It starts at :data:`INITIAL_CONCURRENCY` (when adaptive) and, until the first refusal,
    grows by one per success, doubling each round trip (TCP's slow start): a few round
    trips to ``max_concurrency`` against a gateway that takes it all, and a gateway that
    limits refuses a handful of sends at the start instead of ``max_concurrency``."""

    def __init__(
        self,
        max_concurrency: int,
        *,
        adaptive: bool = True,
        min_concurrency: int = 1,
        latency_tolerance: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if latency_tolerance is not None and (
            not _finite(latency_tolerance) or latency_tolerance <= 1
        ):
            raise ValueError(
                "latency_tolerance must be a factor > 1 over the best latency seen, "
                f"got {latency_tolerance!r}"
            )
        self.max_concurrency = max_concurrency
        self.min_concurrency = max(1, min(min_concurrency, max_concurrency))
        self.adaptive = adaptive
        self.latency_tolerance = latency_tolerance
        self._clock = clock
        self._slow_start = adaptive and max_concurrency > INITIAL_CONCURRENCY
        self._limit = 0.0
        self._bound = 0  # int(self._limit), at least min_concurrency
        self._set_limit(float(INITIAL_CONCURRENCY if self._slow_start else max_concurrency))
        self._in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._last_decrease = -math.inf
        self._min_latency = math.inf
        self._latency_ewma = 0.0

    @property
    def limit(self) -> int:
        return self._bound

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def unclaimed(self) -> int:
        """Slots of the bound that no request holds or waits for."""
        return self._bound - self._in_flight - len(self._waiters)

    def try_take(self) -> bool:
        """Take a slot at once if one is free and nobody is queued."""
        if self._in_flight < self._bound and not self._waiters:
            self._in_flight += 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting in line for it."""
        if self.try_take():
            return
        waiter = self.queue()
        try:
            await waiter
        except BaseException:
            self.leave(waiter)
            raise

    def queue(self) -> asyncio.Future[None]:
        """Join the line: the future is done when a slot is handed over. Whoever awaits
        it must call :meth:`leave` if the wait ends in an exception (a cancellation)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def leave(self, waiter: asyncio.Future[None]) -> None:
        """A wait in line ended in an exception: leave the line, or give back the slot
        handed over as the wait was cancelled."""
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self.give_back()
        else:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def give_back(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._bound:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def fail_waiters(self, error: BaseException) -> None:
        """End every queued waiter with ``error`` (the client is closing)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _set_limit(self, value: float) -> None:
        self._limit = value
        self._bound = max(self.min_concurrency, int(value))

    def succeeded(self, started: float, latency: float) -> None:
        if not self.adaptive:
            return
        if self.latency_tolerance is not None:
            self._observe_latency(started, latency)
        if self._limit < self.max_concurrency:
            step = 1.0 if self._slow_start else 1.0 / self._limit
            self._set_limit(min(float(self.max_concurrency), self._limit + step))
            self._wake()

    def refused(self, started: float) -> None:
        if self.adaptive:
            self._decrease(started, _DECREASE_FACTOR)

    def _decrease(self, started: float, factor: float) -> None:
        # Once per congestion event: answers to sends made before the last decrease say
        # nothing new.
        self._slow_start = False
        if started < self._last_decrease:
            return
        self._set_limit(max(float(self.min_concurrency), self._limit * factor))
        self._last_decrease = self._clock()

    def _observe_latency(self, started: float, latency: float) -> None:
        self._min_latency = min(self._min_latency * 1.001 + 1e-6, latency)
        self._latency_ewma = (
            latency if not self._latency_ewma else (0.9 * self._latency_ewma + 0.1 * latency)
        )
        assert self.latency_tolerance is not None
        if self._latency_ewma > self._min_latency * self.latency_tolerance:
            self._decrease(started, _LATENCY_DECREASE_FACTOR)


class Cooldown:
    """A pause for every caller of a client: the gateway said (with a long Retry-After)
    that nothing will pass until then. It is only ever extended, never shortened."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self.extended = 0  # pauses started or extended
        self.started = 0  # pauses started anew (a burst of 429s is one)

    @property
    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    def active(self, now: float) -> bool:
        """Whether the pause lasts past ``now`` (this clock)."""
        return self._until > now

    def extend(self, seconds: float) -> bool:
        """Pause until ``seconds`` from now; True if that extended the pause."""
        now = self._clock()
        until = now + seconds
        if until <= self._until:
            return False
        self.started += self._until <= now
        self._until = until
        self.extended += 1
        return True

    async def wait(self, deadline: float | None) -> None:
        """Wait the pause out; raise RateLimitedError at once if it ends after ``deadline``."""
        while True:
            now = self._clock()
            left = self._until - now
            if left <= 0:
                return
            if deadline is not None and now + left > deadline:
                raise RateLimitedError(
                    f"the gateway asked to pause {left:.1f}s, longer than this call's time left",
                    retry_after=left,
                    retryable=False,
                )
            await asyncio.sleep(left)


class Limiter:
    """How hard a client presses the gateway: a :class:`ConcurrencyBound`, a
    :class:`~maxa_async.pacer.Pacer` (the rate the gateway admits) and a
    :class:`Cooldown` (long Retry-Afters), composed. ``acquire`` takes a slot, waits out
    any cooldown and then the send's turn in the pace; ``release`` reports the answer."""

    def __init__(
        self,
        max_concurrency: int,
        *,
        adaptive: bool = True,
        min_concurrency: int = 1,
        rate_limit: float | None = None,
        fail_fast: bool = False,
        latency_tolerance: float | None = None,
        clock: Clock = time.monotonic,
        pace_adaptive: bool | None = None,
    ) -> None:
        if rate_limit is not None and (not _finite(rate_limit) or rate_limit <= 0):
            raise ValueError(f"rate_limit must be positive requests/second, got {rate_limit!r}")
        self.bound = ConcurrencyBound(
            max_concurrency,
            adaptive=adaptive,
            min_concurrency=min_concurrency,
            latency_tolerance=latency_tolerance,
            clock=clock,
        )
        # pace_adaptive=False (a shared gate learns the pace): the pacer keeps only the cap.
        self.pacer = Pacer(
            cap=rate_limit, adaptive=adaptive if pace_adaptive is None else pace_adaptive
        )
        self.cooldown = Cooldown(clock)
        self.fail_fast = fail_fast
        self._clock = clock
        self._turns = asyncio.Lock()  # sends take their turn in the pace one by one (FIFO)

    # ------------------------------------------------------------------ state

    @property
    def max_concurrency(self) -> int:
        return self.bound.max_concurrency

    @property
    def limit(self) -> int:
        """The current bound on in-flight requests."""
        return self.bound.limit

    @property
    def in_flight(self) -> int:
        return self.bound.in_flight

    @property
    def waiting(self) -> int:
        return self.bound.waiting

    @property
    def unclaimed(self) -> int:
        """Slots of the current bound that no request holds or waits for."""
        return self.bound.unclaimed

    @property
    def cooldown_remaining(self) -> float:
        return self.cooldown.remaining

    def state(self) -> dict[str, float | int | None]:
        """What the limiter is doing now, for stats and logs."""
        pace = self.pacer.rate(self._clock())
        estimate = self.pacer.estimate
        return {
            "limit": self.bound.limit,
            "max_concurrency": self.bound.max_concurrency,
            "in_flight": self.bound.in_flight,
            "waiting": self.bound.waiting,
            "pace": None if pace is None else round(pace, 1),
            "admitted_estimate": None if estimate is None else round(estimate, 1),
            "window": self.pacer.horizon,
            "pace_cuts": self.pacer.cuts,
            "pauses": self.cooldown.started,
            "cooldown_remaining": round(self.cooldown.remaining, 3),
        }

    # ------------------------------------------------------------------ acquire / release

    def try_acquire(self) -> bool:
        """Take a slot at once when nothing asks to wait (no cooldown, no pace, nobody
        queued); the caller then skips :meth:`acquire`."""
        now = self._clock()
        if self.cooldown.active(now) or self.pacer.paced(now):
            return False
        if self.bound.try_take():
            self.pacer.sent(now)
            return True
        return False

    async def acquire(self, deadline: float | None = None) -> float:
        """Take a slot, wait out any cooldown, then the send's turn in the pace. Returns
        the seconds spent waiting for the slot (callers extend their deadline by it)."""
        started = self._clock()
        if not self.bound.try_take():
            if self.fail_fast:
                raise ClientLimitError(
                    f"client-side concurrency limit reached ({self.limit} in flight)"
                )
            # The bound's take(), unrolled: thousands of calls may wait here at once, and
            # every coroutine of theirs is one more for the garbage collector to walk.
            waiter = self.bound.queue()
            try:
                await waiter
            except BaseException:
                self.bound.leave(waiter)
                raise
        now = self._clock()
        slot_wait = now - started
        if not self.cooldown.active(now) and not self.pacer.paced(now) and not self._turns.locked():
            self.pacer.sent(now)  # nothing to wait for: no turn to take
            return slot_wait
        try:
            await self._wait_turn(None if deadline is None else deadline + slot_wait)
        except BaseException:
            self.bound.give_back()
            raise
        return slot_wait

    async def _wait_turn(self, deadline: float | None) -> None:
        async with self._turns:
            while True:
                await self.cooldown.wait(deadline)
                now = self._clock()
                ready = self.pacer.ready_at(now)
                if ready <= now:
                    break
                if deadline is not None and ready > deadline:
                    raise RateLimitedError(
                        "the pace the gateway admits leaves no room before this call's deadline",
                        retry_after=ready - now,
                        retryable=False,
                    )
                await asyncio.sleep(ready - now)
            self.pacer.sent(now)

    def release(
        self,
        started: float,
        latency: float | None,
        rate_limited: bool,
        *,
        retry_after: float | None = None,
        budget: Budget | None = None,
    ) -> None:
        """Give a slot back and let the answer steer the bound and the pace.

        ``started`` is the send time (this clock); ``latency`` the round trip of a
        successful answer, None for failures; ``rate_limited`` for a 429, with its
        ``retry_after`` and any ``budget`` the headers announced."""
        now = self._clock()
        if rate_limited:
            self.bound.refused(started)
            self.pacer.refused(started, now, retry_after, budget)
        elif latency is not None:
            self.bound.succeeded(started, latency)
            self.pacer.admitted(started, now, budget)
        self.bound.give_back()

    def pace_adaptively(self, adaptive: bool) -> None:
        """Let the pacer react to refusals, or leave them to a shared gate that learns the
        pace (it keeps only ``rate_limit`` then)."""
        self.pacer.adaptive = adaptive

    def cool_down(self, seconds: float) -> bool:
        """Pause every caller for ``seconds``; True if it extended the pause."""
        return self.cooldown.extend(seconds)

    @property
    def cooldowns(self) -> int:
        return self.cooldown.extended

    @property
    def pauses(self) -> int:
        return self.cooldown.started
