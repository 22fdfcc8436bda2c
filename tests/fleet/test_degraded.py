"""Redis failing must not stop the fleet: per-process fallback, one warning, stats, and
back to Redis after the back-off. Also: lazy connection, event loops, no secret logged."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest

import maxa_async as maxa
from maxa_async.fleet import Fleet
from maxa_async.models import Token
from maxa_async.testing import FakeGateway, GatewayConfig

from .conftest import RedisServer, free_port

CREDS = maxa.Credentials(
    client_id="client-d", client_secret="secret", username="user-d", password="pw", pid="pid-d"
)


_EXPIRES = time.time() + 3600


def _token(name: str) -> Token:
    return Token(f"access-{name}", f"refresh-{name}", "bearer", None, _EXPIRES, 3600.0)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "maxa_async.fleet" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


async def test_no_redis_at_all_means_per_process_behaviour_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = Fleet(f"redis://127.0.0.1:{free_port()}/0", credentials=CREDS, rate_limit=1)
    store, gate = fleet.token_store, fleet.rate_gate
    await store.save(_token("one"))
    assert await store.load() == _token("one")  # from this process's memory
    async with store.refresh_lease() as leader:
        assert leader is True  # this process grants for itself
    started = time.monotonic()
    for _ in range(20):  # no global gate: the 1/s fleet budget does not apply
        await gate.acquire(None)
    await gate.cool_down(60)
    await gate.acquire(time.monotonic() + 0.1)  # no fleet cooldown either
    assert time.monotonic() - started < 15.0  # the fleet's budget would take 19 s
    await store.invalidate("access-one")
    assert await store.load() is None
    stats = fleet.stats()
    assert stats["degraded"] is True
    assert stats["redis_errors"] == 1  # the rest waited for the back-off, not for Redis
    assert len(_warnings(caplog)) == 1
    await fleet.aclose()


async def test_redis_back_after_the_backoff_resumes_fleet_mode(
    private_redis: Callable[[], RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="maxa_async.fleet")
    server = private_redis()
    fleet = Fleet(server.url, credentials=CREDS, retry_after=0.3)
    other = Fleet(server.url, credentials=CREDS)
    await fleet.token_store.save(_token("shared"))
    server.stop()
    assert await fleet.token_store.load() == _token("shared")  # from memory
    assert fleet.degraded
    server.start()  # same port, empty (no persistence)
    assert await fleet.token_store.load() == _token("shared")  # still backing off
    await asyncio.sleep(0.35)
    await other.token_store.save(_token("after"))
    assert await fleet.token_store.load() == _token("after")  # from Redis again
    assert fleet.stats()["degraded"] is False
    assert any("resumed" in r.getMessage() for r in caplog.records)
    server.stop()
    await asyncio.sleep(0.35)
    await fleet.rate_gate.acquire(None)
    assert fleet.stats()["degradations"] == 2
    assert len(_warnings(caplog)) == 2  # one per outage, not one per failed call
    await fleet.aclose()
    await other.aclose()


async def test_a_hung_redis_times_out_instead_of_hanging_the_client(
    silent_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    fleet = Fleet(f"redis://127.0.0.1:{silent_server}/0", credentials=CREDS, redis_timeout=0.2)
    started = time.monotonic()
    await fleet.rate_gate.acquire(None)
    assert time.monotonic() - started < 15.0  # not hung
    assert fleet.degraded
    assert len(_warnings(caplog)) == 1
    await fleet.aclose()


async def test_a_client_with_an_unreachable_redis_still_validates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    async with (
        FakeGateway(GatewayConfig()) as gateway,
        maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url, redis_url=url) as client,
    ):
        items = [
            maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
            for i in range(50)
        ]
        outcomes = [outcome async for outcome in client.validate_many(items)]
        assert all(outcome.ok for outcome in outcomes)
        fleet = client.tokens.store.fleet  # type: ignore[attr-defined]
        assert fleet.stats()["degraded"] is True
        assert client.stats.as_dict()["fleet"]["degraded"] is True  # surfaced in client stats
        assert gateway.stats.password_grants == 1
        assert "hunter2" not in repr(fleet)
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "hunter2" not in " ".join(r.getMessage() for r in caplog.records)


def test_built_outside_a_loop_and_used_by_one_loop_after_another(redis_url: str) -> None:
    fleet = Fleet(redis_url, credentials=CREDS)  # no loop running: nothing connects

    async def round_trip(name: str) -> Token | None:
        await fleet.token_store.save(_token(name))
        try:
            return await fleet.token_store.load()
        finally:
            await fleet.aclose()

    assert asyncio.run(round_trip("first")) == _token("first")
    assert asyncio.run(round_trip("second")) == _token("second")
    assert fleet.stats()["redis_errors"] == 0


@pytest.mark.parametrize(
    "options",
    [
        {"rate_limit": 0},
        {"rate_limit": float("inf")},
        {"burst": 0},
        {"lease_seconds": float("nan")},
        {"retry_after": -1},
        {"poll_interval": True},
        {"key_prefix": " "},
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, object]) -> None:
    with pytest.raises(maxa.InvalidInputError, match=next(iter(options))):
        Fleet("redis://127.0.0.1:6379/0", credentials=CREDS, **options)  # type: ignore[arg-type]
