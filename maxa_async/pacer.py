"""The pacer: finds the request rate a gateway admits, whatever the shape of its limiter.

Sans-I/O: every method takes ``now`` (seconds on any monotonic clock) and nothing here
sleeps. The client sends one request at a time through :meth:`Pacer.ready_at` and
:meth:`Pacer.sent`, and reports each answer back.

How it works, and why:

* **Start**: sends are paced from a modest rate that doubles every tenth of a second
  until the gateway first refuses one (a slow start, as in TCP). An unpaced start would
  spend a small token bucket's burst in a millisecond and then learn nothing from the
  refusals that follow; doubling keeps the first overshoot under 2x.
* **Measure**: a refusal means the client sent faster than the gateway admits, so the
  successes counted while that is so *are* the admitted rate (a delivery-rate estimate,
  as in BBR). They are counted over the limiter's window: at least a second, longer when
  a ``Retry-After`` or a run of refusals shows that the gateway counts over longer
  windows (a fixed 10 s window refuses for up to 10 s: one second of it says ten times
  too much, or nothing at all). The start's first refusal uses the last fifth of a
  second instead, since the ramp before it says nothing about the limit.
* **Pace** (GCRA) just under the estimate, then probe upward on a cubic curve (CUBIC):
  flat near the estimate, so refusals stay rare while the limit holds, and steep beyond
  it, so that a raised limit is found in seconds.
* **A spent window**: refused again with nothing admitted since the last cut, the pace
  halves at each refusal, so only a few are spent until the gateway admits again; then
  the rate is measured afresh over the window.
* **Budget headers** (Spring's ``X-RateLimit-*``, the IETF draft's ``RateLimit``): a
  gateway that announces its rate is believed, so it never has to refuse to teach it.

A refusal of a send made before the last cut says nothing new (it went at the old pace),
so each congestion event cuts the pace once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import attrs

__all__ = ["Budget", "Pacer", "budget_from_headers"]

_BUCKET: Final = 0.05  # seconds per history bucket
_HISTORY: Final = 1280  # buckets kept: 64 s, longer than the longest window measured
_MAX_HORIZON: Final = 60.0  # windows longer than this are quotas: a cooldown, not a pace
_START_RATE: Final = 50.0  # requests/second at the start, doubling every _RAMP_STEP
_RAMP_STEP: Final = 0.1
_SHORT_SPAN: Final = 0.2  # seconds measured at the start's first refusal
_NOW_SPAN: Final = 0.1  # "right now", for the refused share
_MIN_SPAN: Final = 0.25  # the shortest span a later estimate is measured over
_HEADROOM: Final = 0.97  # pace this share of the estimate after a cut
_PLATEAU: Final = 1.5  # seconds to climb back to the estimate (CUBIC's K)
_MIN_RATE: Final = 0.5  # never slower than one send per two seconds while paced
_UNPACED: Final = 1e6  # a pace this high paces nothing
_RAMP_EXIT_SHARE: Final = 0.1  # refused share of recent sends that ends the slow start
_SPENT_AFTER: Final = 3  # refusals in a row, nothing admitted, that mean a spent window


@attrs.frozen
class Budget:
    """What a gateway announced in rate-limit headers: the requests per second it
    replenishes, how many it would admit now, and when it is whole again (None where a
    header family leaves one out)."""

    rate: float
    remaining: int | None = None
    reset: float | None = None


class Pacer:
    """Paces sends at the rate the gateway admits; see the module docstring.

    ``cap`` is a user's own ceiling in requests/second; ``adaptive=False`` keeps only it.
    """

    def __init__(self, *, cap: float | None = None, adaptive: bool = True) -> None:
        if cap is not None and (not math.isfinite(cap) or cap <= 0):
            raise ValueError(f"cap must be positive requests/second, got {cap!r}")
        self.cap = cap
        self.adaptive = adaptive
        self._tat = 0.0  # GCRA theoretical arrival time of the next send
        self._successes = [0] * _HISTORY
        self._refused = [0] * _HISTORY
        self._head = 0  # absolute index of the newest history bucket
        self._started = False
        self._ramping = adaptive  # the slow start, until the first refusal in it
        self._ramp_rate = _START_RATE
        self._ramp_step_at = 0.0
        self._estimate: float | None = None  # W: the admitted rate last measured
        self._start = 0.0  # the pace the cut started from
        self._epoch = 0.0  # when it was measured (the cubic's origin)
        self._cut_at = -math.inf  # refusals of sends made before this say nothing new
        self._measured_since = 0.0  # successes before this were not a measurement
        self._horizon = 1.0  # the limiter's window, as far as we know
        self._refusing_since: float | None = None  # a run of refusals, no success yet
        self._admitted_since_cut = True
        self._refused_since_cut = 0
        self._halved = False  # the last cut halved the pace: nothing was admitted
        self._announced: Budget | None = None
        self._announced_at = -math.inf
        self.cuts = 0  # times the pace was lowered
        self.refusals = 0

    # ------------------------------------------------------------------ reading

    @property
    def horizon(self) -> float:
        """The window the admitted rate is measured over, in seconds."""
        return self._horizon

    @property
    def estimate(self) -> float | None:
        """The admitted rate last measured, in requests/second (None before any refusal)."""
        return self._estimate

    def rate(self, now: float) -> float | None:
        """The pace in force (requests/second); None when sends are not paced."""
        pace = self._learned(now)
        if self.cap is not None:
            pace = self.cap if pace is None else min(pace, self.cap)
        return pace

    def _learned(self, now: float) -> float | None:
        if not self.adaptive:
            return None
        if self._announced is not None and now - self._announced_at < 2 * self._horizon + 1:
            return self._announced_pace()
        if self._ramping:
            while self._started and now >= self._ramp_step_at:
                self._ramp_rate *= 2
                self._ramp_step_at += _RAMP_STEP
            return self._ramp_rate if self._ramp_rate < _UNPACED else None
        assert self._estimate is not None
        # CUBIC: W (1 + c (t - K)^3), c chosen so that the pace starts where the cut put
        # it (_HEADROOM * W, or lower): flat near W, steep beyond.
        t = now - self._epoch
        c = (1 - self._start / self._estimate) / _PLATEAU**3
        return max(_MIN_RATE, self._estimate * (1 + c * (t - _PLATEAU) ** 3))

    def _announced_pace(self) -> float:
        budget = self._announced
        assert budget is not None
        pace = budget.rate
        if budget.remaining is not None and budget.remaining <= 0 and budget.reset:
            # Nothing left: spread the next sends over the time until the reset.
            pace = min(pace, 1.0 / budget.reset)
        return max(_MIN_RATE, pace)

    # ------------------------------------------------------------------ sending

    def ready_at(self, now: float) -> float:
        """The earliest time the next send may go (``now`` or later).

        Sends go one at a time through this, each timed with the pace in force when its
        turn comes: a cut slows the very next send, not only those after a queue of
        reservations made at the old pace."""
        if not self._started or self.rate(now) is None:
            return now
        return max(now, self._tat)

    def sent(self, now: float) -> None:
        """A send went ``now``."""
        if not self._started:
            self._started = True
            self._ramp_step_at = now + _RAMP_STEP
            self._measured_since = now
            self._tat = now
        interval = 1.0 / (self.rate(now) or _UNPACED)
        # One interval of slack: a send whose timer fired a little late is caught up.
        self._tat = max(self._tat, now - interval) + interval

    # ------------------------------------------------------------------ answers

    def _advance(self, now: float) -> int:
        index = int(now / _BUCKET)
        if index > self._head:
            for stale in range(max(self._head + 1, index - _HISTORY + 1), index + 1):
                self._successes[stale % _HISTORY] = 0
                self._refused[stale % _HISTORY] = 0
            self._head = index
        return self._head

    def delivered(self, span: float, now: float) -> float:
        """Successes per second over about the last ``span`` seconds."""
        last = self._advance(now)
        buckets = max(1, min(_HISTORY, round(span / _BUCKET)))
        first = last - buckets + 1
        count = sum(self._successes[i % _HISTORY] for i in range(first, last + 1))
        return count / max(_BUCKET, now - first * _BUCKET)  # the newest bucket is filling

    def _refused_share(self, span: float, now: float) -> float:
        last = self._advance(now)
        first = last - max(1, round(span / _BUCKET)) + 1
        refused = sum(self._refused[i % _HISTORY] for i in range(first, last + 1))
        admitted = sum(self._successes[i % _HISTORY] for i in range(first, last + 1))
        return refused / max(1, refused + admitted)

    def admitted(self, sent_at: float, now: float, budget: Budget | None = None) -> None:
        """A send was answered with a success."""
        self._successes[self._advance(now) % _HISTORY] += 1
        if self._refusing_since is not None:
            # The gateway refused everything for this long: its window is at least that.
            run = now - self._refusing_since
            if run > self._horizon:
                self._horizon = min(_MAX_HORIZON, float(math.ceil(run)))
            self._refusing_since = None
        if budget is not None:
            self._announce(budget, now)
        if not self._admitted_since_cut:
            self._admitted_since_cut = True
            if self._halved:
                # Admitted again after refusing everything since the last cut (a window
                # ran out): what the gateway admitted over its window is the rate to keep.
                self._halved = False
                self._cut(self.delivered(self._span(now), now), now)

    def refused(
        self,
        sent_at: float,
        now: float,
        retry_after: float | None = None,
        budget: Budget | None = None,
    ) -> bool:
        """A send was refused (429). Returns True if the pace was cut."""
        self.refusals += 1
        self._refused[self._advance(now) % _HISTORY] += 1
        if self._refusing_since is None:
            self._refusing_since = now
        if retry_after is not None and retry_after > self._horizon:
            self._horizon = min(_MAX_HORIZON, float(math.ceil(retry_after)))
        if budget is not None:
            self._announce(budget, now)
        if not self.adaptive or sent_at < self._cut_at:
            return False
        if self._ramping:
            if self._refused_share(_SHORT_SPAN, now) < _RAMP_EXIT_SHARE:
                return False  # a stray refusal (arrivals bunched up on the way): go on
            self._ramping = False
            self._measured_since = now - _SHORT_SPAN
            estimate = self.delivered(_NOW_SPAN, now)
        elif not self._admitted_since_cut:
            self._refused_since_cut += 1
            if self._refused_since_cut < _SPENT_AFTER:
                return False
            # Refused again and again, nothing admitted since the last cut: the gateway
            # admits nothing at the moment (a spent window). Halve, so that only a few
            # refusals are spent before it admits again.
            self._halved = True
            estimate = 0.5 * (self._learned(now) or _MIN_RATE)
        else:
            estimate = self.delivered(self._span(now), now)
            if self._refused_share(_NOW_SPAN, now) >= 0.5:
                # Refused more often than not right now: a burst allowance (a bucket's
                # store) may be spent, and what is admitted this very moment is the rate;
                # the span before it still counts the burst. Or a window is spent, and it
                # will admit the whole estimate again: start low, climb back fast.
                start = min(_HEADROOM * estimate, self.delivered(_NOW_SPAN, now))
                self._cut(estimate, now, start)
                estimate = -1.0
        if estimate >= 0:
            self._cut(estimate, now)
        self._admitted_since_cut = False
        self._refused_since_cut = 0
        self.cuts += 1
        return True

    def _span(self, now: float) -> float:
        return max(_MIN_SPAN, min(self._horizon, now - self._measured_since))

    def _cut(self, estimate: float, now: float, start: float | None = None) -> None:
        self._estimate = max(_MIN_RATE, estimate)
        self._start = max(_MIN_RATE, _HEADROOM * self._estimate if start is None else start)
        self._epoch = now
        self._cut_at = now

    def _announce(self, budget: Budget, now: float) -> None:
        if budget.rate > 0 and math.isfinite(budget.rate):
            self._announced = budget
            self._announced_at = now
            if self._ramping:
                self._ramping = False
                self._cut(budget.rate / _HEADROOM, now)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _ietf_params(raw: str | None) -> dict[str, float]:
    """The numeric parameters of the first item of an IETF ``RateLimit``/``RateLimit-Policy``
    field (a structured-field list: ``"default";q=100;w=10``)."""
    if not raw:
        return {}
    params: dict[str, float] = {}
    first = raw.split(",", 1)[0]
    for part in first.split(";")[1:]:
        key, _, value = part.partition("=")
        number = _number(value)
        if number is not None:
            params[key.strip().lower()] = number
    return params


def budget_from_headers(headers: Mapping[str, str]) -> Budget | None:
    """The budget a gateway announces, from Spring Cloud Gateway's ``X-RateLimit-*``
    headers or the IETF httpapi draft's ``RateLimit-Policy`` and ``RateLimit``; None
    when neither family is there (or it is unreadable). ``headers`` is looked up as
    given (aiohttp's are case-insensitive) and then in lower case."""

    def get(name: str) -> str | None:
        return headers.get(name) or headers.get(name.lower())

    rate = _number(get("X-RateLimit-Replenish-Rate"))
    if rate:
        remaining = _number(get("X-RateLimit-Remaining"))
        return Budget(rate=rate, remaining=None if remaining is None else int(remaining))
    policy = _ietf_params(get("RateLimit-Policy"))
    quota, window = policy.get("q"), policy.get("w")
    if quota and window:
        state = _ietf_params(get("RateLimit"))
        remaining = state.get("r")
        return Budget(
            rate=quota / window,
            remaining=None if remaining is None else int(remaining),
            reset=state.get("t"),
        )
    return None
