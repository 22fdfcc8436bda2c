"""aiohttp client middlewares (``middlewares=``, issue 17): a backend's own request and
response logic on the client's session, against the fake gateway, with exact counts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import maxa_async as maxa
from maxa_async.events import ResponseEvent
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")

Middleware = Any  # aiohttp.ClientMiddlewareType, spelled loosely for the test doubles
ClientFactory = Callable[..., maxa.MaxaClient]  # the make_client fixture


def _endpoint(request: aiohttp.ClientRequest | web.Request) -> str:
    """``token`` or the operation's wire name: the last part of the path."""
    return request.url.path.rsplit("/", 1)[-1]


@asynccontextmanager
async def _recording_gateway(
    headers_seen: list[tuple[str, str | None]], header: str
) -> AsyncIterator[tuple[FakeGateway, str]]:
    """A fake gateway whose server records ``header`` of every request it receives (the
    fake itself keeps no request headers); its base URL."""
    gateway = FakeGateway()
    app = gateway.make_app()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        headers_seen.append((_endpoint(request), request.headers.get(header)))
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield gateway, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _counting(seen: list[tuple[str, str, int]]) -> Middleware:
    """A middleware that notes (method, endpoint, status) of every request it passes."""

    async def count(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        seen.append((request.method, _endpoint(request), response.status))
        return response

    return count


async def test_a_correlation_header_reaches_the_gateway_on_every_request() -> None:
    at_gateway: list[tuple[str, str | None]] = []
    statuses: list[int] = []
    numbers = iter(range(1, 100))

    async def correlate(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        request.headers["X-Correlation-Id"] = f"rx-42/{next(numbers)}"
        response = await handler(request)
        statuses.append(response.status)
        return response

    async with (
        _recording_gateway(at_gateway, "X-Correlation-Id") as (gateway, base_url),
        maxa.MaxaClient(gateway.credentials, base_url=base_url, middlewares=[correlate]) as client,
    ):
        assert await client.terminology(*RELIGION) == "اسلام"
        assert await client.validate_cts(
            maxa.CodedText(value="اسلام", terminology_id=RELIGION[0], coded_string="1")
        )
    # The token grant goes through the same session: the middleware sees it too.
    assert at_gateway == [
        ("token", "rx-42/1"),
        ("Terminology", "rx-42/2"),
        ("ValidateCts", "rx-42/3"),
    ]
    assert statuses == [200, 200, 200]


async def test_a_retry_is_two_requests_to_a_middleware(
    gateway: FakeGateway, make_client: ClientFactory
) -> None:
    seen: list[tuple[str, str, int]] = []
    authorization: list[str] = []
    count = _counting(seen)

    async def heal_after_one_503(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        # What a middleware is handed: the credentials too (the docs say: never log them).
        authorization.append(request.headers["Authorization"].split(" ")[0])
        response = await handler(request)
        if response.status == 503:
            gateway.config.error_rate = 0.0  # the next attempt is answered
        return response

    gateway.config.update(error_rate=1.0, error_statuses=(503,))
    async with make_client(middlewares=[count, heal_after_one_503]) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
    assert seen == [
        ("POST", "token", 200),
        ("GET", "Terminology", 503),
        ("GET", "Terminology", 200),
    ]
    assert authorization == ["Basic", "Bearer", "Bearer"]
    assert gateway.stats.requests_by_operation["Terminology"] == 2
    assert gateway.stats.token_requests == 1
    assert client.stats.retries["503"] == 1


async def test_an_audit_middleware_logs_the_status_and_request_id_of_each_request(
    gateway: FakeGateway, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    audit = logging.getLogger("test.audit")
    events: list[ResponseEvent] = []

    async def audit_log(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        audit.info(
            "%s %d requestId=%s",
            _endpoint(request),
            response.status,
            response.headers.get("requestId"),
        )
        return response

    caplog.set_level(logging.INFO, logger="test.audit")
    async with make_client(middlewares=[audit_log], on_response=events.append) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
        with pytest.raises(maxa.NotFoundError):
            await client.terminology(RELIGION[0], "424242")
    lines = [r.getMessage() for r in caplog.records if r.name == "test.audit"]
    assert [line.split(" requestId=")[0] for line in lines] == [
        "token 200",
        "Terminology 200",
        "Terminology 200",  # not found is an inner 404 in an outer 200
    ]
    request_ids = [line.split("requestId=")[1] for line in lines]
    assert all(len(request_id) >= 8 for request_id in request_ids)
    assert len(set(request_ids)) == 3
    # The middleware and the on_response hook see the same request id of each call.
    assert [event.request_id for event in events] == request_ids[1:]


async def test_with_options_views_share_the_middlewares(
    gateway: FakeGateway, make_client: ClientFactory
) -> None:
    seen: list[tuple[str, str, int]] = []
    async with make_client(middlewares=[_counting(seen)]) as client:
        quick = client.with_options(timeout=5, retry=maxa.RetryPolicy(attempts=2))
        assert await quick.terminology(*RELIGION) == "اسلام"
        assert await client.terminology(RELIGION[0], "2")
        assert quick.options.middlewares == client.options.middlewares
    assert [endpoint for _, endpoint, _ in seen] == ["token", "Terminology", "Terminology"]
    assert gateway.stats.requests_by_operation["Terminology"] == 2


async def test_from_env_and_options_pass_the_middlewares(gateway: FakeGateway) -> None:
    seen: list[tuple[str, str, int]] = []
    count = _counting(seen)
    creds = gateway.credentials
    environ = {
        "MAXA_BASE_URL": gateway.base_url,
        "MAXA_CLIENT_ID": creds.client_id,
        "MAXA_CLIENT_SECRET": creds.client_secret,
        "MAXA_USERNAME": creds.username,
        "MAXA_PASSWORD": creds.password,
        "MAXA_PID": creds.pid,
    }
    chain = [count]
    async with maxa.MaxaClient.from_env(environ, middlewares=chain) as client:
        chain.append(count)  # the caller's list changes afterwards: the options do not
        assert client.options.middlewares == (count,)
        await client.terminology(*RELIGION)
    options = maxa.ClientOptions(base_url=gateway.base_url, middlewares=(count,))
    async with maxa.MaxaClient.from_env(environ, options=options) as client:
        await client.terminology(*RELIGION)
    # Two clients, each one grant and one call, each request seen once.
    assert [endpoint for _, endpoint, _ in seen] == ["token", "Terminology"] * 2


async def test_an_exception_from_a_middleware_reaches_the_caller_as_it_is(
    gateway: FakeGateway, make_client: ClientFactory
) -> None:
    async def broken(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if _endpoint(request) != "token":
            raise RuntimeError("audit store is down")
        return await handler(request)

    async with make_client(middlewares=[broken]) as client:
        with pytest.raises(RuntimeError, match="audit store is down"):
            await client.terminology(*RELIGION)
        assert client.limiter.in_flight == 0  # its slot was given back
    assert gateway.stats.token_requests == 1
    assert gateway.stats.requests == 0


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("not-a-list", "middlewares"),
        (42, "middlewares"),
        ([42], "middlewares[0]"),
    ],
    ids=["a string", "a number", "a non-callable entry"],
)
async def test_bad_middlewares_are_a_config_error_before_anything_is_sent(
    gateway: FakeGateway, value: Any, field: str
) -> None:
    with pytest.raises(maxa.ConfigError) as caught:
        maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url, middlewares=value)
    assert caught.value.field == field
    with pytest.raises(maxa.ConfigError) as again:
        maxa.ClientOptions(middlewares=value)
    assert str(again.value) == str(caught.value)
    assert gateway.stats.token_requests == gateway.stats.requests == 0


async def test_one_middleware_not_in_a_list_is_refused() -> None:
    seen: list[tuple[str, str, int]] = []
    with pytest.raises(maxa.ConfigError, match="list or tuple") as caught:
        maxa.ClientOptions(middlewares=_counting(seen))
    assert caught.value.field == "middlewares"


async def test_middlewares_with_your_own_session_are_refused(gateway: FakeGateway) -> None:
    seen: list[tuple[str, str, int]] = []
    async with aiohttp.ClientSession() as session:
        with pytest.raises(maxa.ConfigError, match=r"ClientSession\(middlewares=") as caught:
            maxa.MaxaClient(
                gateway.credentials,
                base_url=gateway.base_url,
                session=session,
                middlewares=[_counting(seen)],
            )
        assert caught.value.field == "middlewares"
        # No middlewares (an empty list) with a session of yours is no conflict.
        maxa.MaxaClient(
            gateway.credentials, base_url=gateway.base_url, session=session, middlewares=[]
        )
    assert gateway.stats.token_requests == gateway.stats.requests == 0


def test_an_aiohttp_without_middlewares_refuses_them_and_says_which_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, str, int]] = []
    monkeypatch.delattr(aiohttp, "ClientMiddlewareType")
    monkeypatch.setattr(aiohttp, "__version__", "3.11.18")
    with pytest.raises(maxa.ConfigError) as caught:
        maxa.ClientOptions(middlewares=[_counting(seen)])
    assert caught.value.field == "middlewares"
    assert "aiohttp >= 3.12" in str(caught.value) and "3.11.18" in str(caught.value)
    assert maxa.ClientOptions(middlewares=[]).middlewares == ()


async def test_without_middlewares_the_session_is_made_as_an_older_aiohttp_can(
    gateway: FakeGateway, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []
    session_class = aiohttp.ClientSession

    def older_session(**kwargs: Any) -> aiohttp.ClientSession:
        """An aiohttp before 3.12: no ``middlewares`` keyword."""
        if "middlewares" in kwargs:
            raise TypeError("unexpected keyword argument 'middlewares'")
        made.append(kwargs)
        return session_class(**kwargs)

    monkeypatch.setattr(aiohttp, "ClientSession", older_session)
    async with make_client() as client:
        assert await client.terminology(*RELIGION) == "اسلام"
    assert len(made) == 1
