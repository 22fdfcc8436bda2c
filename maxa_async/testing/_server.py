"""The fake gateway: an aiohttp.web application speaking DITAS/MAXA, faults on request."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
import orjson
from aiohttp import web

from . import _wire as wire
from ._config import GatewayConfig
from ._data import GatewayData, Term, _Terminology, _Version
from ._jalali import BadFromDate, parse_from_date
from ._limiting import Decision, Limiting, Slot, retry_after_headers
from ._stats import GatewayStats

if TYPE_CHECKING:
    from maxa_async.models import Credentials

__all__ = ["OPERATIONS", "FakeGateway"]

_JSON = "application/json"
_TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_TOKENS = 10_000


class _BadInput(Exception):
    """The request body does not say what the operation needs: answered 400."""


@attrs.define
class _AccessToken:
    expires_at: float
    refresh_token: str


@attrs.define
class _RefreshToken:
    expires_at: float
    access_token: str | None
    username: str


Answer = Callable[["FakeGateway", dict[str, Any]], bytes]


def _text(body: dict[str, Any], key: str, *, blank_ok: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not blank_ok and not value.strip()):
        raise _BadInput(key)
    return value


def _since(body: dict[str, Any]) -> Any:
    try:
        return parse_from_date(body.get("FromDate"))
    except BadFromDate as exc:
        raise _BadInput(str(exc)) from None


def _coded_text(label: str, terms: Iterable[Term]) -> bytes:
    return orjson.dumps(
        [
            {"valueField": t.value, "terminology_idField": label, "coded_stringField": t.code}
            for t in terms
        ]
    )


class FakeGateway:
    """A DITAS/MAXA gateway on 127.0.0.1, for tests, demos and benchmarks.

    ``async with FakeGateway(config) as gw:`` starts it on a free port (or
    ``port``); ``gw.base_url``, ``gw.credentials``, ``gw.stats`` and ``gw.config``
    (change knobs while it runs) are then usable. ``data`` defaults to
    ``GatewayData.default()``.
    """

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data: GatewayData | None = None,
    ) -> None:
        self.config = config if config is not None else GatewayConfig()
        self.data = data if data is not None else GatewayData.default()
        self.stats = GatewayStats()
        self.host = host
        self.port = port
        self._rng = random.Random(self.config.seed)
        self._rng_config = self.config
        self._rng_epoch = self.config.seed_epoch
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._user_token: dict[str, str] = {}
        self._limiting = Limiting()
        self._served_since_revocation = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host``:``port`` (0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("the fake gateway is already started")
        runner = web.AppRunner(
            self.make_app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            # A client that hangs up ends its request, as at a real gateway (nginx's 499).
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, backlog=1024)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and close open connections (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeGateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, no trailing slash (only once started)."""
        if self._base_url is None:
            raise RuntimeError("the fake gateway is not started")
        return self._base_url

    @property
    def credentials(self) -> Credentials:
        """The credentials the gateway accepts now (from ``config``)."""
        from maxa_async.models import Credentials

        cfg = self.config
        return Credentials(
            client_id=cfg.client_id,
            client_secret=cfg.client_secret,
            username=cfg.username,
            password=cfg.password,
            pid=cfg.pid,
        )

    # -- control ------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the counters (``in_flight`` stays live)."""
        self.stats.reset()
        self._served_since_revocation = 0

    def revoke_all_tokens(self) -> None:
        """Revoke every access token (refresh tokens stay valid)."""
        self._access.clear()
        self._user_token.clear()
        self._served_since_revocation = 0
        self.stats.revocations += 1

    def add_terms(
        self, terminology_id: str, terms: Iterable[Term], version: str | None = None
    ) -> None:
        """See :meth:`GatewayData.add_terms`."""
        self.data.add_terms(terminology_id, terms, version)

    def change_term(
        self,
        terminology_id: str,
        code: str,
        value: str,
        *,
        version: str | None = None,
        created: object = None,
    ) -> Term:
        """See :meth:`GatewayData.change_term`."""
        return self.data.change_term(terminology_id, code, value, version=version, created=created)

    def remove_term(self, terminology_id: str, code: str, *, version: str | None = None) -> None:
        """See :meth:`GatewayData.remove_term`."""
        self.data.remove_term(terminology_id, code, version=version)

    def add_version(
        self,
        terminology_id: str,
        version: str,
        terms: Iterable[Term] = (),
        *,
        is_last: bool = True,
        inherit: bool = False,
    ) -> None:
        """See :meth:`GatewayData.add_version`."""
        self.data.add_version(terminology_id, version, terms, is_last=is_last, inherit=inherit)

    # -- the application ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (to mount it elsewhere, e.g. in aiohttp's TestServer)."""
        app = web.Application()
        app.on_response_prepare.append(_add_request_id)
        router = app.router
        router.add_route("*", "/oauth/token", self._token)
        for name, (method, answer) in OPERATIONS.items():
            router.add_route(
                "*", wire.OPERATIONS_PREFIX + name, self._operation(name, method, answer)
            )
        router.add_get("/__stats", self._get_stats)
        router.add_post("/__stats/reset", self._reset_stats)
        router.add_get("/__config", self._get_config)
        router.add_post("/__config", self._post_config)
        router.add_post("/__revoke", self._revoke)
        router.add_post("/__terms", self._post_terms)
        router.add_route("*", "/{tail:.*}", self._no_route)
        return app

    def _random(self) -> random.Random:
        cfg = self.config
        if cfg is not self._rng_config or cfg.seed_epoch != self._rng_epoch:
            self._rng.seed(cfg.seed)
            self._rng_config = cfg
            self._rng_epoch = cfg.seed_epoch
        return self._rng

    def _reply(self, status: int, body: bytes, content_type: str = _JSON) -> web.Response:
        by_status = self.stats.responses_by_status
        by_status[status] = by_status.get(status, 0) + 1
        return web.Response(status=status, body=body, content_type=content_type, charset="utf-8")

    # -- MAXA operations ------------------------------------------------------------------------

    def _operation(
        self, name: str, method: str, answer: Answer
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle_operation(request, name, method, answer)

        return handle

    async def _handle_operation(
        self, request: web.Request, name: str, method: str, answer: Answer
    ) -> web.StreamResponse:
        stats = self.stats
        stats.requests += 1
        by_operation = stats.requests_by_operation
        by_operation[name] = by_operation.get(name, 0) + 1
        stats.in_flight += 1
        if stats.in_flight > stats.peak_in_flight:
            stats.peak_in_flight = stats.in_flight
        # The concurrency cap counts a request from its arrival (latency included) to its
        # answer; one that finds no place is refused at the limiters' turn below.
        slot = self._limiting.arrive(self.config)
        try:
            return await self._answer_operation(request, method, answer, slot)
        except asyncio.CancelledError:
            stats.client_closed += 1
            raise
        finally:
            stats.in_flight -= 1
            held = self._limiting.leave(slot)
            if held is not None:
                stats.cap_holds += 1
                stats.cap_hold_seconds += held

    async def _answer_operation(
        self, request: web.Request, method: str, answer: Answer, slot: Slot | None
    ) -> web.StreamResponse:
        cfg = self.config
        if cfg.blocked_ip:
            return self._reply(403, wire.BLOCKED)
        try:
            raw_body = await request.read()
        except ConnectionError:  # the client hung up while sending
            self.stats.client_closed += 1
            return web.Response(status=499)
        if cfg.latency or cfg.latency_jitter:
            jitter = self._random().uniform(0.0, cfg.latency_jitter) if cfg.latency_jitter else 0.0
            await asyncio.sleep(cfg.latency + jitter)
        # A proxy in front of the gateway: drops and HTML pages come before any check.
        if cfg.drop_rate and self._random().random() < cfg.drop_rate:
            return self._drop(request)
        if cfg.html_rate and self._random().random() < cfg.html_rate:
            return self._reply(502, wire.HTML_502, content_type="text/html")
        if not self._bearer_ok(request) or request.headers.get("pid") != cfg.pid:
            return self._reply(401, wire.UNAUTHORIZED)
        if cfg.revoke_every is not None:
            self._served_since_revocation += 1
            if self._served_since_revocation >= cfg.revoke_every:
                self.revoke_all_tokens()
        if cfg.permanent_429:
            self.stats.rate_limited += 1
            return self._reply(429, wire.RATE_LIMITED)
        decision = self._limiting.check(cfg, slot)
        if decision.refused is not None:
            return self._refuse(decision.refused, decision)
        response = self._serve(request, raw_body, method, answer)
        response.headers.extend(decision.headers)
        return response

    def _serve(
        self, request: web.Request, raw_body: bytes, method: str, answer: Answer
    ) -> web.Response:
        """A request past every limiter: random errors, then the request itself."""
        cfg = self.config
        if cfg.error_rate and self._random().random() < cfg.error_rate:
            code = self._random().choice(cfg.error_statuses)
            response = self._reply(code, wire.gateway_error(code))
            if code == 503 and cfg.error_retry_after is not None:
                response.headers.extend(
                    retry_after_headers(cfg.error_retry_after, cfg.retry_after_format, time.time())
                )
            return response
        if request.method != method or request.content_type != _JSON:
            return self._reply(400, wire.BAD_REQUEST)
        try:
            body = orjson.loads(raw_body)
        except orjson.JSONDecodeError:
            return self._reply(400, wire.BAD_REQUEST)
        if not isinstance(body, dict):
            return self._reply(400, wire.BAD_REQUEST)
        try:
            result = answer(self, body)
        except _BadInput:
            return self._reply(400, wire.BAD_REQUEST)
        if result is wire.NOT_FOUND:
            self.stats.not_found += 1
        return self._reply(200, result)

    def _bearer_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if header is None:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        token = token.strip()
        record = self._access.get(token)
        if record is None:
            return False
        if record.expires_at <= time.monotonic():
            del self._access[token]
            return False
        return True

    def _refuse(self, status: int, decision: Decision) -> web.Response:
        self.stats.rate_limited += 1
        body = wire.RATE_LIMITED if status == 429 else wire.gateway_error(status)
        response = self._reply(status, body)
        response.headers.extend(decision.headers)
        return response

    def _drop(self, request: web.Request) -> web.Response:
        self.stats.dropped += 1
        transport = request.transport
        if transport is not None:
            transport.close()
        # Nothing reaches the client: the transport is closed before aiohttp writes this.
        return web.Response(status=599)

    # -- the answers (body is a JSON object; raise _BadInput for a 400) ------------------------

    def _terminology(self, raw_id: str) -> _Terminology | None:
        return self.data._find(raw_id)

    def _latest(self, raw_id: str) -> _Version | None:
        terminology = self.data._find(raw_id)
        return None if terminology is None else terminology.latest()

    def _list(self, items: bytes) -> bytes:
        if items == b"[]" and self.config.empty_as_not_found:
            return wire.NOT_FOUND
        return wire.ok(items)

    def _answer_terminology(self, body: dict[str, Any]) -> bytes:
        terminology_id = _text(body, "terminologyId")
        code = _text(body, "codedString")
        version = self._latest(terminology_id)
        term = None if version is None else version.terms.get(code.strip())
        if term is None:
            return wire.NOT_FOUND
        return wire.ok(orjson.dumps(orjson.dumps(term.value).decode()))

    def _answer_search_terminology(self, body: dict[str, Any]) -> bytes:
        terminology_id = _text(body, "TerminologyId")
        since = _since(body)
        terminology = self._terminology(terminology_id)
        version = None if terminology is None else terminology.latest()
        if terminology is None or version is None:
            return wire.NOT_FOUND
        hits = [t for t in version.terms.values() if t.created is not None and t.created >= since]
        hits.sort(key=lambda t: t.code)
        return self._list(_coded_text(terminology.label, hits))

    def _answer_validate_cts(self, body: dict[str, Any]) -> bytes:
        coded = body.get("DoCodedText")
        if not isinstance(coded, dict):
            raise _BadInput("DoCodedText")
        value = _text(coded, "valueField", blank_ok=True)
        terminology_id = _text(coded, "terminology_idField")
        code = _text(coded, "coded_stringField")
        version = self._latest(terminology_id)
        if version is None:
            return wire.NOT_FOUND
        term = version.terms.get(code.strip())
        return wire.TRUE if term is not None and term.value.strip() == value.strip() else wire.FALSE

    def _answer_cts_terminologies(self, body: dict[str, Any]) -> bytes:
        since = _since(body)
        names = [t.name for t in self.data._all() if t.created >= since]
        return self._list(orjson.dumps(names))

    def _answer_terminology_value_by_version(self, body: dict[str, Any]) -> bytes:
        terminology_id = _text(body, "terminologyId")
        code = _text(body, "codedString")
        version_name = _text(body, "version")
        terminology = self._terminology(terminology_id)
        version = None if terminology is None else terminology.find(version_name)
        term = None if version is None else version.terms.get(code.strip())
        if term is None:
            return wire.NOT_FOUND
        return wire.ok(orjson.dumps(orjson.dumps(term.value).decode()))

    def _answer_terminologies_term_by_version(self, body: dict[str, Any]) -> bytes:
        terminology_id = _text(body, "terminologyId")
        version_name = _text(body, "version")
        terminology = self._terminology(terminology_id)
        version = None if terminology is None else terminology.find(version_name)
        if terminology is None or version is None:
            return wire.NOT_FOUND
        if version.list_json is None:
            version.list_json = _coded_text(terminology.label, version.terms.values())
        return self._list(version.list_json)

    def _answer_terminology_versions(self, body: dict[str, Any]) -> bytes:
        terminology = self._terminology(_text(body, "terminologyId"))
        if terminology is None:
            return wire.NOT_FOUND
        versions = sorted(terminology.versions, key=lambda v: v.version_id)
        return self._list(
            orjson.dumps(
                [
                    {
                        "id": v.row_id,
                        "TerminologyId": terminology.name,
                        "Version": v.version,
                        "VersionId": v.version_id,
                        "IsLast": v.is_last,
                    }
                    for v in versions
                ]
            )
        )

    # -- the token endpoint ---------------------------------------------------------------------

    def _token_reply(
        self, status: int, payload: dict[str, Any] | bytes, *, rejected: bool = False
    ) -> web.Response:
        stats = self.stats
        by_status = stats.token_responses_by_status
        by_status[status] = by_status.get(status, 0) + 1
        if rejected:
            stats.rejected_grants += 1
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return web.Response(
            status=status, body=body, content_type=_JSON, charset="utf-8", headers=_TOKEN_HEADERS
        )

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.stats.token_requests += 1
        cfg = self.config
        if cfg.blocked_ip:
            return self._token_reply(403, wire.BLOCKED)
        if cfg.token_error_rate and self._random().random() < cfg.token_error_rate:
            code = self._random().choice(cfg.error_statuses)
            return self._token_reply(code, wire.gateway_error(code))
        if request.method != "POST":
            return self._token_reply(
                405,
                {
                    "error": "method_not_allowed",
                    "error_description": f"Request method '{request.method}' not supported",
                },
                rejected=True,
            )
        client_error = self._client_auth_error(request.headers.get("Authorization"))
        if client_error is not None:
            return self._token_reply(
                401, {"error": "unauthorized", "error_description": client_error}, rejected=True
            )
        form = await request.post()
        grant_type = form.get("grant_type")
        if grant_type == "password":
            return self._password_grant(form.get("username"), form.get("password"))
        if grant_type == "refresh_token":
            return self._refresh_grant(form.get("refresh_token"))
        if grant_type is None:
            error = {"error": "invalid_request", "error_description": "Missing grant type"}
        else:
            error = {
                "error": "unsupported_grant_type",
                "error_description": f"Unsupported grant type: {grant_type!s}",
            }
        return self._token_reply(400, error, rejected=True)

    def _client_auth_error(self, header: str | None) -> str | None:
        if header is None:
            return "Full authentication is required to access this resource"
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return "Full authentication is required to access this resource"
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return "Failed to decode basic authentication token"
        client_id, sep, secret = decoded.partition(":")
        if not sep or client_id != self.config.client_id or secret != self.config.client_secret:
            return "Bad client credentials"
        return None

    def _invalid_grant(self) -> web.Response:
        return self._token_reply(
            400, {"error": "invalid_grant", "error_description": "Bad credentials"}, rejected=True
        )

    def _issue(self, access: str, refresh: str, expires_at: float, now: float) -> web.Response:
        return self._token_reply(
            200,
            {
                "access_token": access,
                "token_type": "bearer",
                "refresh_token": refresh,
                "expires_in": max(1, math.ceil(round(expires_at - now, 6))),
                "scope": "trust read write",
            },
        )

    def _password_grant(self, username: object, password: object) -> web.Response:
        cfg = self.config
        if username != cfg.username or password != cfg.password:
            return self._invalid_grant()
        now = time.monotonic()
        if cfg.reuse_access_token:
            current = self._user_token.get(cfg.username)
            record = None if current is None else self._access.get(current)
            if current is not None and record is not None and record.expires_at > now:
                self.stats.password_grants += 1
                return self._issue(current, record.refresh_token, record.expires_at, now)
        self._forget_expired(now)
        access, refresh = str(uuid.uuid4()), str(uuid.uuid4())
        expires_at = now + cfg.token_ttl
        self._access[access] = _AccessToken(expires_at, refresh)
        self._refresh[refresh] = _RefreshToken(now + cfg.refresh_token_ttl, access, cfg.username)
        self._user_token[cfg.username] = access
        self.stats.password_grants += 1
        return self._issue(access, refresh, expires_at, now)

    def _refresh_grant(self, refresh: object) -> web.Response:
        cfg = self.config
        now = time.monotonic()
        record = self._refresh.get(refresh) if isinstance(refresh, str) else None
        if record is None or not isinstance(refresh, str):
            return self._invalid_grant()
        if record.expires_at <= now:
            del self._refresh[refresh]
            return self._invalid_grant()
        if cfg.refresh_invalidates_old and record.access_token is not None:
            self._access.pop(record.access_token, None)
        self._forget_expired(now)
        access = str(uuid.uuid4())
        if cfg.rotate_refresh_token:
            del self._refresh[refresh]
            refresh = str(uuid.uuid4())
            record = _RefreshToken(now + cfg.refresh_token_ttl, access, record.username)
            self._refresh[refresh] = record
        record.access_token = access
        expires_at = now + cfg.token_ttl
        self._access[access] = _AccessToken(expires_at, refresh)
        self._user_token[record.username] = access
        self.stats.refresh_grants += 1
        return self._issue(access, refresh, expires_at, now)

    def _forget_expired(self, now: float) -> None:
        if len(self._access) > _MAX_TOKENS:
            self._access = {k: v for k, v in self._access.items() if v.expires_at > now}
        if len(self._refresh) > _MAX_TOKENS:
            self._refresh = {k: v for k, v in self._refresh.items() if v.expires_at > now}

    # -- control endpoints (never faulted, never counted) -------------------------------------

    @staticmethod
    def _control(payload: object, status: int = 200) -> web.Response:
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        return web.Response(status=status, body=body, content_type=_JSON)

    async def _get_stats(self, request: web.Request) -> web.StreamResponse:
        return self._control(self.stats.as_dict())

    async def _reset_stats(self, request: web.Request) -> web.StreamResponse:
        self.reset_stats()
        return self._control(self.stats.as_dict())

    async def _get_config(self, request: web.Request) -> web.StreamResponse:
        return self._control(self.config.as_dict())

    async def _post_config(self, request: web.Request) -> web.StreamResponse:
        try:
            knobs = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._control({"error": "body is not JSON"}, 400)
        if not isinstance(knobs, dict):
            return self._control({"error": "expected a JSON object of knobs"}, 400)
        try:
            self.config.update(**knobs)
        except (TypeError, ValueError) as exc:
            return self._control({"error": str(exc)}, 400)
        return self._control(self.config.as_dict())

    async def _revoke(self, request: web.Request) -> web.StreamResponse:
        self.revoke_all_tokens()
        return self._control({"revocations": self.stats.revocations})

    async def _post_terms(self, request: web.Request) -> web.StreamResponse:
        """``{"terminology": id, "version": null, "terms": [{"code", "value", "created"?}]}``"""
        try:
            payload = orjson.loads(await request.read())
            terminology = payload["terminology"]
            version = payload.get("version")
            terms = [
                Term(str(item["code"]), str(item["value"]), item.get("created"))
                for item in payload["terms"]
            ]
            self.add_terms(terminology, terms, version)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return self._control({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return self._control({"added": len(terms)})

    async def _no_route(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, body=wire.NO_ROUTE, content_type=_JSON)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if "requestId" not in response.headers:
        response.headers["requestId"] = str(uuid.uuid4())


#: Wire operation name -> (HTTP method, answer).
OPERATIONS: dict[str, tuple[str, Answer]] = {
    "Terminology": ("GET", FakeGateway._answer_terminology),
    "SearchTerminology": ("POST", FakeGateway._answer_search_terminology),
    "ValidateCts": ("POST", FakeGateway._answer_validate_cts),
    "CtsTerminologies": ("POST", FakeGateway._answer_cts_terminologies),
    "TerminologyValueByVersion": ("POST", FakeGateway._answer_terminology_value_by_version),
    "TerminologiesTermByVersion": ("POST", FakeGateway._answer_terminologies_term_by_version),
    "TerminologyVersions": ("POST", FakeGateway._answer_terminology_versions),
}
