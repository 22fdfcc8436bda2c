"""Per-call options (with_options), response metadata and hooks (issue 17, in part),
against the fake gateway, with exact counts."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

import maxa_async as maxa
from maxa_async.events import RequestEvent, ResponseEvent
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


async def test_on_response_gives_the_request_id_status_and_attempts_of_a_success(
    gateway: FakeGateway,
) -> None:
    events: list[ResponseEvent] = []
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, on_response=events.append
    ) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
    [event] = events
    assert event.operation == "Terminology" and event.status == 200 and event.ok
    assert event.attempts == 1 and not event.cached and not event.coalesced
    assert event.request_id is not None and len(event.request_id) >= 8
    assert 0 < event.elapsed < 5


async def test_on_response_after_retries_and_for_failures(gateway: FakeGateway) -> None:
    events: list[ResponseEvent] = []
    policy = maxa.RetryPolicy(attempts=3, backoff=False)
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=policy, on_response=events.append
    ) as client:
        await client.terminology(*RELIGION)
        gateway.config.update(error_rate=1.0, error_statuses=(503,))
        with pytest.raises(maxa.ServiceError):
            await client.terminology("eRx", "60002")
        gateway.config.error_rate = 0.0
        with pytest.raises(maxa.NotFoundError):
            await client.terminology("thritaEHR.Religion", "424242")
    failed, missing = events[1], events[2]
    assert (
        failed.attempts == 3
        and failed.status == 503
        and isinstance(failed.error, maxa.ServiceError)
    )
    assert failed.request_id == failed.error.request_id is not None
    assert missing.attempts == 1 and missing.status == 200  # an inner 404 in an outer 200
    assert isinstance(missing.error, maxa.NotFoundError)


async def test_cached_and_coalesced_calls_say_so(gateway: FakeGateway) -> None:
    events: list[ResponseEvent] = []
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        cache=maxa.ResponseCache(),
        on_response=events.append,
    ) as client:
        await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(3)))
        await client.terminology(*RELIGION)
    assert [(e.cached, e.coalesced, e.attempts) for e in events] == [
        (False, False, 1),
        (False, True, 0),
        (False, True, 0),
        (True, False, 0),
    ]
    assert gateway.stats.requests_by_operation["Terminology"] == 1


async def test_on_request_adds_a_correlation_header_to_every_attempt() -> None:
    seen: list[tuple[str | None, str | None]] = []
    gateway = FakeGateway()
    app = gateway.make_app()

    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        seen.append((request.headers.get("X-Correlation-Id"), request.headers.get("pid")))
        return await handler(request)

    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    attempts: list[int] = []

    def correlate(event: RequestEvent) -> None:
        attempts.append(event.attempt)
        event.headers["X-Correlation-Id"] = f"rx-42/{event.attempt}"
        event.headers["pid"] = "someone-else"  # the protocol's own: refused

    try:
        async with maxa.MaxaClient(
            gateway.credentials,
            base_url=base_url,
            retry=maxa.RetryPolicy(attempts=2, backoff=False),
            on_request=correlate,
        ) as client:
            gateway.config.update(error_rate=1.0, error_statuses=(503,))
            with pytest.raises(maxa.ServiceError):
                await client.terminology(*RELIGION)
    finally:
        await runner.cleanup()
    operations = [pair for pair in seen if pair[0] is not None]
    assert operations == [
        ("rx-42/1", gateway.config.pid),
        ("rx-42/2", gateway.config.pid),
    ]
    assert attempts == [1, 2]


async def test_a_hook_that_raises_never_breaks_a_call(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("audit log is down")

    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, on_request=broken, on_response=broken
    ) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("on_request hook failed" in m for m in messages)
    assert any("on_response hook failed" in m for m in messages)


async def test_with_options_shares_pool_token_and_limiter_but_not_options(
    gateway: FakeGateway,
) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        quick = client.with_options(timeout=0.3, retry=maxa.RetryPolicy(attempts=2), deadline=1)
        assert quick.limiter is client.limiter and quick.tokens is client.tokens
        assert quick.stats is client.stats
        assert await quick.terminology(*RELIGION) == "اسلام"
        assert await client.terminology("eRx", "60002")
        gateway.config.latency = 0.5
        with pytest.raises(maxa.TransportError):
            await quick.terminology("eRx", "60003")  # 2 attempts of 0.3 s each
        gateway.config.latency = 0.2
        assert await client.terminology("eRx", "60004")  # the client's own 30 s limit
    assert gateway.stats.password_grants == 1  # one token for both
    assert client.stats.requests["Terminology"] == 1 + 1 + 2 + 1


async def test_a_calls_deadline_covers_its_queueing(gateway: FakeGateway) -> None:
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, max_concurrency=1, coalesce=False
    ) as client:
        await client.terminology(*RELIGION)
        gateway.config.latency = 1.0
        slow = asyncio.ensure_future(client.terminology(*RELIGION))  # holds the one slot
        await asyncio.sleep(0.05)
        quick = client.with_options(deadline=0.3)
        with pytest.raises(maxa.TransportError, match=r"deadline of 0\.3s"):
            await quick.terminology(*RELIGION)  # never got the slot
        assert not slow.done()  # it failed at its deadline, not when the slot came free
        assert await slow == "اسلام"
        assert client.limiter.in_flight == 0 and client.limiter.waiting == 0
    assert gateway.stats.requests_by_operation["Terminology"] == 2  # the quick one sent none


def test_with_options_refuses_bad_values_naming_the_field() -> None:
    creds = maxa.Credentials(client_id="c", client_secret="s", username="u", password="p", pid="x")
    client = maxa.MaxaClient(creds)
    for options, field in (
        ({"timeout": -1}, "timeout"),
        ({"retry": 3}, "retry"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": float("nan")}, "deadline"),
    ):
        with pytest.raises(maxa.InvalidInputError) as info:
            client.with_options(**options)  # type: ignore[arg-type]
        assert info.value.field == field


async def test_closing_the_client_closes_its_views(gateway: FakeGateway) -> None:
    client = maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url)
    view = client.with_options(deadline=5)
    assert await view.terminology(*RELIGION) == "اسلام"
    await client.aclose()
    with pytest.raises(maxa.ClientClosedError):
        await view.terminology(*RELIGION)
