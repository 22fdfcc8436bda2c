"""How hard and how often the client calls the gateway: limiter, retry policy, retry budget.

* :class:`Limiter` bounds in-flight MAXA requests. The bound adapts (AIMD): it halves on
  a 429 (once per congestion event) and optionally shrinks when latency climbs well above
  its baseline; it grows by about one per round of successes. Waiters are served FIFO.
  A 429's ``Retry-After`` starts one cooldown for the whole client: every caller waits it
  out, not only the one that got it. An optional requests/second cap (GCRA, no burst
  beyond what is configured) paces sends.
* :class:`RetryPolicy` says which errors are retried, how long to back off (exponential,
  full jitter, ``Retry-After`` honoured) and bounds attempts and total time.
* :class:`RetryBudget` is a token bucket shared by all calls of one client, so a sick
  gateway is not hammered by the retries of thousands of callers (botocore's quota idea).

Every wait here is cancellation-safe: a cancelled waiter leaves no slot behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import random
import time
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

import attrs

from .errors import MaxaError, RateLimitedError, TransportError

__all__ = ["Limiter", "RateGate", "RetryBudget", "RetryPolicy", "Timeout"]

Clock = Callable[[], float]


@runtime_checkable
class RateGate(Protocol):
    """A rate budget shared beyond one client (e.g. a fleet of processes through Redis).

    The client asks it before every MAXA send, after taking a local slot, and tells it
    about every 429 that carried a Retry-After. Adaptive concurrency stays per client.
    """

    async def acquire(self, deadline: float | None) -> None:
        """Wait for the shared budget's next send (and any shared cooldown).

        ``deadline`` is on ``time.monotonic()``; raise RateLimitedError rather than
        wait past it."""

    async def cool_down(self, seconds: float) -> None:
        """Pause every member of the budget for ``seconds``."""

    async def aclose(self) -> None:
        """Release connections."""


def _retryable(error: MaxaError) -> bool:
    return error.retryable


def _finite(value: object) -> bool:
    """A real number (not a bool, not NaN or infinite): what every limit here must be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@attrs.frozen(kw_only=True)
class Timeout:
    """Per-attempt time limits in seconds. Waiting for a slot is not counted."""

    connect: float = 10.0
    request: float = 30.0

    def __attrs_post_init__(self) -> None:
        for name in ("connect", "request"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise ValueError(f"Timeout.{name} must be a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries of one call. All MAXA operations are read-only, so replay is always safe.

    ``attempts`` counts sends (1 = no retry); ``deadline`` bounds a call's total time from
    its first send (seconds spent waiting for a free slot are not counted); ``backoff=False``
    turns all sleeping off, for tests. ``retry_on`` decides which errors are retried; by
    default those the status table marks retryable (429, 499, 5xx, 520, transport errors).
    A 401 is not a retry: it refreshes the token and replays once, whatever this says.
    """

    attempts: int = 5
    deadline: float = 60.0
    base_delay: float = 0.1
    max_delay: float = 5.0
    max_retry_after: float = 60.0
    jitter: bool = True
    backoff: bool = True
    retry_on: Callable[[MaxaError], bool] = _retryable

    def __attrs_post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ValueError(f"RetryPolicy.attempts must be an int >= 1, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts!r}")
        if not _finite(self.deadline) or self.deadline <= 0:
            raise ValueError(f"RetryPolicy.deadline must be positive, got {self.deadline!r}")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")
        if not callable(self.retry_on):
            raise ValueError("RetryPolicy.retry_on must be callable")

    @classmethod
    def for_tests(cls, attempts: int = 5) -> RetryPolicy:
        """No sleeping between retries (Retry-After cooldowns still apply)."""
        return cls(attempts=attempts, backoff=False)

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Back-off before retry number ``retry`` (1-based): full jitter, capped."""
        if not self.backoff:
            return 0.0
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        if not self.jitter:
            return ceiling
        return float((rng or random).uniform(ceiling / 2, ceiling))


@attrs.define(kw_only=True)
class RetryBudget:
    """A token bucket of retries for a whole client. A retry costs ``retry_cost`` (a
    time-out ``timeout_cost``); a success refunds ``success_refund``. When it runs dry,
    failing calls fail at once instead of retrying."""

    capacity: float = 500.0
    retry_cost: float = 5.0
    timeout_cost: float = 10.0
    success_refund: float = 1.0
    tokens: float = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = self.capacity

    def try_spend(self, error: MaxaError) -> bool:
        cost = self.timeout_cost if isinstance(error, TransportError) else self.retry_cost
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def refund(self) -> None:
        if self.tokens < self.capacity:
            self.tokens = min(self.capacity, self.tokens + self.success_refund)


_DECREASE_FACTOR: Final = 0.5
_LATENCY_DECREASE_FACTOR: Final = 0.9

# Learned pace (see Limiter): successes are counted in 20 buckets of 50 ms, so "the last
# second" is known to 5%; the pace is this share of the smallest of the last 3 estimates,
# grows by _PACE_GROWTH after each _PACE_HOLD seconds without a 429, and is forgotten
# after _PACE_FORGET seconds without one (demand fell below it, or the limit went away).
_BUCKETS: Final = 20
_BUCKETS_PER_SECOND: Final = 20
_PACE_SHARE: Final = 0.95
_PACE_GROWTH: Final = 1.02
_PACE_HOLD: Final = 10.0
_PACE_FORGET: Final = 60.0
_PACE_MIN_SUCCESSES: Final = 10


class Limiter:
    """Bounded, adaptive, FIFO concurrency for one client, plus a shared cooldown."""

    def __init__(
        self,
        max_concurrency: int,
        *,
        adaptive: bool = True,
        min_concurrency: int = 1,
        rate_limit: float | None = None,
        burst: int = 1,
        fail_fast: bool = False,
        latency_tolerance: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if rate_limit is not None and (not _finite(rate_limit) or rate_limit <= 0):
            raise ValueError(f"rate_limit must be positive requests/second, got {rate_limit!r}")
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
        self.fail_fast = fail_fast
        self.latency_tolerance = latency_tolerance
        self._clock = clock
        self._limit = float(max_concurrency)
        self._bound = max_concurrency  # int(self._limit), at least min_concurrency
        self._in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._cooldown_until = 0.0
        self._last_decrease = -1e18
        self._cap_interval = 1.0 / rate_limit if rate_limit else 0.0
        self._interval = self._cap_interval  # the pace in force: cap or learned, the slower
        # Learned pace: successes per 50 ms bucket, the last second of them.
        self._bucket = 0
        self._slot = 0
        self._bucket_ends = 1.0 / _BUCKETS_PER_SECOND
        self._counts = [0] * _BUCKETS
        self._estimates: collections.deque[int] = collections.deque(maxlen=3)
        self._learned_rate: float | None = None
        self._paced_since = 0.0
        self._last_pause = 0.0
        self._after_pause = False  # the sends since the last 429 began at a pause's end
        self._burst_tolerance = self._interval * max(0, burst - 1)
        self._tat = 0.0  # GCRA theoretical arrival time
        self._min_latency = float("inf")
        self._latency_ewma = 0.0
        self.cooldowns = 0  # pauses started or extended
        self.pauses = 0  # pauses started anew (a burst of 429s is one)

    # ------------------------------------------------------------------ state

    @property
    def limit(self) -> int:
        """The current bound on in-flight requests."""
        return self._bound

    def _set_limit(self, value: float) -> None:
        self._limit = value
        self._bound = max(self.min_concurrency, int(value))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def state(self) -> dict[str, float | int | None]:
        """What the limiter is doing now, for stats and logs."""
        return {
            "limit": self._bound,
            "max_concurrency": self.max_concurrency,
            "in_flight": self._in_flight,
            "waiting": len(self._waiters),
            "learned_rate": None if self._learned_rate is None else round(self._learned_rate, 1),
            "pauses": self.pauses,
            "cooldown_remaining": round(self.cooldown_remaining, 3),
        }

    @property
    def learned_rate(self) -> float | None:
        """The requests/second this limiter paces itself at, learned from 429s (None
        until a 429 taught it one)."""
        return self._learned_rate

    def _set_learned_rate(self, rate: float | None, now: float) -> None:
        self._learned_rate = rate
        self._paced_since = now
        learned = 1.0 / rate if rate else 0.0
        self._interval = max(self._cap_interval, learned)

    def _advance(self, bucket: int) -> None:
        if bucket <= self._bucket:
            return
        counts = self._counts
        for stale in range(max(self._bucket + 1, bucket - _BUCKETS + 1), bucket + 1):
            counts[stale % _BUCKETS] = 0
        self._bucket = bucket
        self._slot = bucket % _BUCKETS
        self._bucket_ends = (bucket + 1) / _BUCKETS_PER_SECOND

    def successes_last_second(self) -> int:
        """Successful answers in about the last second (for the learned pace)."""
        self._advance(int(self._clock() * _BUCKETS_PER_SECOND))
        return sum(self._counts)

    @property
    def cooldown_remaining(self) -> float:
        return max(0.0, self._cooldown_until - self._clock())

    # ------------------------------------------------------------------ acquire / release

    def try_acquire(self) -> bool:
        """Take a slot at once if one is free and nothing asks to wait (no cooldown, no
        rate cap, nobody queued); the caller then skips :meth:`acquire`."""
        if (
            self._in_flight < self._bound
            and not self._waiters
            and not self._interval
            and (not self._cooldown_until or self._cooldown_until <= self._clock())
        ):
            self._in_flight += 1
            return True
        return False

    async def acquire(self, deadline: float | None = None) -> float:
        """Take a slot, then wait out any cooldown and the rate cap. Returns the seconds
        spent waiting for the slot itself (callers extend their deadline by it)."""
        started = self._clock()
        if self._in_flight < self._bound and not self._waiters:
            self._in_flight += 1
        else:
            if self.fail_fast:
                raise RateLimitedError(
                    f"client-side concurrency limit reached ({self.limit} in flight)",
                    status=None,
                    retryable=False,
                )
            await self._wait_for_slot()
        slot_wait = self._clock() - started
        if self._interval or self._cooldown_until > started:
            try:
                await self._wait_until_clear(None if deadline is None else deadline + slot_wait)
            except BaseException:
                self._release_slot()
                raise
        return slot_wait

    async def _wait_for_slot(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed to us as we were cancelled: pass it on.
                self._release_slot()
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def _wait_until_clear(self, deadline: float | None) -> None:
        while True:
            now = self._clock()
            wait = self._cooldown_until - now
            if wait <= 0:
                break
            if deadline is not None and now + wait > deadline:
                raise RateLimitedError(
                    f"the gateway asked to pause {wait:.1f}s, longer than this call's time left",
                    retry_after=wait,
                    retryable=False,
                )
            await asyncio.sleep(wait)
        if self._interval:
            now = self._clock()
            if self._learned_rate is not None and now - self._paced_since > _PACE_HOLD:
                if now - self._last_pause > _PACE_FORGET:
                    # A minute without a 429: the pace is no longer needed (or wrong).
                    self._set_learned_rate(None, now)
                    self._estimates.clear()
                    self._after_pause = False
                else:
                    # No 429 for a while: the limit may have risen (or others stopped).
                    self._set_learned_rate(self._learned_rate * _PACE_GROWTH, now)
            tat = max(self._tat, now)
            wait = tat - now - self._burst_tolerance
            if deadline is not None and wait > 0 and now + wait > deadline:
                raise RateLimitedError(
                    "the client's requests/second cap leaves no room before this call's deadline",
                    retry_after=wait,
                    retryable=False,
                )
            self._tat = tat + self._interval
            if wait > 0:
                await asyncio.sleep(wait)

    def _release_slot(self) -> None:
        self._in_flight -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self._bound:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def release(self, started: float, latency: float | None, rate_limited: bool) -> None:
        """Give a slot back, and let the outcome steer the bound.

        ``started`` is the send time (this clock); ``latency`` the round trip of a
        successful answer, None for failures.
        """
        if self.adaptive:
            if rate_limited:
                self._decrease(started, _DECREASE_FACTOR)
            elif latency is not None:
                # A success in its 50 ms bucket: one compare and one add.
                now = started + latency
                if now >= self._bucket_ends:
                    self._advance(int(now * _BUCKETS_PER_SECOND))
                self._counts[self._slot] += 1
                if self.latency_tolerance is not None:
                    self._observe_latency(started, latency)
                limit = self._limit
                if limit < self.max_concurrency:
                    self._set_limit(min(float(self.max_concurrency), limit + 1.0 / limit))
        self._release_slot()

    def _decrease(self, started: float, factor: float) -> None:
        # One decrease per congestion event: answers to requests sent before the last
        # decrease say nothing new.
        if started < self._last_decrease:
            return
        self._set_limit(max(float(self.min_concurrency), self._limit * factor))
        self._last_decrease = self._clock()

    def _observe_latency(self, started: float, latency: float) -> None:
        if self.latency_tolerance is None:
            return
        self._min_latency = min(self._min_latency * 1.001 + 1e-6, latency)
        self._latency_ewma = (
            latency if not self._latency_ewma else (0.9 * self._latency_ewma + 0.1 * latency)
        )
        if self._latency_ewma > self._min_latency * self.latency_tolerance:
            self._decrease(started, _LATENCY_DECREASE_FACTOR)

    def cool_down(self, seconds: float) -> bool:
        """Pause every caller of this client for ``seconds``; True if it extended the pause.

        A pause that starts anew (not one extended by the other answers of the same
        burst) also teaches the limiter a pace, when the gateway counts per second (a
        Retry-After of at most 1 s). If this client's sends began at the end of an earlier
        pause, the gateway's window was fresh, so the successes of the second before
        this 429 are what it allows per second, or more (a burst can straddle two of its
        windows), never less. (The first 429 of a run teaches nothing: the window may
        have been partly spent before.) From then on, sends are paced at 95% of the
        smallest of the last three such counts, so the gateway's windows are no longer
        run dry and no pause is needed; after each 10 s without a 429 the pace grows 2%,
        to find a raised limit, and after a minute without one it is forgotten.
        """
        now = self._clock()
        until = now + seconds
        if until <= self._cooldown_until:
            return False
        starts_anew = self._cooldown_until <= now
        self._cooldown_until = until
        self.cooldowns += 1
        self.pauses += starts_anew
        if starts_anew:
            self._last_pause = now
        if starts_anew and self.adaptive and seconds <= 1.0:
            allowed = self.successes_last_second()
            trusted, self._after_pause = self._after_pause, True
            if trusted and allowed >= _PACE_MIN_SUCCESSES:
                self._estimates.append(allowed)
                self._set_learned_rate(_PACE_SHARE * min(self._estimates), now)
        return True
