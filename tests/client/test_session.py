"""What the client's own aiohttp session sends and keeps, seen from a real server: a
User-Agent naming the library, no cookies carried from one answer to the next request;
and the stats' per-operation and per-status counts, kept in plain dicts, read as Counter
snapshots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

import maxa_async as maxa
from maxa_async.testing import FakeGateway, GatewayConfig

RELIGION = ("thritaEHR.Religion", "1")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_the_client_names_itself_and_carries_no_cookies() -> None:
    seen: list[tuple[str, str, str | None]] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(
            (request.path, request.headers.get("User-Agent", ""), request.headers.get("Cookie"))
        )
        response = await handler(request)
        response.set_cookie("BIGipServer", "pool-7", path="/")  # a balancer's affinity cookie
        return response

    gateway = FakeGateway(GatewayConfig(seed=7))
    app = gateway.make_app()
    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        # localhost, not 127.0.0.1: aiohttp's default jar ignores cookies of IP hosts, so
        # only a name shows whether a jar would carry the cookie (with one, this fails)
        async with maxa.MaxaClient(
            gateway.credentials, base_url=f"http://localhost:{port}"
        ) as client:
            assert await client.terminology(*RELIGION)
            assert await client.terminology("thritaEHR.Religion", "2")
    finally:
        await runner.cleanup()
    paths = [path for path, _, _ in seen]
    assert paths[0] == "/oauth/token" and len(paths) == 3
    assert all(agent.startswith(f"maxa-async/{maxa.__version__} aiohttp/") for _, agent, _ in seen)
    assert [cookie for _, _, cookie in seen] == [None, None, None]


async def test_counts_by_operation_and_status_read_as_counters(make_client, gateway) -> None:
    async with make_client() as client:
        await client.terminology(*RELIGION)
        await client.terminology(*RELIGION)
        item = maxa.CodedText(value="x", terminology_id="thritaEHR.Religion", coded_string="1")
        assert await client.validate_cts(item) is False
        requests = client.stats.requests
        assert requests == Counter({"Terminology": 2, "ValidateCts": 1})
        assert isinstance(requests, Counter)
        assert client.stats.responses == Counter({200: 3})
        requests["Terminology"] += 10  # a snapshot: the client's own counts are untouched
        assert client.stats.requests["Terminology"] == 2
        assert client.stats.requests["SearchTerminology"] == 0  # Counter: absent reads 0
        summary = client.stats.as_dict()
        assert summary["requests"] == {"Terminology": 2, "ValidateCts": 1}
        assert summary["requests_total"] == 3
        assert summary["responses"] == {"200": 3}
