"""Rate-limiter shapes real gateways use, as pure state machines on a clock the caller passes.

Nothing here sleeps or reads a clock: ``admit(now)`` takes ``now`` in seconds (any
monotonic or wall clock, as long as one limiter always gets the same one), so the
fake gateway drives these with the wall clock and a simulator with a fake one.

Each shape answers a :class:`Verdict` that says what a gateway could announce:
whether the request passes, when one like it would, how much budget is left and
when it is whole again. ``capacity(start, end)`` is the most a client could get
from a fresh limiter, the yardstick a benchmark divides its admissions by.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Sequence
from typing import Protocol

import attrs

__all__ = [
    "Balanced",
    "ConcurrencyCap",
    "FixedWindow",
    "LeakyBucket",
    "Quota",
    "RateLimiter",
    "SlidingCounter",
    "SlidingLog",
    "TokenBucket",
    "Verdict",
]

# Retrying exactly ``retry_after`` later must pass, even when the arithmetic that
# produced it rounded the last bit the other way; no shape is that fine-grained.
_SLACK = 1e-9


@attrs.frozen
class Verdict:
    """One limiter's answer to one request."""

    #: The request passes this limiter.
    admitted: bool
    #: Seconds until a request like this one would be admitted: 0.0 when it was,
    #: None where the shape cannot tell (the concurrency cap).
    retry_after: float | None
    #: Requests still admitted right now after this one (0 when refused).
    remaining: int
    #: The policy's quota per window (header ``q``); a bucket's burst capacity.
    limit: int
    #: The policy's window in seconds (header ``w``); a bucket's burst/rate.
    window: float
    #: Seconds until the budget is whole again (window end; bucket full).
    reset: float


class RateLimiter(Protocol):
    """What the fake gateway (and a simulator) asks of a limiter."""

    def admit(self, now: float) -> Verdict:
        """Decide on one request arriving at ``now``; an admission spends budget."""
        ...

    def finished(self, now: float) -> None:
        """An admitted request ended (only the concurrency cap cares)."""
        ...

    def capacity(self, start: float, end: float) -> float | None:
        """The most admissions a client could get in ``[start, end)`` from a limiter
        fresh at ``start``; None where that depends on latency (the concurrency cap)."""
        ...


# -- argument checks ----------------------------------------------------------------------------


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _seconds(name: str, value: object, *, at_least: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result) or result <= 0 or result < at_least:
        bound = f">= {at_least:g}" if at_least else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return result


def _span(start: float, end: float) -> float:
    return max(0.0, end - start)


def _window_index(now: float, window: float) -> int:
    """The aligned window holding ``now``, so that ``index * window <= now`` holds as the
    float products are computed (a retry at exactly a window's start lands in it)."""
    index = math.floor(now / window)
    if now < index * window:
        index -= 1
    elif now >= (index + 1) * window:
        index += 1
    return index


# -- window shapes ------------------------------------------------------------------------------


class FixedWindow:
    """``limit`` admissions per window; windows are aligned to multiples of ``window``
    on the clock given (WSO2's "N per minute", many hand-made limiters).

    A burst at a window's start is allowed; a refusal's ``retry_after`` is the time
    to the window's end.
    """

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = _count("limit", limit)
        self.window = _seconds("window", window)
        self._index: int | None = None
        self._count = 0

    def admit(self, now: float) -> Verdict:
        index = _window_index(now, self.window)
        if index != self._index:
            self._index = index
            self._count = 0
        to_end = (index + 1) * self.window - now
        if self._count < self.limit:
            self._count += 1
            return Verdict(True, 0.0, self.limit - self._count, self.limit, self.window, to_end)
        return Verdict(False, to_end, 0, self.limit, self.window, to_end)

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        if end <= start:
            return 0.0
        windows = math.ceil(end / self.window) - math.floor(start / self.window)
        return float(self.limit * windows)


class SlidingLog:
    """At most ``limit`` admissions in any trailing ``window`` seconds (a log of times)."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = _count("limit", limit)
        self.window = _seconds("window", window)
        self._log: collections.deque[float] = collections.deque()

    def admit(self, now: float) -> Verdict:
        log, window = self._log, self.window
        # An admission at t counts in the trailing windows (now - window, now] until t + window.
        while log and log[0] + window <= now + _SLACK:
            log.popleft()
        if len(log) < self.limit:
            log.append(now)
            remaining = self.limit - len(log)
            return Verdict(True, 0.0, remaining, self.limit, window, log[-1] + window - now)
        return Verdict(False, log[0] + window - now, 0, self.limit, window, log[-1] + window - now)

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        # A greedy client spends the whole limit at start, start + window, ...
        return float(self.limit * math.ceil(_span(start, end) / self.window))


class SlidingCounter:
    """Kong's and Cloudflare's sliding window: the previous aligned window's count,
    weighted by the part of it still inside the trailing window, plus the current
    window's count; a request passes while that estimate, itself included, stays
    within ``limit``.
    """

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self.limit = _count("limit", limit)
        self.window = _seconds("window", window)
        self._index: int | None = None
        self._previous = 0
        self._current = 0
        # When the last refusal said one would pass: computed from the counts that
        # still hold (nothing was admitted since), so honoured even if re-deriving the
        # weight at that instant rounds the other way.
        self._due: float | None = None

    def _roll(self, index: int) -> None:
        if self._index is None or index > self._index + 1:
            self._previous = 0
            self._current = 0
        elif index == self._index + 1:
            self._previous = self._current
            self._current = 0
        self._index = index

    def admit(self, now: float) -> Verdict:
        window, limit = self.window, self.limit
        index = _window_index(now, window)
        self._roll(index)
        window_start = index * window
        elapsed = (now - window_start) / window
        estimate = self._previous * (1.0 - elapsed) + self._current
        due = self._due is not None and now >= self._due
        if estimate + 1.0 <= limit + _SLACK or due:
            self._due = None
            self._current += 1
            remaining = max(0, math.floor(limit - estimate - 1.0 + _SLACK))
            return Verdict(True, 0.0, remaining, limit, window, self._reset(window_start, now))
        retry = self._retry_after(window_start, now)
        self._due = now + retry
        return Verdict(False, retry, 0, limit, window, self._reset(window_start, now))

    def _retry_after(self, window_start: float, now: float) -> float:
        window, limit = self.window, self.limit
        room = limit - 1 - self._current  # what the previous window's weight must fall to
        if room >= 0 and self._previous > 0:
            fraction = 1.0 - room / self._previous
            if fraction < 1.0:
                return max(0.0, window_start + fraction * window - now)
        # Next window: this one's count becomes the weighted one.
        fraction = 1.0 - (limit - 1) / self._current if self._current > limit - 1 else 0.0
        return window_start + (1.0 + fraction) * window - now

    def _reset(self, window_start: float, now: float) -> float:
        if self._current:
            return window_start + 2 * self.window - now
        if self._previous:
            return window_start + self.window - now
        return 0.0

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        return float(_greedy(SlidingCounter(self.limit, self.window), start, end))


# -- buckets ------------------------------------------------------------------------------------


class TokenBucket:
    """Spring Cloud Gateway's, Envoy's and AWS's bucket: ``burst`` tokens when fresh,
    refilled at ``rate`` per second up to ``burst``; a request takes one token."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = _seconds("rate", rate)
        self.burst = _seconds("burst", burst, at_least=1.0)
        # Kept as GCRA, the bucket's exact equivalent: ``_full`` is when the bucket would
        # be full again; it holds burst - (_full - now) * rate tokens. One time, not a
        # token count, so a retry at exactly ``now + retry_after`` passes whatever the
        # clock's magnitude.
        self._interval = 1.0 / self.rate
        self._tolerance = (self.burst - 1.0) * self._interval
        self._full: float | None = None

    def admit(self, now: float) -> Verdict:
        full = now if self._full is None else max(self._full, now)
        limit = math.floor(self.burst)
        window = self.burst / self.rate
        allowed_from = full - self._tolerance
        if now >= allowed_from - _SLACK:
            self._full = full + self._interval
            tokens = self.burst - (self._full - now) * self.rate
            remaining = max(0, math.floor(tokens + _SLACK))
            return Verdict(True, 0.0, remaining, limit, window, self._full - now)
        return Verdict(False, allowed_from - now, 0, limit, window, full - now)

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        # The k-th greedy admission comes at start + max(0, (k - burst) / rate).
        if end <= start:
            return 0.0
        return float(math.ceil(self.burst + (end - start) * self.rate) - 1)


class LeakyBucket:
    """nginx ``limit_req`` without ``burst`` (GCRA with no tolerance): a request passes
    only if at least ``1/rate`` seconds have gone by since the last one that passed."""

    def __init__(self, rate: float) -> None:
        self.rate = _seconds("rate", rate)
        self._interval = 1.0 / self.rate
        # GCRA's theoretical arrival time: the earliest the next request may pass.
        self._due: float | None = None

    def admit(self, now: float) -> Verdict:
        interval = self._interval
        if self._due is None or now >= self._due - _SLACK:
            self._due = (now if self._due is None else max(self._due, now)) + interval
            return Verdict(True, 0.0, 0, 1, interval, self._due - now)
        wait = self._due - now
        return Verdict(False, wait, 0, 1, interval, wait)

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        return float(math.ceil(_span(start, end) * self.rate))


# -- caps that are not rates --------------------------------------------------------------------


class ConcurrencyCap:
    """At most ``limit`` admitted requests in flight: the ``limit + 1``-st is refused
    until :meth:`finished` frees a place (Envoy's and Netflix's concurrency limits)."""

    def __init__(self, limit: int) -> None:
        self.limit = _count("limit", limit)
        self.in_flight = 0

    def admit(self, now: float) -> Verdict:
        if self.in_flight < self.limit:
            self.in_flight += 1
            return Verdict(True, 0.0, self.limit - self.in_flight, self.limit, 0.0, 0.0)
        return Verdict(False, None, 0, self.limit, 0.0, 0.0)

    def finished(self, now: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def capacity(self, start: float, end: float) -> float | None:
        return None


class Quota:
    """``limit`` admissions per long ``period`` (a daily or monthly plan), the first
    period starting at the first request; once spent, refused until the period ends."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = _count("limit", limit)
        self.period = _seconds("period", period)
        self._start: float | None = None
        self._count = 0

    def admit(self, now: float) -> Verdict:
        period = self.period
        if self._start is None:
            self._start = now
        elif now >= self._start + period:
            self._start += math.floor((now - self._start) / period) * period
            self._count = 0
        to_end = self._start + period - now
        if self._count < self.limit:
            self._count += 1
            return Verdict(True, 0.0, self.limit - self._count, self.limit, period, to_end)
        return Verdict(False, to_end, 0, self.limit, period, to_end)

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        return float(self.limit * math.ceil(_span(start, end) / self.period))


class Balanced:
    """Several gateway nodes behind a load balancer, each enforcing its own limiter (an
    Envoy local rate limit, nginx ``limit_req`` per node) on the requests it is dealt:
    the balancer picks a node at random for each request, as one that neither shares
    state nor counts connections does. A client then sees refusals while it sends below
    the sum of the nodes' limits (one node got a bunch), and the budget headers describe
    the node that answered."""

    def __init__(self, nodes: Sequence[RateLimiter], *, seed: int = 0) -> None:
        if not nodes:
            raise ValueError("nodes must hold at least one limiter")
        self.nodes = tuple(nodes)
        self._random = random.Random(seed)
        self.dealt = [0] * len(self.nodes)  # requests each node was dealt

    def admit(self, now: float) -> Verdict:
        index = self._random.randrange(len(self.nodes))
        self.dealt[index] += 1
        return self.nodes[index].admit(now)

    def finished(self, now: float) -> None:
        pass  # rate shapes only: none of them counts requests in flight

    def capacity(self, start: float, end: float) -> float | None:
        """The sum of the nodes' (a client cannot pick its node: an upper bound)."""
        total = 0.0
        for node in self.nodes:
            capacity = node.capacity(start, end)
            if capacity is None:
                return None
            total += capacity
        return total


def _greedy(limiter: RateLimiter, start: float, end: float) -> int:
    """Admissions of a client that asks at ``start`` and again whenever told it may."""
    now, admitted = start, 0
    while now < end:
        verdict = limiter.admit(now)
        if verdict.admitted:
            admitted += 1
            continue
        if verdict.retry_after is None:
            break
        # A rounding-sized wait would not move the clock: step to the next float.
        now = max(now + verdict.retry_after, math.nextafter(now, math.inf))
    return admitted
