"""A 503 that says when the service is back (Retry-After): the call waits that long
before its retry, or fails at once when that is longer than it may wait. Against the
fake gateway, with exact counts of sends."""

from __future__ import annotations

import time

import pytest

import maxa_async as maxa
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


def _sends(gateway: FakeGateway) -> int:
    return gateway.stats.responses_by_status.get(503, 0)


async def test_a_short_retry_after_on_a_503_is_waited_before_the_retry(
    gateway: FakeGateway,
) -> None:
    # Back-off alone would retry within a few milliseconds.
    policy = maxa.RetryPolicy(attempts=3, base_delay=0.001, jitter=False)
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=policy
    ) as client:
        await client.terminology(*RELIGION)  # the token, before the clock starts
        gateway.config.update(
            error_rate=1.0,
            error_statuses=(503,),
            error_retry_after=0.25,
            retry_after_format="fractional",
        )
        started = time.monotonic()
        with pytest.raises(maxa.ServiceError) as caught:
            await client.terminology("eRx", "60002")
        waited = time.monotonic() - started
    assert _sends(gateway) == 3
    assert waited >= 2 * 0.25  # two retries, each after the wait the gateway asked for
    assert caught.value.status == 503 and caught.value.retry_after == 0.25
    assert client.stats.as_dict()["retries"] == {"503": 2}


async def test_a_503_that_is_back_later_than_max_retry_after_fails_at_once(
    gateway: FakeGateway,
) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        await client.terminology(*RELIGION)
        gateway.config.update(error_rate=1.0, error_statuses=(503,), error_retry_after=120)
        with pytest.raises(maxa.ServiceError) as caught:
            await client.terminology("eRx", "60002")
    assert _sends(gateway) == 1  # the default policy waits at most 60 s
    assert caught.value.retry_after == 120.0


async def test_a_503_that_is_back_after_the_calls_deadline_fails_at_once(
    gateway: FakeGateway,
) -> None:
    policy = maxa.RetryPolicy(attempts=5, deadline=1.0)
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=policy
    ) as client:
        await client.terminology(*RELIGION)
        gateway.config.update(error_rate=1.0, error_statuses=(503,), error_retry_after=2)
        with pytest.raises(maxa.ServiceError) as caught:
            await client.terminology("eRx", "60002")
    assert _sends(gateway) == 1
    assert caught.value.retry_after == 2.0


async def test_a_503_without_retry_after_still_backs_off(gateway: FakeGateway) -> None:
    policy = maxa.RetryPolicy(attempts=3, backoff=False)
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=policy
    ) as client:
        await client.terminology(*RELIGION)
        gateway.config.update(error_rate=1.0, error_statuses=(503,))
        with pytest.raises(maxa.ServiceError) as caught:
            await client.terminology("eRx", "60002")
    assert _sends(gateway) == 3
    assert caught.value.retry_after is None
