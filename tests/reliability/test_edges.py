"""Library paths the other suites leave unexercised: failing refresh-ahead, grant retries,
tokens without a refresh token, limiter hand-offs on cancellation, the rate cap's
deadline, coalescing when the leader is cancelled, and small API corners.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import orjson
import pytest

import maxa_async as maxa
from maxa_async import operations as ops
from maxa_async.auth import MemoryTokenStore, TokenManager
from maxa_async.errors import ProtocolError, ServiceError
from maxa_async.limits import Limiter, RetryBudget, RetryPolicy
from maxa_async.models import Token
from maxa_async.oauth import TokenRequest
from maxa_async.testing import FakeGateway, GatewayConfig

CREDS = maxa.Credentials("cid", "secret", "user", "password", "pid")


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _answer(access: str, refresh: str | None = "r-1", lifetime: int = 100) -> bytes:
    body: dict[str, Any] = {"access_token": access, "expires_in": lifetime}
    if refresh is not None:
        body["refresh_token"] = refresh
    return orjson.dumps(body)


class ScriptedSender:
    """Answers grant requests from a script of (status, body) pairs, recording each."""

    def __init__(self, *answers: tuple[int, bytes]) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []

    async def __call__(self, request: TokenRequest) -> tuple[int, dict[str, str], bytes]:
        self.seen.append(request.grant_type)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return status, {"requestId": f"g-{len(self.seen)}"}, body


_FAILURE = (503, b'{"status": {"statusCode": 503}}')


# --------------------------------------------------------------------------- tokens


async def test_failing_refresh_ahead_keeps_the_token_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    clock = Clock()
    send = ScriptedSender((200, _answer("a-1")), _FAILURE)
    manager = TokenManager(CREDS, send, clock=clock, grant_attempts=2, grant_backoff=0.0)
    first = await manager.get()
    clock.now += 80  # past 75% of 100 s: refresh-ahead is due, the token still good
    assert await manager.get() is first
    await asyncio.sleep(0.01)  # the background refresh runs and fails (two attempts)
    assert send.seen == ["password", "refresh_token", "refresh_token"]
    assert any("refresh-ahead failed" in r.getMessage() for r in caplog.records)
    # right after a failure no new background refresh starts; the old token serves
    assert manager.current() is first
    await asyncio.sleep(0.01)
    assert len(send.seen) == 3
    # a little later it tries again
    clock.now += 5
    assert manager.current() is first
    await asyncio.sleep(0.01)
    assert len(send.seen) == 5
    await manager.aclose()


async def test_a_token_without_refresh_token_is_renewed_by_password() -> None:
    clock = Clock()
    send = ScriptedSender((200, _answer("a-1", refresh=None)), (200, _answer("a-2", None)))
    manager = TokenManager(CREDS, send, clock=clock)  # no on_grant callback
    token = await manager.get()
    assert token.refresh_token is None
    await manager.invalidate(token)
    assert manager.token is None and manager.headers == {}
    again = await manager.get()
    assert again.access_token == "a-2"
    assert send.seen == ["password", "password"]
    await manager.aclose()
    await manager.aclose()  # idempotent, no task left


async def test_grant_retries_then_gives_up_with_the_typed_error() -> None:
    send = ScriptedSender(_FAILURE)
    manager = TokenManager(CREDS, send, grant_attempts=3, grant_backoff=0.0)
    with pytest.raises(ServiceError) as info:
        await manager.get()
    assert info.value.status == 503 and info.value.operation == "token"
    assert send.seen == ["password"] * 3


async def test_invalidating_a_stale_token_keeps_the_current_one() -> None:
    store = MemoryTokenStore()
    fresh = Token("new", "r", "bearer", None, 2e9, 100.0)
    await store.save(fresh)
    await store.invalidate("old")
    assert await store.load() is fresh
    manager = TokenManager(CREDS, ScriptedSender((200, _answer("a-1"))), store=store)
    assert (await manager.get()).access_token == "new"  # the store's token, no grant
    await manager.invalidate(Token("old", None, "bearer", None, 2e9, 100.0))
    assert manager.token is fresh


# --------------------------------------------------------------------------- limits


def test_retry_delays_with_and_without_jitter() -> None:
    steady = RetryPolicy(base_delay=0.1, max_delay=0.3, jitter=False)
    assert [steady.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    jittered = RetryPolicy(base_delay=0.1, max_delay=0.3)
    rng = random.Random(1)
    for n in (1, 2, 3, 4):
        assert steady.delay(n) / 2 <= jittered.delay(n, rng) <= steady.delay(n)
    assert RetryPolicy.for_tests().delay(3) == 0.0


def test_retry_budget_spends_and_refunds_up_to_capacity() -> None:
    budget = RetryBudget(capacity=12.0, retry_cost=5.0, timeout_cost=10.0, tokens=11.0)
    assert budget.try_spend(maxa.TransportError("t")) is True  # costs 10
    assert budget.try_spend(ServiceError("s")) is False  # 1 left, costs 5
    for _ in range(20):
        budget.refund()
    assert budget.tokens == 12.0


def test_limiter_refuses_a_bad_bound_and_a_shorter_cooldown() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        Limiter(0)
    clock = Clock()
    limiter = Limiter(4, clock=clock)
    assert limiter.cool_down(5.0) is True
    assert limiter.cool_down(1.0) is False  # does not shorten the pause
    assert limiter.cooldowns == 1
    assert limiter.cooldown_remaining == 5.0


async def test_a_waiter_cancelled_as_it_gets_a_slot_passes_it_on() -> None:
    limiter = Limiter(1, adaptive=False)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.waiting == 2
    limiter.release(started=0.0, latency=None, rate_limited=False)  # hands the slot to first
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1.0)  # the slot went on to the next waiter
    assert limiter.in_flight == 1 and limiter.waiting == 0


async def test_the_rate_cap_refuses_a_call_it_cannot_serve_before_its_deadline() -> None:
    clock = Clock(100.0)
    limiter = Limiter(8, rate_limit=1.0, clock=clock)
    await limiter.acquire(deadline=200.0)
    with pytest.raises(maxa.RateLimitedError) as info:
        await limiter.acquire(deadline=100.5)  # the next send is a second away
    assert info.value.retryable is False and info.value.retry_after == pytest.approx(1.0)
    assert limiter.in_flight == 1  # the refused call gave its slot back


# --------------------------------------------------------------------------- client


async def test_coalesced_followers_survive_their_leaders_cancellation() -> None:
    async with (
        FakeGateway(GatewayConfig(seed=4, latency=0.2)) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url) as client,
    ):
        await client.terminology_versions("ContactType")  # token first
        leader = asyncio.create_task(client.terminology("thritaEHR.Religion", "1"))
        await asyncio.sleep(0.05)
        follower = asyncio.create_task(client.terminology("thritaEHR.Religion", "1"))
        await asyncio.sleep(0.05)
        leader.cancel()
        assert await asyncio.wait_for(follower, 5.0) == "اسلام"
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert client.stats.coalesced == 1
        assert client.limiter.in_flight == 0


async def test_validate_many_reports_progress_for_every_outcome() -> None:
    async with (
        FakeGateway(GatewayConfig(seed=4)) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url) as client,
    ):
        seen: list[int] = []
        items = [maxa.CodedText("تلفن منزل", "ContactType", "1"), None] * 3
        outcomes = [o async for o in client.validate_many(items, progress=seen.append)]
    assert seen == [1, 2, 3, 4, 5, 6]
    assert [o.valid for o in outcomes] == [True, None] * 3


async def test_from_env_reads_base_and_redis_urls() -> None:
    env = {
        "MAXA_CLIENT_ID": "cid",
        "MAXA_CLIENT_SECRET": "secret",
        "MAXA_USERNAME": "user",
        "MAXA_PASSWORD": "password",
        "MAXA_PID": "pid",
        "MAXA_BASE_URL": " http://127.0.0.1:9 ",
        "MAXA_REDIS_URL": "redis://127.0.0.1:9/0",
    }
    client = maxa.MaxaClient.from_env(env)
    assert client.base_url == "http://127.0.0.1:9"
    assert client.tokens.store is not None and type(client.tokens.store) is not MemoryTokenStore
    await client.aclose()
    explicit = maxa.MaxaClient.from_env({**env, "MAXA_REDIS_URL": ""}, base_url="https://x")
    assert explicit.base_url == "https://x"
    assert type(explicit.tokens.store) is MemoryTokenStore


def test_a_parser_raising_a_maxa_error_gets_the_operation_and_request_id() -> None:
    def refuse(data: Any) -> str:
        raise ProtocolError("refused by the parser")

    call = ops.Call(ops.Request("Custom", "POST", "/x", b"{}"), refuse)
    body = b'{"result": {"data": 1}, "status": {"statusCode": 200}}'
    with pytest.raises(ProtocolError) as info:
        call.parse(200, {"requestId": "req-9"}, body)
    assert (info.value.operation, info.value.request_id) == ("Custom", "req-9")


def test_small_api_corners() -> None:
    cache = maxa.ResponseCache(maxsize=2, ttl=10)
    cache.put("a", 1)
    cache.clear()
    assert len(cache) == 0
    names = dir(maxa)
    assert "MaxaClient" in names and "RetryPolicy" in names and "CodedText" in names
    with pytest.raises(AttributeError):
        maxa.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
