"""The pacer: finds the request rate a gateway admits, whatever the shape of its limiter.

Sans-I/O: every method takes ``now`` (seconds on any monotonic clock) and nothing here
sleeps. The client sends one request at a time through :meth:`Pacer.ready_at` and
:meth:`Pacer.sent`, and reports each answer back.

How it works, and why:

* **Unpaced until refused.** A gateway that never answers 429 never sees a pace.
* **Slow start.** At the first refusal the pace starts from what was admitted over the
  last second and doubles every 50 ms until refusals make up a tenth of the answers; what
  the gateway admitted of that last pace is the rate. (Measuring at the first refusal
  alone would say "one burst per second" for a token bucket with a small burst.)
* **Pace** (GCRA) just under the estimate, then probe upward on a cubic curve (CUBIC):
  flat near the estimate, so refusals stay rare while the limit holds, steep beyond it,
  so that a raised limit is found in seconds. Sends after a late timer catch up with
  the schedule (a busy event loop fires every timer late, and the pace would otherwise
  lose that lateness at every send); after a longer pause the schedule starts afresh.
* **Windows measured whole.** When a spent window admits again, what it admitted from
  the last such reopening to this one, over that time, is the rate: a window's worth,
  whatever the limit was before (so a halved limit costs one or two windows of 429s).
* **Cut** when refusals make up more than a few percent of recent answers: the successes
  counted while refused *are* the admitted rate (a delivery-rate estimate, as in BBR).
  They are counted over the limiter's window: at least a second, longer when a
  ``Retry-After`` or a run of refusals shows longer windows (one second of a fixed 10 s
  window says ten times too much, or nothing). A stray refusal (two sends that arrived
  close together at a bucket with no burst) cuts nothing: cutting on each would ratchet
  the pace down to where timing noise never bunches two sends.
* **A spent window.** Refused again and again with nothing admitted, the pace halves at
  each refusal, so only a few are spent until the gateway admits again; then the rate is
  measured afresh over the window.
* **Budget headers** (Spring's ``X-RateLimit-*``, the IETF draft's ``RateLimit``, its
  earlier ``RateLimit-Limit`` family when a window is said, as Kong says it): a
  gateway that announces its budget is believed, and never has to refuse to teach it.
  What it says remains is also how far sends may catch up with a schedule they fell
  behind (a descheduled process, a loop busy for longer than the usual catch-up): the
  gateway said it would admit them now, so the time lost is not lost for good.

A refusal of a send made before the last cut says nothing new (it went at the old pace),
so each congestion event cuts the pace once.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Mapping
from typing import Final

import attrs
from multidict import CIMultiDict, CIMultiDictProxy, istr

__all__ = ["Budget", "Pacer", "budget_from_headers"]

_BUCKET: Final = 0.05  # seconds per history bucket
_HISTORY: Final = 1280  # buckets kept: 64 s, longer than the longest window measured
_MAX_HORIZON: Final = 60.0  # windows longer than this are quotas: a cooldown, not a pace
_RAMP_STEP: Final = 0.05  # the slow start doubles the pace this often
_RAMP_FLOOR: Final = 20.0  # and starts from at least this (answers may still be on the way)
_RAMP_EXIT_SHARE: Final = 0.1  # refused share of recent answers that ends the slow start
_RECENT: Final = 50  # the last answers at a pace that say whether it is too fast
_CUT_REFUSALS: Final = 2  # refusals among them that cut it (one is a stray)
_NOW_SPAN: Final = 0.1  # "right now", for the refused share and the slow start's estimate
_HEADROOM: Final = 0.97  # pace this share of the estimate after a cut
_BUDGET_HEADROOM: Final = 0.99  # and of an announced rate
_PLATEAU: Final = 1.5  # seconds to climb back to the estimate (CUBIC's K)
_MIN_RATE: Final = 2.0  # the slowest pace: how often a spent window is probed
_MIN_REFUSALS: Final = 3  # refusals at a pace before it may be judged too fast
_SPENT_AFTER: Final = 8  # refusals in a row at a pace, nothing admitted: a spent window
_MIN_SAMPLE: Final = 20  # answers at a pace before a few refusals may cut it
_UNPACED: Final = 1e6  # a pace this high paces nothing
_CATCH_UP: Final = 0.05  # seconds of lateness paced sends may make up
_BUDGET_CATCH_UP: Final = 0.5  # share of an announced remaining budget sends may make up


@attrs.frozen
class Budget:
    """What a gateway announced in rate-limit headers: the requests per second it
    replenishes, how many it would admit now, and the seconds until it is whole again
    (None where a header family leaves one out)."""

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
        # Nothing is paced (no cap, never refused, no budget announced lately): sends need
        # no turn and leave no schedule. Set again by rate() whenever it finds no pace.
        self.quiet = cap is None
        self._tat = 0.0  # GCRA theoretical arrival time of the next send
        self._successes = [0] * _HISTORY
        self._head = 0  # absolute index of the newest history bucket
        self._limited = False  # refused at least once: paced from then on
        self._ramping = False  # in the slow start
        self._ramp_rate = 0.0
        self._ramp_step_at = 0.0
        self._sent_in_step = 0
        self._estimate: float | None = None  # W: the admitted rate last measured
        self._start = 0.0  # the pace the last cut started from
        self._epoch = 0.0  # when (the cubic's origin)
        self._cut_at = -math.inf  # refusals of sends made before this say nothing new
        self._horizon = 1.0  # the limiter's window, as far as we know
        self._refusing_since: float | None = None  # a run of refusals, no success yet
        self._last_refusal = 0.0
        self._measured_since = 0.0  # successes before this went at unsaturated paces
        # Answers to sends made since the last cut (at the pace in force), and in the
        # slow start per doubling step.
        self._fresh_admitted = self._fresh_refused = 0
        self._step_admitted = self._step_refused = 0
        self._last_step_answers = self._last_step_refused = 0
        self._recent: collections.deque[bool] = collections.deque(maxlen=_RECENT)
        self._halved = False  # the pace was halved: nothing was being admitted
        self._admitted_total = 0
        # When a spent window last admitted again, and the successes counted by then.
        self._reopened: tuple[float, int] | None = None
        self._hold_until = 0.0  # an announced budget ran out: no send before this
        self._announced: Budget | None = None
        self._announced_at = -math.inf
        self._catch_up = _CATCH_UP  # seconds of lateness sends may make up now
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
        self.quiet = pace is None
        return pace

    def paced(self, now: float) -> bool:
        """Whether sends are paced now (a send must take its turn through ready_at)."""
        return not self.quiet and self.rate(now) is not None

    def _announced_lately(self, now: float) -> bool:
        """A budget announced within two windows and a second is still believed."""
        return now - self._announced_at < 2 * self._horizon + 1

    def _learned(self, now: float) -> float | None:
        if not self.adaptive:
            return None
        if self._announced is not None and self._announced_lately(now):
            return _BUDGET_HEADROOM * self._announced.rate
        if not self._limited:
            return None
        if self._ramping:
            if now >= self._ramp_step_at:
                # Double only a pace that was used: callers that were not sending (all
                # waiting out a Retry-After, say) tested nothing at this pace.
                if self._sent_in_step >= 0.5 * self._ramp_rate * _RAMP_STEP:
                    self._ramp_rate *= 2
                self._sent_in_step = 0
                self._last_step_answers = self._step_admitted + self._step_refused
                self._last_step_refused = self._step_refused
                self._step_admitted = self._step_refused = 0
                self._ramp_step_at = now + _RAMP_STEP
            return self._ramp_rate if self._ramp_rate < _UNPACED else None
        assert self._estimate is not None
        # CUBIC: W (1 + c (t - K)^3), c chosen so that the pace starts where the cut put
        # it (_HEADROOM * W, or lower): flat near W, steep beyond.
        t = now - self._epoch
        # At least the headroom's climb: a pace cut to the floor (start = W = _MIN_RATE)
        # must still probe upward.
        c = (1 - min(self._start, _HEADROOM * self._estimate) / self._estimate) / _PLATEAU**3
        pace = self._estimate * (1 + c * (t - _PLATEAU) ** 3)
        if pace > self._estimate:
            # Probe past W no further than twice what was delivered lately: a pace that
            # grew while callers were idle would be a burst when they come back.
            pace = min(pace, max(self._estimate, 2 * self.delivered(1.0, now)))
        return max(_MIN_RATE, pace)

    # ------------------------------------------------------------------ sending

    def ready_at(self, now: float) -> float:
        """The earliest time the next send may go (``now`` or later).

        Sends go one at a time through this, each timed with the pace in force when its
        turn comes: a cut slows the very next send, not only those after a queue of
        reservations made at the old pace."""
        if self.rate(now) is None:
            return max(now, self._hold_until)
        return max(now, self._tat, self._hold_until)

    def sent(self, now: float) -> None:
        """A send went ``now``."""
        if self.quiet:
            return  # no schedule to keep: the first pace starts its own from then
        self._sent_in_step += 1
        interval = 1.0 / (self.rate(now) or _UNPACED)
        # A send whose timer fired late keeps the schedule, so the next ones catch up
        # (on a busy event loop every timer fires late, and a schedule restarted at each
        # send would lose the lateness every time); after a pause longer than the catch-up
        # (or than half of what a budget announced lately says remains), the schedule
        # starts again from now, so an idle spell never buys a burst the gateway did not
        # offer.
        slack = max(interval, self._catch_up if self._announced_lately(now) else _CATCH_UP)
        base = self._tat if self._tat >= now - slack else now
        self._tat = base + interval

    # ------------------------------------------------------------------ history

    def _advance(self, now: float) -> int:
        index = int(now / _BUCKET)
        if index > self._head:
            for stale in range(max(self._head + 1, index - _HISTORY + 1), index + 1):
                self._successes[stale % _HISTORY] = 0
            self._head = index
        return self._head

    def _first(self, span: float, now: float) -> tuple[int, int]:
        last = self._advance(now)
        return last - max(1, min(_HISTORY, round(span / _BUCKET))) + 1, last

    def delivered(self, span: float, now: float) -> float:
        """Successes per second over about the last ``span`` seconds."""
        first, last = self._first(span, now)
        count = sum(self._successes[i % _HISTORY] for i in range(first, last + 1))
        return count / max(_BUCKET, now - first * _BUCKET)  # the newest bucket is filling

    def most_delivered(self, span: float, within: float, now: float) -> float:
        """The most successes per second over any ``span`` seconds of the last ``within``."""
        width = max(1, round(span / _BUCKET))
        first, last = self._first(within, now)
        counts = [self._successes[i % _HISTORY] for i in range(first, last + 1)]
        best = running = sum(counts[:width])
        for i in range(width, len(counts)):
            running += counts[i] - counts[i - width]
            best = max(best, running)
        return best / (width * _BUCKET)

    # ------------------------------------------------------------------ answers

    def admitted(self, sent_at: float, now: float, budget: Budget | None = None) -> None:
        """A send was answered with a success."""
        self._successes[self._advance(now) % _HISTORY] += 1
        self._admitted_total += 1
        if not self._limited and budget is None and self._refusing_since is None:
            return  # never refused: only the history counts (a first refusal starts afresh)
        if self._refusing_since is not None:
            # Nothing was admitted from the first refusal of the run to the last: the
            # gateway's window is at least that long.
            run = self._last_refusal - self._refusing_since
            if run >= 1.0 and run > self._horizon:
                self._horizon = min(_MAX_HORIZON, float(math.ceil(run)))
            self._refusing_since = None
        if budget is not None:
            self._announce(budget, now)
        if sent_at < self._cut_at:
            return  # sent at an old pace: says nothing about the new one
        self._fresh_admitted += 1
        self._step_admitted += 1
        self._recent.append(False)
        if self._halved:
            self._halved = False
            self._cut(self._window_rate(now), now)
            self._measured_since = now - self._horizon
            self._reopened = (now, self._admitted_total)

    def _window_rate(self, now: float) -> float:
        """What a window admits, measured as a spent window admits again."""
        if self._reopened is not None:
            then, count = self._reopened
            admitted = self._admitted_total - 1 - count
            if 0.75 * self._horizon <= now - then <= 2.5 * self._horizon and admitted > 0:
                # One cycle since the last reopening: everything the gateway admitted
                # from one opening to the next, over that time (what a window holds,
                # however its limit changed before). A "cycle" well short of the window
                # began with a stray success (one send let through while the window was
                # still spent), and says nothing of what a window holds.
                return admitted / (now - then)
        # The first cycle: the most it admitted in one window lately (the probes that
        # found it open came late, so the last window's worth of time may have missed
        # the burst that spent it).
        return self.most_delivered(self._horizon, 3 * self._horizon, now)

    def refused(
        self,
        sent_at: float,
        now: float,
        retry_after: float | None = None,
        budget: Budget | None = None,
    ) -> bool:
        """A send was refused (429). Returns True if the pace was cut."""
        self.refusals += 1
        self._advance(now)
        if self._refusing_since is None:
            self._refusing_since = now
        self._last_refusal = now
        if retry_after is not None and retry_after > self._horizon:
            self._horizon = min(_MAX_HORIZON, float(math.ceil(retry_after)))
        if budget is not None:
            self._announce(budget, now)
        if not self.adaptive or sent_at < self._cut_at:
            return False  # sent at an old pace: reacted to already
        self._fresh_refused += 1
        self._step_refused += 1
        if not self._limited:
            # The first refusal: from now on sends are paced, starting from what was
            # admitted over the last second and doubling until refusals say "too fast".
            self._limited = True
            self.quiet = False
            self._ramping = True
            self._ramp_rate = max(_RAMP_FLOOR, self.delivered(1.0, now))
            self._ramp_step_at = now + _RAMP_STEP
            self._sent_in_step = 0
            self._tat = now
            self._measured_since = now  # what came before was a burst, not a rate
            self._mark_cut(now)
            return True
        if self._fresh_refused < _MIN_REFUSALS:
            return False  # too few answers at this pace to tell anything yet
        if not self._fresh_admitted and self._fresh_refused >= _SPENT_AFTER:
            # Refused again and again, nothing admitted at all lately: the gateway admits
            # nothing at the moment (a spent window). Halve, so that only a few refusals
            # are spent before it admits again.
            pace = self._learned(now) or _MIN_RATE
            self._ramping = False
            self._halved = True
            self._cut(0.5 * pace, now, 0.5 * pace)
            return True
        if self._ramping:
            answers = self._step_refused + self._step_admitted + self._last_step_answers
            share = (self._step_refused + self._last_step_refused) / max(1, answers)
            if share < _RAMP_EXIT_SHARE:
                return False
            # The ramp's pace is past the limit: what the gateway admits of it is the rate
            # (the successes before it went at slower, earlier paces). Or a window is
            # spent, and what it admitted over the window is: whichever is larger.
            self._ramping = False
            self._measured_since = max(self._measured_since, now - _NOW_SPAN)
            self._cut(max(self._ramp_rate * (1 - share), self.delivered(self._horizon, now)), now)
            return True
        self._recent.append(True)
        if len(self._recent) < _MIN_SAMPLE or sum(self._recent) < _CUT_REFUSALS:
            return False  # a stray refusal: sends bunched up on the way
        # What the gateway admitted over its window, or of the pace just refused
        # (whichever is larger: callers that sent less than the pace allowed make the
        # first too low; a spent window makes the second nothing).
        span = min(self._horizon, max(_NOW_SPAN, now - self._measured_since))
        pace = self._learned(now) or 0.0
        admitted_share = 1 - sum(self._recent) / len(self._recent)
        estimate = max(self.delivered(span, now), pace * admitted_share)
        start = None
        if self._fresh_refused >= self._fresh_admitted:
            # Refused more often than not at this pace: a burst allowance (a bucket's
            # store) is spent and what is admitted this very moment is the rate, or a
            # window is spent and will admit the whole estimate again: start low, climb
            # back fast.
            start = min(_HEADROOM * estimate, self.delivered(_NOW_SPAN, now))
        self._cut(estimate, now, start)
        return True

    def _mark_cut(self, now: float) -> None:
        self._cut_at = now
        self._fresh_admitted = self._fresh_refused = 0
        self._step_admitted = self._step_refused = 0
        self._last_step_answers = self._last_step_refused = 0
        self._recent.clear()
        self.cuts += 1

    def _cut(self, estimate: float, now: float, start: float | None = None) -> None:
        self._estimate = max(_MIN_RATE, estimate)
        self._start = max(_MIN_RATE, _HEADROOM * self._estimate if start is None else start)
        self._start = min(self._start, self._estimate)
        self._epoch = now
        self._mark_cut(now)

    def _announce(self, budget: Budget, now: float) -> None:
        if not (budget.rate > 0 and math.isfinite(budget.rate)):
            return
        self._announced = budget
        self._announced_at = now
        # Half of what it says remains (the rest is for sends already on the way, which
        # its count does not hold yet), as time at the announced rate.
        self._catch_up = _CATCH_UP
        if budget.remaining is not None and budget.remaining > 0:
            self._catch_up = max(_CATCH_UP, _BUDGET_CATCH_UP * budget.remaining / budget.rate)
        self.quiet = not self.adaptive and self.cap is None
        if budget.remaining is not None and budget.remaining <= 0:
            # Nothing left: hold every send for one interval of the announced rate. (Not
            # until the reset: a token bucket's "whole again" is when it is full, long
            # after its next token; a spent window's refusals are handled as any.)
            self._hold_until = max(self._hold_until, now + 1.0 / budget.rate)


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


#: The budget headers' names (``istr``: see ``envelope.REQUEST_ID``).
_REPLENISH_RATE: Final = istr("X-RateLimit-Replenish-Rate")
_REMAINING: Final = istr("X-RateLimit-Remaining")
_POLICY: Final = istr("RateLimit-Policy")
_STATE: Final = istr("RateLimit")
_LIMIT: Final = istr("RateLimit-Limit")  # the IETF draft's earlier fields
_LIMIT_LEFT: Final = istr("RateLimit-Remaining")
_LIMIT_RESET: Final = istr("RateLimit-Reset")
#: Kong's per-period budget: the limit, what remains, and the period's seconds.
_KONG_PERIODS: Final = tuple(
    (istr(f"X-RateLimit-Limit-{name}"), istr(f"X-RateLimit-Remaining-{name}"), seconds)
    for name, seconds in (
        ("Second", 1.0),
        ("Minute", 60.0),
        ("Hour", 3600.0),
        ("Day", 86400.0),
        ("Month", 2592000.0),
        ("Year", 31536000.0),
    )
)
#: A ``RateLimit-Reset`` this large is a Unix time, not seconds from now.
_EPOCH_RESET: Final = 1e9


def budget_from_headers(headers: Mapping[str, str]) -> Budget | None:
    """The budget a gateway announces, from Spring Cloud Gateway's ``X-RateLimit-*``
    headers, the IETF httpapi draft's ``RateLimit-Policy`` and ``RateLimit``, or the
    draft's earlier ``RateLimit-Limit`` family (with its window, or with Kong's
    ``X-RateLimit-Limit-<Period>``); None when none is there, or none says a rate.
    Names are case-insensitive."""
    if not isinstance(headers, (CIMultiDictProxy, CIMultiDict)):  # aiohttp's are
        headers = CIMultiDict(headers)
    replenish = headers.get(_REPLENISH_RATE)
    if replenish is not None:
        rate = _number(replenish)
        if rate:
            remaining = _number(headers.get(_REMAINING))
            return Budget(rate=rate, remaining=None if remaining is None else int(remaining))
    raw_policy = headers.get(_POLICY)
    if raw_policy is not None:
        policy = _ietf_params(raw_policy)
        quota, window = policy.get("q"), policy.get("w")
        if quota and window:
            state = _ietf_params(headers.get(_STATE))
            remaining = state.get("r")
            return Budget(
                rate=quota / window,
                remaining=None if remaining is None else int(remaining),
                reset=state.get("t"),
            )
        return None
    raw_limit = headers.get(_LIMIT)
    if raw_limit is not None:
        return _earlier_draft_budget(raw_limit, headers)
    return None


def _earlier_draft_budget(raw_limit: str, headers: Mapping[str, str]) -> Budget | None:
    """``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (the IETF draft before
    ``RateLimit-Policy``; Kong, and many API gateways' plugins) say how many remain but
    not over what window, unless the limit lists its policies (``10, 10;w=1``) or Kong's
    per-period headers are beside them. With several limits, the slowest sustained rate
    is the one a long run must keep (a second's limit of 100 and an hour's of 50,000:
    about 14 a second)."""
    slowest: tuple[float, float | None] | None = None  # (rate, remaining)
    for limit_name, left_name, seconds in _KONG_PERIODS:
        limit = _number(headers.get(limit_name))
        if limit:
            rate = limit / seconds
            if slowest is None or rate < slowest[0]:
                slowest = (rate, _number(headers.get(left_name)))
    if slowest is None:
        for item in raw_limit.split(",")[1:]:  # the quota policies after the limit
            quota, _, params = item.partition(";")
            window = _ietf_params(";" + params).get("w")
            count = _number(quota)
            if count and window and (slowest is None or count / window < slowest[0]):
                slowest = (count / window, None)
    if slowest is None:
        return None
    rate, remaining = slowest
    if remaining is None:
        remaining = _number(headers.get(_LIMIT_LEFT))
    reset = _number(headers.get(_LIMIT_RESET))
    if reset is not None and reset >= _EPOCH_RESET:
        reset = max(0.0, reset - time.time())
    return Budget(rate=rate, remaining=None if remaining is None else int(remaining), reset=reset)
