"""The FHIR terminology server: aiohttp.web over a :class:`FhirTerminology`.

Routes (below the server's base URL)::

    GET  /metadata                         CapabilityStatement
    GET  /metadata?mode=terminology        TerminologyCapabilities
    GET  /CodeSystem/$validate-code?...    and POST with a Parameters body
    GET  /ValueSet/$validate-code?...      and POST
    GET  /CodeSystem/$lookup?...           and POST
    GET  /ValueSet/$expand?...             and POST
    POST /                                 a batch Bundle -> a batch-response Bundle

Everything else is a 404 OperationOutcome; a wrong method a 405 one.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web

from ._outcome import FhirResponse, operation_outcome
from ._terminology import OPERATIONS, FhirTerminology

__all__ = ["FhirServer", "fhir_app"]

_CONTENT_TYPE: Final = "application/fhir+json; charset=utf-8"
#: A batch of the largest allowed size fits well within this.
_MAX_BODY: Final = 32 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(answer: FhirResponse) -> web.Response:
    headers = {"Content-Type": _CONTENT_TYPE, **answer.headers}
    return web.Response(body=orjson.dumps(answer.resource), status=answer.status, headers=headers)


def _problem(code: str, status: int, message: str, **headers: str) -> web.Response:
    return _reply(FhirResponse(status, operation_outcome(code, message), headers))


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/"


def fhir_app(terminology: FhirTerminology) -> web.Application:
    """An aiohttp application serving ``terminology`` (see the module's routes)."""
    app = web.Application(client_max_size=_MAX_BODY)

    def operation(path: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.method == "GET":
                return _reply(await terminology.respond_query(path, list(request.query.items())))
            if request.method == "POST":
                body = await _body(request)
                if body is None:
                    return _problem("invalid", 400, "the body must be a JSON Parameters resource")
                return _reply(await terminology.respond_parameters(path, body))
            return _problem(
                "not-supported", 405, f"{request.method} {path}: use GET or POST", Allow="GET, POST"
            )

        return handle

    async def metadata(request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return _problem("not-supported", 405, "GET /metadata only", Allow="GET")
        base = _base_url(request)
        if request.query.get("mode") == "terminology":
            resource = await terminology.terminology_capabilities(base)
        else:
            resource = terminology.capability_statement(base)
        return _reply(FhirResponse(200, resource))

    async def base(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return _problem("not-supported", 405, "POST a batch Bundle to the base", Allow="POST")
        body = await _body(request)
        if body is None:
            return _problem("invalid", 400, "the body must be a JSON Bundle resource")
        return _reply(await terminology.respond_batch(body))

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        return _problem("not-found", 404, f"nothing at {request.path}")

    app.router.add_route("*", "/metadata", metadata)
    app.router.add_route("*", "/", base)
    for path in OPERATIONS:
        app.router.add_route("*", f"/{path}", operation(path))
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app


class FhirServer:
    """The FHIR terminology server on ``host:port`` (port 0: a free one), started by
    ``async with`` or :meth:`start`; ``base_url`` is where it listens."""

    def __init__(self, terminology: FhirTerminology, *, host: str = "127.0.0.1", port: int = 0):
        self.terminology = terminology
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(fhir_app(self.terminology), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        server = site._server
        sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._runner = runner

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FhirServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
