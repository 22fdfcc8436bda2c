"""How a call retries: per-attempt time limits, the retry policy, the retry budget.

* :class:`Timeout` bounds each attempt.
* :class:`RetryPolicy` says which errors are retried, how long to back off (exponential,
  jittered between half and all of the ceiling) and bounds attempts and total time. Its
  :meth:`~RetryPolicy.decide` is the one place a retry is decided: for MAXA calls and
  token grants alike.
* :class:`RetryBudget` is a token bucket shared by all calls of one client, so a sick
  gateway is not hammered by the retries of thousands of callers (botocore's quota idea).

Sans-I/O: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import attrs

from .errors import ConfigError, MaxaError, TransportError

__all__ = ["RetryBudget", "RetryPolicy", "Timeout"]


def _retryable(error: MaxaError) -> bool:
    return error.retryable


def finite_number(value: object) -> bool:
    """A real number (not a bool, not NaN or infinite): what every limit and setting of
    the library must be (the one check, shared by the limiter, grants and options)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@attrs.frozen(kw_only=True)
class Timeout:
    """Per-attempt time limits in seconds. Waiting for a slot is not counted."""

    connect: float = 10.0
    request: float = 30.0

    def __attrs_post_init__(self) -> None:
        for name in ("connect", "request"):
            value = getattr(self, name)
            if not finite_number(value) or value <= 0:
                raise ConfigError(f"Timeout.{name}", f"must be a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries of one call. All MAXA operations are read-only, so replay is always safe.

    ``attempts`` counts sends (1 = no retry); ``deadline`` bounds a call's total time from
    its first send (seconds spent waiting for a free slot are not counted): no retry starts
    whose wait would end past it. ``max_retry_after`` is the longest Retry-After a call
    waits for; a longer one ends the call at once with the error (a RateLimitedError
    for a 429, a ServiceError for a 503), whose ``retry_after`` says when to come back.
    ``backoff=False`` turns the back-off off, for tests (a Retry-After is still waited).
    ``retry_on`` decides which errors are retried; by default those the status table
    marks retryable (429, 499, 5xx, 520, transport errors). A 401 is not a retry: it
    refreshes the token and replays the call (up to three times, for tokens revoked
    again meanwhile), whatever this says.
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
        attempts = self.attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigError("RetryPolicy.attempts", f"must be an int >= 1, got {attempts!r}")
        if not finite_number(self.deadline) or self.deadline <= 0:
            raise ConfigError(
                "RetryPolicy.deadline", f"must be positive seconds, got {self.deadline!r}"
            )
        for name in ("base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not finite_number(value) or value < 0:
                raise ConfigError(f"RetryPolicy.{name}", f"must be a number >= 0, got {value!r}")
        if not callable(self.retry_on):
            raise ConfigError("RetryPolicy.retry_on", "must be callable")

    @classmethod
    def for_tests(cls, attempts: int = 5) -> RetryPolicy:
        """No sleeping between retries (Retry-After cooldowns still apply)."""
        return cls(attempts=attempts, backoff=False)

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Back-off before retry number ``retry`` (1-based): exponential and capped, drawn
        between half the ceiling and all of it (so retries never bunch at zero)."""
        if not self.backoff:
            return 0.0
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        if not self.jitter:
            return ceiling
        return float((rng or random).uniform(ceiling / 2, ceiling))

    def decide(
        self,
        error: MaxaError,
        attempt: int,
        elapsed: float,
        *,
        rng: random.Random | None = None,
    ) -> float | None:
        """Whether to try again after attempt number ``attempt`` (1-based) failed with
        ``error``, ``elapsed`` seconds into the call (from its first send): the seconds to
        wait before the next attempt, or None to give up.

        It gives up when ``retry_on`` says no, when ``attempts`` are spent, when the
        gateway's Retry-After is longer than ``max_retry_after``, or when the wait would
        end past ``deadline``. The wait is the Retry-After when the error carries one (a
        429 or 503 that said it), else the back-off of :meth:`delay`. Pure: no clock, no
        sleep, no state; ``rng`` draws the jitter.
        """
        if attempt >= self.attempts or not self.retry_on(error):
            return None
        retry_after = error.retry_after
        if retry_after is None:
            wait = self.delay(attempt, rng)
        elif retry_after > self.max_retry_after:
            return None
        else:
            wait = retry_after
        if elapsed + wait > self.deadline:
            return None
        return wait


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
        for name in ("capacity", "retry_cost", "timeout_cost", "success_refund"):
            value = getattr(self, name)
            if not finite_number(value) or value < 0:
                raise ConfigError(f"RetryBudget.{name}", f"must be a number >= 0, got {value!r}")
        if self.tokens is None:
            self.tokens = self.capacity
        elif not finite_number(self.tokens) or self.tokens < 0:
            raise ConfigError("RetryBudget.tokens", f"must be a number >= 0, got {self.tokens!r}")

    def try_spend(self, error: MaxaError) -> bool:
        cost = self.timeout_cost if isinstance(error, TransportError) else self.retry_cost
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def refund(self) -> None:
        if self.tokens < self.capacity:
            self.tokens = min(self.capacity, self.tokens + self.success_refund)
