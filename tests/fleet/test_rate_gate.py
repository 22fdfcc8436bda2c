"""RedisRateGate against a real Redis: one GCRA budget and one cooldown for every process."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import redis.asyncio as aioredis

import maxa_async as maxa
from maxa_async.fleet import RedisRateGate
from maxa_async.testing import FakeGateway, GatewayConfig

from .conftest import make_gate

CREDS = maxa.Credentials(
    client_id="client-g", client_secret="secret", username="user-g", password="pw", pid="pid-g"
)


def _gate(stack: contextlib.AsyncExitStack, redis_url: str, **options: object) -> RedisRateGate:
    return make_gate(stack, redis_url, CREDS, **options)


async def _timed(gate: RedisRateGate, deadline: float | None = None) -> float:
    await gate.acquire(deadline)
    return time.monotonic()


async def test_three_processes_share_one_requests_per_second_budget(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    members = [_gate(gates, redis_url, rate_limit=100) for _ in range(3)]
    started = time.monotonic()
    sends = await asyncio.gather(*(_timed(members[i % 3]) for i in range(60)))
    offsets = sorted(t - started for t in sends)
    # Send k never goes before its slot, k / 100 s after the first (a busy machine may
    # wake a sender late, never early); all 60 took about 0.59 s.
    for k, offset in enumerate(offsets):
        assert offset >= k * 0.01 - 0.005, (k, offset)
    assert offsets[-1] < 1.5


async def test_burst_lets_that_many_go_at_once(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url, rate_limit=2, burst=10)
    await asyncio.gather(*(gate.acquire(None) for _ in range(10)))
    assert gate.waits == 0  # ten went at once
    await gate.acquire(None)  # the eleventh waits for the steady rate
    assert gate.waits == 1
    assert 0.0 < gate.wait_total <= 0.5


async def test_a_cooldown_set_by_one_process_pauses_another(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    told, other = _gate(gates, redis_url), _gate(gates, redis_url)
    await told.cool_down(0.4)
    started = time.monotonic()
    await other.acquire(None)
    assert 0.35 < time.monotonic() - started < 10.0
    assert told.cooldowns == 1


async def test_a_shorter_cooldown_never_shortens_a_longer_one(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    await gate.cool_down(1.0)
    await gate.cool_down(0.1)
    async with aioredis.from_url(redis_url) as peek:
        assert await peek.pttl(gate.fleet.key("cooldown")) > 800
    assert gate.cooldowns == 1


async def test_a_cooldown_past_the_deadline_raises_at_once_with_retry_after(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    await gate.cool_down(30.0)
    started = time.monotonic()
    with pytest.raises(maxa.RateLimitedError) as caught:
        await gate.acquire(started + 0.2)
    assert time.monotonic() - started < 15.0  # at once, not after the pause
    assert caught.value.retry_after is not None and 15.0 < caught.value.retry_after <= 30.0
    assert caught.value.retryable is False


async def test_a_budget_full_past_the_deadline_raises_without_taking_a_slot(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url, rate_limit=10)
    await asyncio.gather(*(gate.acquire(None) for _ in range(3)))  # next free slot: +0.3 s
    with pytest.raises(maxa.RateLimitedError) as caught:
        await gate.acquire(time.monotonic() + 0.05)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0.05
    waited = gate.wait_total
    await gate.acquire(None)  # the refused call took no slot: this one waits ~0.1 s, not 0.2
    assert gate.wait_total - waited < 0.15


async def test_without_a_rate_limit_only_the_cooldown_applies(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    await asyncio.gather(*(gate.acquire(None) for _ in range(300)))
    assert gate.waits == 0


async def test_a_cooldown_begun_while_a_sender_waits_for_its_slot_holds_it_back(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate, other = _gate(gates, redis_url, rate_limit=5), _gate(gates, redis_url, rate_limit=5)
    await gate.acquire(None)
    started = time.monotonic()
    waiting = asyncio.create_task(_timed(gate))  # its slot is 0.2 s away
    await asyncio.sleep(0.05)
    await other.cool_down(0.5)  # a 429 elsewhere in the fleet
    sent = await waiting
    assert sent - started >= 0.5


async def test_a_long_retry_after_in_one_client_pauses_every_client_of_the_fleet(
    redis_url: str,
) -> None:
    # A quota of 5 per 3 s: its 429s say "nothing until then" (a short Retry-After would
    # only slow the pace of the process that got it).
    async with (
        FakeGateway(GatewayConfig(quota=5, quota_period=3.0)) as gateway,
        maxa.MaxaClient(
            gateway.credentials,
            base_url=gateway.base_url,
            redis_url=redis_url,
            retry=maxa.RetryPolicy(attempts=1),
        ) as first,
        maxa.MaxaClient(
            gateway.credentials, base_url=gateway.base_url, redis_url=redis_url
        ) as second,
    ):
        items = [
            maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
            for i in range(10)
        ]
        results = await asyncio.gather(
            *(first.validate_cts(item) for item in items), return_exceptions=True
        )
        assert any(isinstance(r, maxa.RateLimitedError) for r in results)
        limited = gateway.stats.rate_limited
        started = time.monotonic()
        await second.validate_cts(items[0])  # waits out the fleet's cooldown: no 429
        assert time.monotonic() - started > 0.2
        assert gateway.stats.rate_limited == limited
        assert second.stats.rate_limited == 0
