"""A token read from Redis is checked as a token from the gateway is (issue 15, item 7):
an unusable one is dropped with one warning and a fresh grant follows; calls succeed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

import maxa_async as maxa
from maxa_async.auth import TokenManager
from maxa_async.fleet import default_key_prefix
from maxa_async.models import Token
from maxa_async.oauth import TokenRequest
from maxa_async.testing import FakeGateway, GatewayConfig

RELIGION = ("thritaEHR.Religion", "1")
CALLS = 200


def _stored(**fields: Any) -> bytes:
    """A token as the fleet stores it, valid for an hour unless ``fields`` say otherwise."""
    lifetime = 3600.0
    token: dict[str, Any] = {
        "access_token": "planted-token",
        "refresh_token": "planted-refresh",
        "token_type": "bearer",
        "scope": "read",
        "expires_at": time.time() + lifetime,
        "lifetime": lifetime,
    }
    token.update(fields)
    return orjson.dumps(token)


BAD = {
    "crlf-in-access-token": _stored(access_token="abc\r\nX-Injected: 1"),
    "lf-in-access-token": _stored(access_token="abc\ndef"),
    "space-in-access-token": _stored(access_token="abc def"),
    "non-ascii-access-token": _stored(access_token="t\u00f6ken"),
    "empty-access-token": _stored(access_token=""),
    "number-access-token": _stored(access_token=12345),
    "crlf-in-refresh-token": _stored(refresh_token="r\r\nx"),
    "not-bearer": _stored(token_type="mac"),
    "negative-lifetime": _stored(lifetime=-5),
    "expiry-a-string": _stored(expires_at="soon"),
    "a-list": orjson.dumps(["planted-token"]),
    "no-lifetime": orjson.dumps({"access_token": "planted-token", "token_type": "bearer"}),
    "not-json": b"\x00\xffgarbage",
}


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig(seed=3)) as gw:
        yield gw


async def _plant(redis_url: str, credentials: maxa.Credentials, raw: bytes) -> str:
    key = f"{default_key_prefix(credentials)}:token"
    async with aioredis.from_url(redis_url) as peek:
        await peek.set(key, raw, px=600_000)
    return key


def _client(gateway: FakeGateway, redis_url: str) -> maxa.MaxaClient:
    return maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        redis_url=redis_url,
        coalesce=False,
        retry=maxa.RetryPolicy.for_tests(),
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("maxa_async") and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("raw", BAD.values(), ids=BAD)
async def test_a_bad_stored_token_is_dropped_and_one_grant_follows(
    raw: bytes, redis_url: str, gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    key = await _plant(redis_url, gateway.credentials, raw)
    async with _client(gateway, redis_url) as client:
        results = await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(CALLS)))
        token = client.tokens.token
    assert results == ["اسلام"] * CALLS
    assert gateway.stats.token_requests == gateway.stats.password_grants == 1
    assert gateway.stats.requests == CALLS
    assert gateway.stats.responses_by_status == {200: CALLS}
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "stored token" in warnings[0], warnings
    assert "planted" not in warnings[0] and "abc" not in warnings[0]
    # the fresh token replaced the bad one for the whole fleet
    async with aioredis.from_url(redis_url) as peek:
        stored = orjson.loads(await peek.get(key))
    assert token is not None and stored["access_token"] == token.access_token


async def test_four_processes_finding_a_bad_token_make_one_grant(
    redis_url: str, gateway: FakeGateway
) -> None:
    await _plant(redis_url, gateway.credentials, BAD["crlf-in-access-token"])
    clients = [_client(gateway, redis_url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(c.terminology(*RELIGION) for c in clients for _ in range(CALLS // 4))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert results == ["اسلام"] * CALLS
    assert gateway.stats.token_requests == 1


async def test_a_bad_token_planted_while_running_is_dropped_at_the_next_refresh(
    redis_url: str, gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    async with _client(gateway, redis_url) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
        await _plant(redis_url, gateway.credentials, BAD["crlf-in-access-token"])
        gateway.revoke_all_tokens()  # the next call gets a 401 and refreshes
        results = await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(CALLS)))
    assert results == ["اسلام"] * CALLS
    assert (gateway.stats.password_grants, gateway.stats.refresh_grants) == (1, 1)
    assert len(_warnings(caplog)) == 1


class _Grants:
    def __init__(self) -> None:
        self.sent = 0

    async def __call__(self, request: TokenRequest) -> tuple[int, dict[str, str], bytes]:
        self.sent += 1
        body = {"access_token": f"fresh-{self.sent}", "expires_in": 600}
        return 200, {}, orjson.dumps(body)


class _PlantedStore:
    """Any store (here one of the test's own) that hands back an unusable token."""

    def __init__(self, token: Token) -> None:
        self.token: Token | None = token

    async def load(self) -> Token | None:
        return self.token

    async def save(self, token: Token) -> None:
        self.token = token

    async def invalidate(self, access_token: str) -> None:
        if self.token is not None and self.token.access_token == access_token:
            self.token = None

    def refresh_lease(self) -> Any:
        from maxa_async.auth import MemoryTokenStore

        return MemoryTokenStore().refresh_lease()

    async def aclose(self) -> None:
        """Nothing to release (the TokenStore protocol asks for it)."""


@pytest.mark.parametrize(
    "planted",
    [
        Token("abc\r\ndef", None, "bearer", None, time.time() + 600, 600.0),
        Token("abc", None, "bearer", None, float("inf"), 600.0),
        Token("abc", None, "bearer", None, time.time() + 0.5, 0.5),  # dies at once
        Token("abc", None, "MAC", None, time.time() + 600, 600.0),
    ],
    ids=["crlf", "never-expires", "short-lived", "not-bearer"],
)
async def test_the_manager_checks_any_stores_token(
    planted: Token, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="maxa_async")
    send = _Grants()
    store = _PlantedStore(planted)
    manager = TokenManager(maxa.Credentials("c", "s", "u", "p", "pid"), send, store=store)
    tokens = await asyncio.gather(*(manager.get() for _ in range(20)))
    assert {t.access_token for t in tokens} == {"fresh-1"}
    assert send.sent == 1
    assert store.token is tokens[0]
    assert len(_warnings(caplog)) == 1
    await manager.aclose()
