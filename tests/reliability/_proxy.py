"""A fault-injecting relay in front of the fake gateway, for faults the fake cannot make.

The fake gateway has knobs for 401s, 403, 429, 5xx, drops, latency and HTML pages. It
cannot answer 410 or 400 on demand (the client refuses to send what would earn a 400),
nor send a body cut short. This relay forwards every request to the fake and, while a
fault is armed, answers MAXA operations with it instead (or mangles the real answer).
It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import collections
from typing import Final

import aiohttp
from aiohttp import web

from maxa_async.testing import OPERATIONS_PREFIX
from maxa_async.testing._wire import BAD_REQUEST, RATE_LIMITED, UNAUTHORIZED, gateway_error

__all__ = ["PROXY_FAULTS", "FaultProxy"]

_GONE: Final = (
    b'{"status":{"statusCode":410,"message":"All resources are moved permanently to HTTPS"}}'
)

#: The faults this relay can inject, by name.
PROXY_FAULTS: Final = frozenset(
    {
        "410",
        "400",
        "401",
        "429-no-retry-after",
        "500",
        "503",
        "504",
        "520",
        "html",
        "drop",
        "truncated-json",
        "cut-mid-body",
        "not-json-200",
    }
)

_FORWARDED_HEADERS: Final = ("Authorization", "pid", "Content-Type", "Accept")


class FaultProxy:
    """``async with FaultProxy(upstream) as proxy``; ``proxy.arm("410", times=None)``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault: str | None = None
        self.remaining: int | None = None
        self.sends: collections.Counter[str] = collections.Counter()
        self.injected = 0
        #: Every answer of the token endpoint that passed through (to know the real tokens).
        self.token_answers: list[bytes] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    def arm(self, fault: str, *, times: int | None = None) -> None:
        """Inject ``fault`` into the next ``times`` MAXA answers (None: until disarmed)."""
        if fault not in PROXY_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.fault, self.remaining = fault, times

    def disarm(self) -> None:
        self.fault, self.remaining = None, None

    async def __aenter__(self) -> FaultProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _take(self) -> str | None:
        fault = self.fault
        if fault is None:
            return None
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.disarm()
        self.injected += 1
        return fault

    async def _forward(
        self, request: web.Request, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        headers = {k: request.headers[k] for k in _FORWARDED_HEADERS if k in request.headers}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as response:
            payload = await response.read()
            kept = {
                k: v
                for k, v in response.headers.items()
                if k.lower() in ("requestid", "retry-after", "content-type")
            }
            return response.status, kept, payload

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = None
        if request.path.startswith(OPERATIONS_PREFIX):
            self.sends[request.path[len(OPERATIONS_PREFIX) :]] += 1
            fault = self._take()
        json_type = {"Content-Type": "application/json", "requestId": "proxy-request-id"}
        canned = {
            "410": (410, _GONE),
            "400": (400, BAD_REQUEST),
            "401": (401, UNAUTHORIZED),
            "429-no-retry-after": (429, RATE_LIMITED),
            "500": (500, gateway_error(500)),
            "503": (503, gateway_error(503)),
            "504": (504, gateway_error(504)),
            "520": (520, gateway_error(520)),
        }
        if fault in canned:
            status, payload = canned[fault]
            return web.Response(status=status, body=payload, headers=json_type)
        if fault == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
            return web.Response(status=502, body=page, content_type="text/html")
        if fault == "not-json-200":
            return web.Response(status=200, body=b"<html>maintenance</html>", headers=json_type)
        if fault != "drop":
            try:
                status, headers, payload = await self._forward(request, body)
            except aiohttp.ClientError:  # the gateway dropped us: drop our client too
                fault = "drop"
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=599)
        if request.path == "/oauth/token":
            self.token_answers.append(payload)
        if fault == "truncated-json":
            # An honest Content-Length over a body cut in half: the HTTP layer is happy,
            # the JSON is not.
            return web.Response(status=status, body=payload[: len(payload) // 2], headers=headers)
        if fault == "cut-mid-body":
            # Content-Length promises the whole body; the connection dies half-way.
            response = web.StreamResponse(status=status, headers=headers)
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        return web.Response(status=status, body=payload, headers=headers)
