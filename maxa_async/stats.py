"""Counters and timings of one client, cheap enough to keep on the hot path."""

from __future__ import annotations

import collections
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["ClientStats"]

_LATENCY_WINDOW = 10_000


class ClientStats:
    """What a client did. Read it live (``client.stats``) or as a dict (``as_dict()``).

    Nothing here holds a credential or a token.
    """

    def __init__(self) -> None:
        # Plain dicts on the hot path (``d[k] += 1`` on a dict subclass such as Counter
        # takes Python's slow path); read through the Counter views.
        self.sent: dict[str, int] = {}  # sends, by operation
        self.answered: dict[int, int] = {}  # answers, by gateway status (0 = transport)
        self.retries: Counter[str] = Counter()  # by cause: "429", "503", "transport", ...
        self.calls = 0  # calls made by users (coalesced or cached ones included)
        self.failures = 0  # calls that ended in an error
        self.rate_limited = 0  # 429 answers
        self.cooldowns = 0  # client-wide pauses started by a Retry-After
        self.replays_after_401 = 0
        self.password_grants = 0
        self.refresh_grants = 0
        self.failed_grants = 0
        self.grant_failure_episodes = 0  # runs of failed grants (each logged once, WARNING)
        self.grants_skipped = 0  # grants not sent while paused after failures
        self.rejected_fresh_tokens = 0  # new tokens answered 401 before any other answer
        self.coalesced = 0  # calls answered by another call's request
        self.cache_hits = 0
        self.retry_budget_exhausted = 0
        self.queue_wait_total = 0.0  # seconds spent waiting for a slot, summed
        #: Fleet mode: a callable returning the fleet's own counters (degraded, ...).
        self.fleet: Callable[[], dict[str, Any]] | None = None
        #: The token manager's grant guard, as a callable returning its state (failures in
        #: a row, paused, retry_at on the wall clock, grants in the last minute).
        self.grants: Callable[[], dict[str, Any]] | None = None
        #: The client's limiter, as a callable returning its state (limit, pace, ...).
        self.limiter: Callable[[], dict[str, Any]] | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)

    @property
    def requests(self) -> Counter[str]:
        """Requests sent, by operation (a snapshot)."""
        return Counter(self.sent)

    @property
    def responses(self) -> Counter[int]:
        """Answers, by the gateway's HTTP status; 0 counts transport failures (a snapshot)."""
        return Counter(self.answered)

    def record_grant(self, grant_type: str, ok: bool) -> None:
        if not ok:
            self.failed_grants += 1
        elif grant_type == "refresh_token":
            self.refresh_grants += 1
        else:
            self.password_grants += 1

    def record_latency(self, seconds: float) -> None:
        self._latencies.append(seconds)

    def latency_percentiles(self) -> dict[str, float]:
        """p50/p90/p99/max in seconds over the last 10,000 answers."""
        if not self._latencies:
            return {}
        ordered = sorted(self._latencies)
        last = len(ordered) - 1

        def pick(q: float) -> float:
            return ordered[min(last, round(q * last))]

        return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}

    def as_dict(self) -> dict[str, Any]:
        result = {
            "calls": self.calls,
            "failures": self.failures,
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "retries": dict(self.retries),
            "rate_limited": self.rate_limited,
            "cooldowns": self.cooldowns,
            "replays_after_401": self.replays_after_401,
            "password_grants": self.password_grants,
            "refresh_grants": self.refresh_grants,
            "failed_grants": self.failed_grants,
            "grant_failure_episodes": self.grant_failure_episodes,
            "grants_skipped": self.grants_skipped,
            "rejected_fresh_tokens": self.rejected_fresh_tokens,
            "coalesced": self.coalesced,
            "cache_hits": self.cache_hits,
            "retry_budget_exhausted": self.retry_budget_exhausted,
            "queue_wait_total": round(self.queue_wait_total, 6),
            "latency": self.latency_percentiles(),
        }
        if self.grants is not None:
            result["grants"] = self.grants()
        if self.limiter is not None:
            result["limiter"] = self.limiter()
        if self.fleet is not None:
            result["fleet"] = self.fleet()
        return result
