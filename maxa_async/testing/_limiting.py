"""The fake gateway's limiting stage: limiters built from the knobs, and what they announce.

Kept apart from the aiohttp handlers so the decisions and header spellings can be read
(and tested) on their own: this module knows the knobs and the limiters, not HTTP.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from typing import Final

import attrs

from ._config import GatewayConfig
from ._limiters import ConcurrencyCap, RateLimiter, Verdict

__all__ = [
    "Decision",
    "Limiting",
    "Slot",
    "budget_headers",
    "retry_after_headers",
    "retry_after_value",
]

Headers = tuple[tuple[str, str], ...]


@attrs.frozen
class Slot:
    """A request's place under the concurrency cap, taken when it arrives."""

    admitted: bool
    epoch: int
    since: float  # on the limiters' clock


@attrs.frozen
class Decision:
    """What the limiters made of one request: ``refused`` is the status to answer with
    (None: it passes); ``headers`` go on the answer either way."""

    refused: int | None
    headers: Headers


@attrs.frozen
class _Budget:
    policy: str
    verdict: Verdict
    replenish_rate: float


class Limiting:
    """The concurrency cap, the rate limiter and the quota of one gateway.

    Each is built from the knobs on first use and built afresh (empty, full budget)
    on the first request after one of its knobs changes, so assigning ``rps_limit``
    mid-run takes effect at once. All of them read one clock, the wall clock by
    default, so fixed windows line up with wall-clock seconds and minutes.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._rate: RateLimiter | None = None
        self._rate_key: tuple[object, ...] | None = None
        self._quota: RateLimiter | None = None
        self._quota_key: tuple[object, ...] | None = None
        self._cap: ConcurrencyCap | None = None
        self._cap_key: tuple[object, ...] | None = None
        # Bumped whenever the cap goes away, so requests admitted before that do not
        # free places in a cap built later.
        self._cap_epoch = 0

    # -- concurrency: a place is held from arrival to the answer ------------------------------

    def arrive(self, config: GatewayConfig) -> Slot | None:
        """Take a place under the concurrency cap (None: there is no cap)."""
        cap = self._current_cap(config)
        if cap is None:
            return None
        now = self.clock()
        return Slot(cap.admit(now).admitted, self._cap_epoch, now)

    def leave(self, slot: Slot | None) -> float | None:
        """The request holding ``slot`` was answered (or abandoned). Returns the seconds
        it held its place (None when it held none)."""
        if slot is None or not slot.admitted or slot.epoch != self._cap_epoch:
            return None
        now = self.clock()
        if self._cap is not None:
            self._cap.finished(now)
        return now - slot.since

    def _current_cap(self, config: GatewayConfig) -> ConcurrencyCap | None:
        key = (config, config.concurrency_limit)
        if key == self._cap_key:
            return self._cap
        old, self._cap_key = self._cap, key
        if config.concurrency_limit is None:
            self._cap = None
            self._cap_epoch += 1
            return None
        self._cap = ConcurrencyCap(config.concurrency_limit)
        if old is not None:
            # The requests in flight still hold their places under a changed limit.
            self._cap.in_flight = old.in_flight
        return self._cap

    # -- the budget limiters -------------------------------------------------------------------

    def check(self, config: GatewayConfig, slot: Slot | None) -> Decision:
        """Decide on one request: the cap (decided at arrival), then the rate, then the quota."""
        if slot is not None and not slot.admitted:
            return Decision(config.concurrency_status, ())
        now = self.clock()
        budgets: list[_Budget] = []
        for policy, limiter, replenish in self._budget_limiters(config):
            verdict = limiter.admit(now)
            budgets.append(_Budget(policy, verdict, replenish))
            if not verdict.admitted:
                headers = budget_headers(config.rate_headers, budgets)
                if config.retry_after and verdict.retry_after is not None:
                    wait = retry_after_headers(verdict.retry_after, config.retry_after_format, now)
                    headers = (*wait, *headers)
                return Decision(429, headers)
        return Decision(None, budget_headers(config.rate_headers, budgets))

    def _budget_limiters(self, config: GatewayConfig) -> list[tuple[str, RateLimiter, float]]:
        limiters = []
        rate_key = (
            config,
            config.rate_limiter,
            config.rps_limit,
            config.rate_window,
            config.rate_burst,
            config.rate_nodes,
        )
        if rate_key != self._rate_key:
            self._rate_key, self._rate = rate_key, config.make_rate_limiter()
        if self._rate is not None and config.rps_limit is not None:
            limiters.append(("rate", self._rate, config.rps_limit))
        quota_key = (config, config.quota, config.quota_period)
        if quota_key != self._quota_key:
            self._quota_key, self._quota = quota_key, config.make_quota()
        if self._quota is not None and config.quota is not None:
            limiters.append(("quota", self._quota, config.quota / config.quota_period))
        return limiters


# -- what goes on the wire ---------------------------------------------------------------------


def retry_after_headers(seconds: float, style: str, now: float) -> Headers:
    """The headers that say a wait of ``seconds`` in ``style``: ``Retry-After`` (see
    :func:`retry_after_value`), and with ``milliseconds`` Azure's ``Retry-After-Ms``
    beside it."""
    headers: Headers = (("Retry-After", retry_after_value(seconds, style, now)),)
    if style == "milliseconds":
        millis = max(1, math.ceil(round(seconds * 1000, 3)))
        headers = (("Retry-After-Ms", str(millis)), *headers)
    return headers


def retry_after_value(seconds: float, style: str, now: float) -> str:
    """``Retry-After`` for a wait of ``seconds`` (RFC 9110 §10.2.3): whole seconds rounded
    up and at least 1 (a header cannot say "1 ms"), or the IMF-fixdate of that moment; with
    ``fractional``, the seconds to the millisecond (outside the RFC, as some gateways
    answer)."""
    whole = max(1, math.ceil(round(seconds, 6)))
    if style == "fractional":
        return f"{max(0.001, seconds):.3f}"
    if style == "http-date":
        moment = max(math.ceil(round(now + seconds, 6)), math.floor(now) + 1)
        return email.utils.formatdate(moment, usegmt=True)
    return str(whole)


#: Kong's rate-limiting periods, by their length in seconds (its header suffixes).
KONG_PERIODS: Final = {
    1.0: "Second",
    60.0: "Minute",
    3600.0: "Hour",
    86400.0: "Day",
    2592000.0: "Month",
    31536000.0: "Year",
}


def budget_headers(style: str, budgets: list[_Budget]) -> Headers:
    """The budget as Spring Cloud Gateway, the IETF httpapi draft or Kong spell it."""
    if not budgets or style == "none":
        return ()
    if style == "kong":
        return _kong_headers(budgets)
    if style == "spring":
        # Spring has one bucket to describe: the limiter that refused, else the first
        # one consulted (the rate limiter, if any).
        shown = budgets[-1] if not budgets[-1].verdict.admitted else budgets[0]
        return (
            ("X-RateLimit-Remaining", str(shown.verdict.remaining)),
            ("X-RateLimit-Replenish-Rate", _number(shown.replenish_rate)),
            ("X-RateLimit-Burst-Capacity", str(shown.verdict.limit)),
            ("X-RateLimit-Requested-Tokens", "1"),
        )
    policy_names = {"rate": "default", "quota": "quota"}
    policies = ", ".join(
        f'"{policy_names[b.policy]}";q={b.verdict.limit};w={_number(b.verdict.window)}'
        for b in budgets
    )
    states = ", ".join(
        f'"{policy_names[b.policy]}";r={b.verdict.remaining};'
        f"t={max(0, math.ceil(round(b.verdict.reset, 6)))}"
        for b in budgets
    )
    return (("RateLimit-Policy", policies), ("RateLimit", states))


def _kong_headers(budgets: list[_Budget]) -> Headers:
    """Kong's rate-limiting plugin: ``X-RateLimit-Limit-<Period>`` and
    ``X-RateLimit-Remaining-<Period>`` per limit, and the older IETF draft's
    ``RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (seconds) for the one nearest to
    running out. Kong counts in fixed windows of its periods; a limit of another shape (a
    token bucket, a 10 s window) is said per second, at its replenish rate."""
    headers: list[tuple[str, str]] = []
    for budget in budgets:
        verdict = budget.verdict
        period = KONG_PERIODS.get(verdict.window)
        if period is None:
            period, limit = "Second", max(1, round(budget.replenish_rate))
        else:
            limit = verdict.limit
        headers.append((f"X-RateLimit-Limit-{period}", str(limit)))
        headers.append((f"X-RateLimit-Remaining-{period}", str(min(limit, verdict.remaining))))
    nearest = min(budgets, key=lambda b: b.verdict.remaining)
    headers += [
        ("RateLimit-Limit", str(nearest.verdict.limit)),
        ("RateLimit-Remaining", str(nearest.verdict.remaining)),
        ("RateLimit-Reset", str(max(0, math.ceil(round(nearest.verdict.reset, 6))))),
    ]
    return tuple(headers)


def _number(value: float) -> str:
    """An integer where the value is one, else a decimal of at most three places
    (a Structured Fields decimal); never rounded down to zero."""
    if value == math.floor(value):
        return str(int(value))
    return f"{max(value, 0.001):.3f}".rstrip("0").rstrip(".")
