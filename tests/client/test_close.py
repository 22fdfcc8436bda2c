"""aclose() with calls in flight or queued: one clear error each, nothing sent after it,
no session reopened (issue 15, item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

import maxa_async as maxa
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


async def _until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def _items(count: int) -> list[maxa.CodedText]:
    return [maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
            for i in range(count)]  # fmt: skip


async def test_calls_in_flight_and_queued_end_with_client_closed(gateway: FakeGateway) -> None:
    client = maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, max_concurrency=8, coalesce=False
    )
    await client.terminology(*RELIGION)  # the token, outside the counts
    gateway.config.latency = 0.3
    calls = [asyncio.ensure_future(client.validate_cts(item)) for item in _items(100)]
    await _until(lambda: gateway.stats.in_flight >= 8)
    sent_at_close = gateway.stats.requests
    await client.aclose()
    results = await asyncio.gather(*calls, return_exceptions=True)
    await asyncio.sleep(0.4)  # anything still on its way would reach the gateway by now
    assert sent_at_close == 1 + 8  # the token's lookup, then the 8 in flight
    assert gateway.stats.requests == sent_at_close  # nothing left after the close
    assert all(isinstance(r, maxa.ClientClosedError) for r in results), results[:3]
    assert client.stats.failures == 100
    assert client.limiter.in_flight == 0 and client.limiter.waiting == 0
    assert client._transport.session is None  # closed, and not reopened
    with pytest.raises(maxa.ClientClosedError):
        await client.terminology(*RELIGION)
    with pytest.raises(RuntimeError, match="closed"):  # ClientClosedError is one too
        await client.open()
    assert gateway.stats.requests == sent_at_close


async def test_a_bulk_run_stops_with_client_closed(gateway: FakeGateway) -> None:
    client = maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url, max_concurrency=4)
    await client.terminology(*RELIGION)
    gateway.config.latency = 0.2
    outcomes: list[maxa.ValidationOutcome] = []

    async def run() -> None:
        async for outcome in client.validate_many(_items(1000)):
            outcomes.append(outcome)

    task = asyncio.ensure_future(run())
    await _until(lambda: gateway.stats.in_flight >= 4)
    sent_at_close = gateway.stats.requests
    await client.aclose()
    with pytest.raises(maxa.ClientClosedError):
        await task
    await asyncio.sleep(0.3)
    assert gateway.stats.requests == sent_at_close
    assert outcomes == []  # the first items were in flight: none was answered


@pytest.fixture
async def slow_token_endpoint() -> AsyncIterator[tuple[str, list[str]]]:
    """A token endpoint that takes 0.5 s to answer a grant, counting the grants."""
    grants: list[str] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        grants.append(str(form.get("grant_type")))
        await asyncio.sleep(0.5)
        return web.json_response(
            {
                "access_token": "t",
                "token_type": "bearer",
                "refresh_token": "r",
                "expires_in": 900,
            }
        )

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", grants
    finally:
        await runner.cleanup()


async def test_closing_during_the_first_grant(
    slow_token_endpoint: tuple[str, list[str]], gateway: FakeGateway
) -> None:
    base_url, grants = slow_token_endpoint
    client = maxa.MaxaClient(gateway.credentials, base_url=base_url, coalesce=False)
    calls = [asyncio.ensure_future(client.validate_cts(item)) for item in _items(8)]
    await _until(lambda: bool(grants))
    await client.aclose()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, maxa.ClientClosedError) for r in results), results
    await asyncio.sleep(0.7)  # past the first grant's answer: no second grant follows
    assert grants == ["password"]


async def test_a_callers_own_cancellation_stays_a_cancellation(gateway: FakeGateway) -> None:
    client = maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url)
    await client.terminology(*RELIGION)
    gateway.config.latency = 0.5
    call = asyncio.ensure_future(client.terminology("eRx", "60002"))
    await _until(lambda: gateway.stats.in_flight >= 1)
    call.cancel()  # the caller gives up, and the client closes in the same turn
    await client.aclose()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_closing_twice_and_closing_an_idle_client_are_harmless(
    gateway: FakeGateway,
) -> None:
    client = maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url)
    await client.aclose()
    await client.aclose()
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as used:
        assert await used.terminology(*RELIGION) == "اسلام"
    await used.aclose()
