"""The only I/O: an aiohttp ClientSession over a pooled TCPConnector.

It sends bytes and returns the triple ``(status, headers, body)``; everything else
(envelopes, errors, retries) happens above it. Connection failures and time-outs become
:class:`TransportError`.

Per-attempt time limits are not aiohttp's ``ClientTimeout(total=...)``, which arms a loop
timer and enters a timer context several times per request. Every attempt here gets the
same limit, so attempts expire in the order they started, and one :class:`_Deadlines`
timer serves them all.

The session keeps no cookies (DITAS authenticates by token: nothing from one answer is
carried into the next request) and names itself in User-Agent. Neither applies to a
caller's own session: its defaults stay its own.

What the gateway answers is not trusted further than it needs to be:

* Redirects are never followed, on any session (aiohttp follows them by default): a
  redirected grant would re-post the password or the refresh token to wherever
  ``Location`` points, possibly over plain http, and a redirected call would send its
  token and believe a foreign answer. The gateway has no reason to redirect, so a 3xx is
  a :class:`ProtocolError` naming the status and the ``Location``.
* Each operation's body has a ceiling (``operations.MAX_RESPONSE_BYTES``, configurable).
  A declared ``Content-Length`` past it is refused before reading; any other body is
  read in chunks, counted after decompression, and refused as soon as it passes the
  ceiling. A refused body's connection is closed, not returned to the pool. The read
  is inside the attempt's time limit.
* Errors raised here carry no ``__context__``: aiohttp's exceptions can hold the
  request, and with it the ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl as ssl_module
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._version import __version__ as _version
from .envelope import REQUEST_ID
from .errors import (
    ClientClosedError,
    InvalidInputError,
    MaxaError,
    ProtocolError,
    TransportError,
    quote_detail,
)
from .limits import Timeout
from .operations import MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from aiohttp import ClientMiddlewareType

__all__ = ["USER_AGENT", "AiohttpTransport", "check_base_url", "response_limits"]

#: Says who calls, as gateway operators ask of a client library.
USER_AGENT: Final = f"maxa-async/{_version} aiohttp/{aiohttp.__version__}"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

#: A late deadline fires at most this share of the time limit late (and at most 1 s).
_SLACK_SHARE: Final = 0.05


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: object) -> URL:
    """https only; plain http only to loopback (a local fake gateway)."""
    if not isinstance(base_url, str | URL):
        raise InvalidInputError("base_url", f"must be a string, got {type(base_url).__name__}")
    url = URL(str(base_url).rstrip("/"))
    if url.user is not None or url.password is not None:
        # said without echoing the URL: it carries a secret
        raise InvalidInputError(
            "base_url", "must not carry a user name or password; pass maxa.Credentials"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInputError("base_url", f"must be an absolute https URL, got {str(url)!r}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise InvalidInputError(
            "base_url",
            f"plain http is refused for {url.host!r}: DITAS answers only over https "
            "(http is allowed for loopback addresses only, e.g. a local fake gateway)",
        )
    if url.query_string or url.fragment:
        raise InvalidInputError("base_url", "must not carry a query or fragment")
    return url


def response_limits(option: object) -> dict[str, int]:
    """The body ceiling of each operation: the defaults (``MAX_RESPONSE_BYTES``), one
    number for every operation (the token endpoint's included), or the defaults with
    some operations' ceilings replaced (keys are wire names, e.g. ``"Terminology"``)."""
    field = "max_response_bytes"
    limits = dict(MAX_RESPONSE_BYTES)
    if option is None:
        return limits
    if isinstance(option, Mapping):
        for operation, value in option.items():
            if operation not in limits:
                raise InvalidInputError(
                    field,
                    f"unknown operation {operation!r}; known: {', '.join(sorted(limits))}",
                )
            limits[operation] = _byte_count(value, f"{field}[{operation!r}]")
        return limits
    value = _byte_count(option, field)
    return dict.fromkeys(limits, value)


def _byte_count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            field, f"must be a positive number of bytes (an int), got {value!r:.40}"
        )
    return value


class _Deadlines:
    """One timer for the time limits of every attempt in flight.

    All attempts have the same limit, so they expire in the order they started: an
    insertion-ordered dict is already a queue sorted by deadline. Starting and ending an
    attempt is a dict insert and delete; a single loop timer, armed only while attempts
    are in flight, cancels the tasks whose attempt ran out (as ``asyncio.timeout`` does)
    and marks them so the attempt raises a time-out instead of CancelledError.
    """

    __slots__ = ("_handle", "_live", "_next_key", "_seconds", "_slack", "expired")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._slack = min(1.0, seconds * _SLACK_SHARE)
        self._live: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._next_key = 0
        self._handle: asyncio.TimerHandle | None = None
        self.expired: set[int] = set()

    def start(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> int:
        key = self._next_key
        self._next_key = key + 1
        deadline = loop.time() + self._seconds
        self._live[key] = (deadline, task)
        if self._handle is None:
            self._handle = loop.call_at(deadline + self._slack, self._sweep, loop)
        return key

    def end(self, key: int) -> bool:
        """Forget an attempt (once, when it ends); True if its deadline had cancelled
        the task."""
        if self._live.pop(key, None) is not None:
            return False
        if key in self.expired:
            self.expired.discard(key)
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        now = loop.time()
        live = self._live
        late: list[int] = []
        for key, (deadline, _) in live.items():
            if deadline > now:
                # The oldest attempt still in time: come back when it runs out, taking
                # with it any that run out up to ``slack`` later.
                self._handle = loop.call_at(deadline + self._slack, self._sweep, loop)
                break
            late.append(key)
        for key in late:
            _, task = live.pop(key)
            if not task.done():
                self.expired.add(key)
                task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._live.clear()


class AiohttpTransport:
    """A pooled aiohttp session. Made on :meth:`open`, never at construction."""

    def __init__(
        self,
        base_url: URL,
        *,
        pool_size: int,
        timeout: Timeout,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        max_response_bytes: int | Mapping[str, int] | None = None,
        proxy: str | None = None,
        trust_env: bool = False,
        middlewares: Sequence[ClientMiddlewareType] = (),
    ) -> None:
        self._base_url = base_url
        self._trust_env = trust_env
        # aiohttp client middlewares (3.12+), for the session made here; a caller's session
        # has its own (ClientOptions refuses both at once).
        self._middlewares = tuple(middlewares)
        self._body_limits = response_limits(max_response_bytes)
        # An operation not in the table (none today) gets a list operation's ceiling.
        self._fallback_limit = self._body_limits["TerminologyVersions"]
        self._pool_size = pool_size
        self._ssl: ssl_module.SSLContext | bool = ssl
        # No aiohttp total timer: _Deadlines enforces ``timeout.request`` (see the module
        # docstring); aiohttp still bounds each new connection's connect.
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeout.connect, sock_read=None
        )
        self._deadlines = _Deadlines(timeout.request)
        # Per-call time limits (MaxaClient.with_options): one timer per distinct limit, so
        # each still expires its attempts in the order they started.
        self._other_deadlines: dict[float, _Deadlines] = {}
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._urls: dict[str, URL] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # A caller's session: its own defaults (time-outs, TLS) must not apply. Redirects
        # are refused on every session (see the module docstring).
        self._request_options: dict[str, Any] = (
            {"allow_redirects": False}
            if session is None
            else {"timeout": self._client_timeout, "ssl": ssl, "allow_redirects": False}
        )
        if proxy is not None:
            self._request_options["proxy"] = proxy

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return self._session

    async def open(self) -> None:
        if self._closed:
            # A closed client's transport opens no new session: nothing leaves after close.
            raise ClientClosedError("the MaxaClient was closed")
        self._loop = asyncio.get_running_loop()
        if self._session is not None:
            return
        # Only when given: an aiohttp older than 3.12 has no such keyword.
        middlewares: dict[str, Any] = (
            {"middlewares": self._middlewares} if self._middlewares else {}
        )
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,  # one host, so no per-host limit to count as well
            ttl_dns_cache=300,
            keepalive_timeout=30,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._client_timeout,
            cookie_jar=aiohttp.DummyCookieJar(),  # DITAS is token-authenticated, cookie-free
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
            raise_for_status=False,
            # HTTP(S)_PROXY / NO_PROXY (and .netrc) only when asked: a proxy chosen by the
            # environment must not surprise a caller who did not opt in.
            trust_env=self._trust_env,
            **middlewares,
        )

    async def close(self) -> None:
        self._closed = True
        self._deadlines.close()
        for deadlines in self._other_deadlines.values():
            deadlines.close()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    def url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = self._base_url.with_path(
                self._base_url.path.rstrip("/") + path, encoded=False
            )
        return url

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        operation: str,
        attempt_limit: float | None = None,
        task: asyncio.Task[Any] | None = None,
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """Send one request; ``attempt_limit`` (seconds) overrides the per-attempt limit.
        ``task``: the task sending it (the one a time-out cancels), if the caller holds
        it already."""
        session = self._session
        loop = self._loop
        if session is None or loop is None:
            await self.open()
            session, loop = self._session, self._loop
            assert session is not None and loop is not None
        url = self._urls.get(path) or self.url(path)
        deadlines = self._deadlines if attempt_limit is None else self._deadlines_of(attempt_limit)
        if task is None:
            task = asyncio.current_task(loop)
            assert task is not None  # a coroutine of a running loop always has its task
        cancelling = task.cancelling()
        key = deadlines.start(loop, task)
        failure: MaxaError | None = None
        try:
            try:
                # Awaited, not entered: the request's context manager would be one more
                # frame for every resumption while the answer is awaited, and two more
                # coroutines per request to leave it.
                response = await session.request(
                    method, url, headers=headers, data=body, **self._request_options
                )
                try:
                    # The usual answer, read at once: not a redirect, its length declared
                    # and within the operation's ceiling, not compressed (aiohttp reads no
                    # more than the declared length). Anything else is read with care.
                    status = response.status
                    declared = response.headers.get(hdrs.CONTENT_LENGTH)
                    if (
                        declared is not None
                        and not 300 <= status < 400
                        and hdrs.CONTENT_ENCODING not in response.headers
                        # the HTTP parser already checked that it is all digits
                        and int(declared) <= self._body_limits.get(operation, 0)
                    ):
                        payload = await response.read()
                    else:
                        payload = await self._read_with_care(response, operation)
                finally:
                    # Back to the pool (read() already gave the connection back when the
                    # whole body came; a body writer still running is cancelled). A body
                    # refused half-read was closed first: its connection is not reused.
                    response.release()
            finally:
                # If our deadline cancelled the task, take that cancellation back; it was
                # a time-out unless the task's caller cancelled it too.
                timed_out = deadlines.end(key) and task.uncancel() <= cancelling
        except (asyncio.CancelledError, TimeoutError, aiohttp.ClientError) as exc:
            if timed_out or isinstance(exc, TimeoutError):  # ours, or aiohttp's connect
                failure = self._timed_out(operation)
            elif isinstance(exc, asyncio.CancelledError):
                raise
            elif isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
                # Not retried: the same certificate will be refused again. (Verification is
                # on unless ssl=False was passed: a wrong CA ends here.)
                failure = TransportError(
                    f"the gateway's TLS certificate was not accepted ({type(exc).__name__}: "
                    f"{exc}); if it is signed by your own CA, pass ca_bundle= "
                    "(or MAXA_CA_BUNDLE, or --ca-bundle)",
                    operation=operation,
                    retryable=False,
                )
            else:
                failure = TransportError(
                    f"connection to the gateway failed: {type(exc).__name__}: {exc}",
                    operation=operation,
                )
        if failure is not None:
            # Raised here, out of the except block, so that it has no __context__:
            # aiohttp's error may hold the request and its Authorization header.
            raise failure
        return status, response.headers, payload

    async def _read_with_care(self, response: aiohttp.ClientResponse, operation: str) -> bytes:
        """A body that is not the usual case: a redirect is refused, a declared length
        past the ceiling is refused before reading, and any other body is counted after
        decompression, chunk by chunk, and refused as soon as it passes the ceiling."""
        status = response.status
        if 300 <= status < 400:
            response.close()
            raise self._redirected(response, operation)
        limit = self._body_limits.get(operation, self._fallback_limit)
        declared = response.headers.get(hdrs.CONTENT_LENGTH)
        if declared is not None and hdrs.CONTENT_ENCODING not in response.headers:
            if int(declared) > limit:
                response.close()
                raise self._too_large(operation, limit, status, f"Content-Length {declared}")
            return await response.read()
        content = response.content
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await content.readany()
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                chunks.clear()
                response.close()
                raise self._too_large(operation, limit, status, "counted as it was read")
            chunks.append(chunk)

    @staticmethod
    def _redirected(response: aiohttp.ClientResponse, operation: str) -> ProtocolError:
        location = response.headers.get(hdrs.LOCATION)
        where = f" to {quote_detail(location)!r}" if location else " (no Location)"
        return ProtocolError(
            f"the gateway answered with a redirect{where}; redirects are not followed "
            "(the gateway has no reason to redirect, and a redirect would carry the "
            "credentials or the token elsewhere)",
            status=response.status,
            operation=operation,
            request_id=response.headers.get(REQUEST_ID),
        )

    @staticmethod
    def _too_large(operation: str, limit: int, status: int, detail: str) -> ProtocolError:
        return ProtocolError(
            f"the answer's body is larger than the {limit:,} bytes allowed for {operation} "
            f"({detail}); refused (raise max_response_bytes if the gateway's answers "
            "really are this large)",
            status=status,
            operation=operation,
        )

    def _deadlines_of(self, seconds: float) -> _Deadlines:
        deadlines = self._other_deadlines.get(seconds)
        if deadlines is None:
            deadlines = self._other_deadlines[seconds] = _Deadlines(seconds)
        return deadlines

    @staticmethod
    def _timed_out(operation: str) -> TransportError:
        return TransportError("the gateway did not answer in time", operation=operation)
