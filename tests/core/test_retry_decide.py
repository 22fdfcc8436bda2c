"""RetryPolicy.decide: the one retry decision (retry.py), as a table of cases with exact
values (jitter off), then the jitter's bounds and the config errors."""

from __future__ import annotations

import random

import pytest

import maxa_async as maxa
from maxa_async import limits
from maxa_async.errors import (
    AuthenticationError,
    ClientLimitError,
    ConfigError,
    InvalidInputError,
    MaxaError,
    ProtocolError,
    RateLimitedError,
    ServiceError,
    TransportError,
    error_for_status,
)
from maxa_async.retry import RetryBudget, RetryPolicy, Timeout

#: base 0.1 s doubling to 5 s, no jitter: back-offs 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, 5 ...
EXACT = RetryPolicy(attempts=5, deadline=10.0, jitter=False)


def limited(retry_after: float | None) -> RateLimitedError:
    error = error_for_status(429, operation="Terminology", request_id=None, retry_after=retry_after)
    assert isinstance(error, RateLimitedError)
    return error


def failed(status: int, retry_after: float | None = None) -> MaxaError:
    return error_for_status(
        status, operation="Terminology", request_id=None, retry_after=retry_after
    )


CASES: list[tuple[str, RetryPolicy, MaxaError, int, float, float | None]] = [
    # (what, policy, error, attempt, elapsed, expected)
    ("a 503, first retry: the base delay", EXACT, failed(503), 1, 0.0, 0.1),
    ("a 503, third retry: doubled twice", EXACT, failed(503), 3, 0.0, 0.4),
    ("a transport error backs off as a 5xx", EXACT, TransportError("reset"), 2, 0.0, 0.2),
    ("the last attempt is not retried", EXACT, failed(503), 5, 0.0, None),
    ("past the last attempt neither", EXACT, failed(503), 6, 0.0, None),
    ("a 404 is not retryable", EXACT, failed(404), 1, 0.0, None),
    ("a 401 is not a retry (the client replays it)", EXACT, failed(401), 1, 0.0, None),
    ("an unreadable answer is not retried", EXACT, ProtocolError("?"), 1, 0.0, None),
    ("a client-side limit is not retried", EXACT, ClientLimitError("cap"), 1, 0.0, None),
    ("a back-off that ends at the deadline", EXACT, failed(503), 1, 9.9, 0.1),
    ("a back-off that would pass the deadline", EXACT, failed(503), 1, 9.95, None),
    (
        "the back-off is capped at max_delay",
        RetryPolicy(attempts=20, jitter=False),
        failed(503),
        10,
        0.0,
        5.0,
    ),
    ("a 429 without Retry-After backs off", EXACT, limited(None), 2, 0.0, 0.2),
    ("a 429's Retry-After is the wait", EXACT, limited(0.7), 1, 0.0, 0.7),
    ("a Retry-After of 0", EXACT, limited(0.0), 1, 0.0, 0.0),
    ("a long Retry-After within the deadline", EXACT, limited(8.0), 1, 1.0, 8.0),
    ("a Retry-After past the deadline gives up", EXACT, limited(8.0), 1, 2.5, None),
    (
        "a Retry-After at max_retry_after",
        RetryPolicy(max_retry_after=3.0, jitter=False),
        limited(3.0),
        1,
        0.0,
        3.0,
    ),
    (
        "a Retry-After over max_retry_after gives up",
        RetryPolicy(max_retry_after=3.0, jitter=False),
        limited(3.5),
        1,
        0.0,
        None,
    ),
    ("a 503's Retry-After is the wait", EXACT, failed(503, 0.7), 1, 0.0, 0.7),
    ("a 503's long Retry-After gives up", EXACT, failed(503, 90.0), 1, 0.0, None),
    ("a 500 says nothing of when (ignored)", EXACT, failed(500, 0.7), 1, 0.0, 0.1),
    (
        "a Retry-After is waited with the back-off off",
        RetryPolicy.for_tests(),
        limited(0.5),
        1,
        0.0,
        0.5,
    ),
    ("the back-off off: no wait", RetryPolicy.for_tests(), failed(502), 4, 0.0, 0.0),
    ("the back-off off still counts attempts", RetryPolicy.for_tests(), failed(502), 5, 0.0, None),
    ("one attempt: no retry", RetryPolicy(attempts=1), failed(503), 1, 0.0, None),
    (
        "retry_on wins over the table",
        RetryPolicy(retry_on=lambda e: e.status == 404, jitter=False),
        failed(404),
        1,
        0.0,
        0.1,
    ),
    (
        "retry_on can refuse what the table retries",
        RetryPolicy(retry_on=lambda e: False),
        failed(503),
        1,
        0.0,
        None,
    ),
    (
        "attempts are checked before retry_on",
        RetryPolicy(attempts=2, retry_on=lambda e: True),
        failed(404),
        2,
        0.0,
        None,
    ),
]


@pytest.mark.parametrize(
    ("policy", "error", "attempt", "elapsed", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    policy: RetryPolicy, error: MaxaError, attempt: int, elapsed: float, expected: float | None
) -> None:
    assert policy.decide(error, attempt, elapsed) == expected


def test_decide_is_pure() -> None:
    error = failed(503)
    answers = {EXACT.decide(error, 2, 1.0) for _ in range(50)}
    assert answers == {0.2}
    assert error.retryable is True and error.status == 503  # the error is left as it was


def test_the_jitter_stays_in_the_upper_half_and_follows_the_rng() -> None:
    policy = RetryPolicy(attempts=10, deadline=100.0)
    for attempt in range(1, 10):
        ceiling = EXACT.delay(attempt)
        for seed in range(20):
            wait = policy.decide(failed(503), attempt, 0.0, rng=random.Random(seed))
            assert wait is not None and ceiling / 2 <= wait <= ceiling
            again = policy.decide(failed(503), attempt, 0.0, rng=random.Random(seed))
            assert wait == again


def test_a_retry_after_is_never_jittered() -> None:
    policy = RetryPolicy()
    assert {policy.decide(limited(0.25), 1, 0.0, rng=random.Random(s)) for s in range(20)} == {0.25}


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RetryPolicy(attempts=0), "RetryPolicy.attempts"),
        (lambda: RetryPolicy(attempts=True), "RetryPolicy.attempts"),
        (lambda: RetryPolicy(deadline=0), "RetryPolicy.deadline"),
        (lambda: RetryPolicy(max_delay=float("inf")), "RetryPolicy.max_delay"),
        (lambda: RetryPolicy(max_retry_after=-1), "RetryPolicy.max_retry_after"),
        (lambda: RetryPolicy(retry_on="yes"), "RetryPolicy.retry_on"),
        (lambda: Timeout(connect=0), "Timeout.connect"),
        (lambda: Timeout(request=float("nan")), "Timeout.request"),
        (lambda: RetryBudget(capacity=-1), "RetryBudget.capacity"),
        (lambda: RetryBudget(retry_cost=float("nan")), "RetryBudget.retry_cost"),
        (lambda: RetryBudget(tokens=-5), "RetryBudget.tokens"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_option(make: object, field: str) -> None:
    assert callable(make)
    with pytest.raises(ConfigError) as caught:
        make()
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, InvalidInputError) and isinstance(caught.value, ValueError)


def test_the_policies_are_the_same_classes_wherever_imported() -> None:
    assert limits.RetryPolicy is maxa.RetryPolicy is RetryPolicy
    assert limits.RetryBudget is maxa.RetryBudget is RetryBudget
    assert limits.Timeout is maxa.Timeout is Timeout
    assert maxa.ConfigError is ConfigError and maxa.ClientLimitError is ClientLimitError


def test_client_limit_errors_are_rate_limits_of_no_status() -> None:
    error = ClientLimitError("30 grants a minute", retry_after=12.0, operation="token")
    assert isinstance(error, RateLimitedError)
    assert (error.status, error.retryable, error.retry_after) == (None, False, 12.0)
    assert not isinstance(AuthenticationError("x"), RateLimitedError)
    assert not isinstance(ServiceError("x"), RateLimitedError)
