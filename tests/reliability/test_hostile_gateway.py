"""A gateway that is not to be trusted: redirects, bodies without end, bombs.

Each test runs a real aiohttp server on 127.0.0.1 standing for the gateway and, for the
redirect cases, a second one on 127.0.0.2 (another loopback address: another host to the
client) standing for wherever a redirect points. The foreign host answers as a gateway
would, so a client that followed a redirect would get a believable answer there; the
tests count what arrived. Hostile bodies are streamed in small pieces, so the servers'
own memory stays small and the client's is what a memory bound measures.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import Any, Final

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

import maxa_async as maxa
from maxa_async.errors import InvalidInputError, ProtocolError, TransportError
from maxa_async.operations import BASE_PATH, MAX_RESPONSE_BYTES
from maxa_async.transport import response_limits

pytestmark = pytest.mark.timeout(120)

MiB: Final = 1024 * 1024
CLIENT_SECRET: Final = "cs-hostile-0a9f-client-secret"
PASSWORD: Final = "pw-hostile-77Qz-password"
CREDS: Final = maxa.Credentials("cid-hostile", CLIENT_SECRET, "user-hostile", PASSWORD, "pid-9")
ACCESS: Final = "at-real-5b1e7c"
REFRESH: Final = "rt-real-90d2aa"
FOREIGN_ACCESS: Final = "at-foreign-13c4"

#: Per-attempt time limit of every client here, and the slack allowed on a loaded box.
ATTEMPT_SECONDS: Final = 5.0
SLACK: Final = 10.0
#: How much a refused body may grow the process's traced memory (its peak).
MEMORY_BOUND: Final = 64 * MiB
#: An "endless" body ends after this much, so that a client without limits (today's
#: main) fails the memory bound without taking the machine down.
ENDLESS_CAP: Final = 96 * MiB
PIECE: Final = 64 * 1024

TERMINOLOGY_PATH: Final = BASE_PATH + "Terminology"
TERM_LIST_PATH: Final = BASE_PATH + "TerminologiesTermByVersion"
RELIGION: Final = "اسلام"


def _envelope(data: Any) -> bytes:
    return orjson.dumps(
        {"result": {"data": data, "status": {"statusCode": 200}}, "status": {"statusCode": 200}}
    )


def _token_answer(access: str = ACCESS, refresh: str = REFRESH, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": 600,
            **extra,
        }
    )


RELIGION_ANSWER: Final = _envelope(orjson.dumps(RELIGION).decode())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server on ``host``: /oauth/token and every MAXA path go to handlers a
    test may replace; every request is counted by path and kept (headers and body)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.counts: collections.Counter[str] = collections.Counter()
        self.seen: list[tuple[str, CIMultiDict[str], bytes]] = []
        #: The client's port of each request, by path (which connection carried it).
        self.peers: dict[str, list[int]] = collections.defaultdict(list)
        self.token: Handler = self.grant
        self.operation: Handler = self.religion
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Server:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.counts[request.path] += 1
        self.seen.append((request.path, CIMultiDict(request.headers), body))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.peers[request.path].append(peer[1] if peer else -1)
        if request.path == "/oauth/token":
            return await self.token(request)
        return await self.operation(request)

    @staticmethod
    async def grant(request: web.Request) -> web.StreamResponse:
        return web.Response(body=_token_answer(), content_type="application/json")

    @staticmethod
    async def religion(request: web.Request) -> web.StreamResponse:
        return web.Response(body=RELIGION_ANSWER, content_type="application/json")

    def grant_types(self) -> list[str]:
        return [
            body.decode().split("grant_type=")[1].split("&")[0]
            for path, _, body in self.seen
            if path == "/oauth/token"
        ]


@asynccontextmanager
async def _servers() -> AsyncIterator[tuple[Server, Server]]:
    async with Server("127.0.0.1") as gateway, Server("127.0.0.2") as foreign:

        async def foreign_grant(request: web.Request) -> web.StreamResponse:
            return web.Response(body=_token_answer(FOREIGN_ACCESS), content_type="application/json")

        foreign.token = foreign_grant
        yield gateway, foreign


def _client(gateway: Server, **options: Any) -> maxa.MaxaClient:
    options.setdefault("retry", maxa.RetryPolicy(attempts=3, backoff=False, deadline=30.0))
    options.setdefault("timeout", maxa.Timeout(request=ATTEMPT_SECONDS, connect=2.0))
    return maxa.MaxaClient(CREDS, base_url=gateway.base_url, **options)


def _redirect(status: int, location: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handle


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [307, 308])
async def test_a_redirected_password_grant_posts_the_password_nowhere_else(status: int) -> None:
    async with _servers() as (gateway, foreign):
        location = f"{foreign.base_url}/oauth/token"
        gateway.token = _redirect(status, location)
        async with _client(gateway) as client:
            with pytest.raises(ProtocolError) as caught:
                await client.terminology("thritaEHR.Religion", "1")
    assert caught.value.status == status
    assert caught.value.operation == "token"
    assert location in str(caught.value)
    assert foreign.counts.total() == 0
    assert gateway.grant_types() == ["password"]  # once: a redirect is not retried
    assert gateway.counts[TERMINOLOGY_PATH] == 0


@pytest.mark.parametrize("status", [307, 308])
async def test_a_redirected_refresh_grant_posts_the_refresh_token_nowhere_else(
    status: int,
) -> None:
    async with _servers() as (gateway, foreign):
        location = f"{foreign.base_url}/oauth/token"
        calls = 0

        async def revoked_once(request: web.Request) -> web.StreamResponse:
            # The token works once, then is revoked (a token refused before any request
            # succeeded with it would count as a failed grant, not call for a refresh).
            nonlocal calls
            calls += 1
            if calls == 2:
                return web.Response(status=401, body=b'{"status":0,"code":401,"msg":""}')
            return await Server.religion(request)

        async def grant_then_redirect(request: web.Request) -> web.StreamResponse:
            if b"grant_type=refresh_token" in await request.read():
                return await _redirect(status, location)(request)
            return await Server.grant(request)

        gateway.operation = revoked_once
        gateway.token = grant_then_redirect
        async with _client(gateway) as client:
            assert await client.terminology("thritaEHR.Religion", "1") == RELIGION
            with pytest.raises(ProtocolError) as caught:
                await client.terminology("thritaEHR.Religion", "1")
    assert caught.value.status == status
    assert location in str(caught.value)
    assert foreign.counts.total() == 0
    assert gateway.grant_types() == ["password", "refresh_token"]
    assert gateway.counts[TERMINOLOGY_PATH] == 2
    assert all(REFRESH.encode() not in body for _, _, body in foreign.seen)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("own_session", [False, True])
async def test_a_redirected_call_sends_nothing_to_the_foreign_host(
    status: int, own_session: bool
) -> None:
    async with _servers() as (gateway, foreign):
        location = f"{foreign.base_url}{TERMINOLOGY_PATH}"
        gateway.operation = _redirect(status, location)
        # A caller's own session keeps aiohttp's default (follow redirects): still refused.
        session = aiohttp.ClientSession() if own_session else None
        try:
            async with _client(gateway, session=session) as client:
                with pytest.raises(ProtocolError) as caught:
                    await client.terminology("thritaEHR.Religion", "1")
                # the refusal leaves the client usable
                gateway.operation = Server.religion
                assert await client.terminology("thritaEHR.Religion", "1") == RELIGION
        finally:
            if session is not None:
                await session.close()
    assert caught.value.status == status
    assert caught.value.operation == "Terminology"
    assert location in str(caught.value)
    assert foreign.counts.total() == 0
    assert gateway.counts[TERMINOLOGY_PATH] == 2  # the redirected call once, not retried
    assert gateway.grant_types() == ["password"]


async def test_a_redirect_without_location_is_refused_too() -> None:
    async with _servers() as (gateway, _):

        async def bare(request: web.Request) -> web.StreamResponse:
            return web.Response(status=307)

        gateway.operation = bare
        async with _client(gateway) as client:
            with pytest.raises(ProtocolError, match="no Location") as caught:
                await client.terminology("thritaEHR.Religion", "1")
    assert caught.value.status == 307


# --------------------------------------------------------------------------- error chains


def _reachable(root: BaseException) -> Iterator[object]:
    """Every object an exception keeps alive through its chain and attributes: the
    ``__context__``/``__cause__`` chain, ``args``, instance attributes (``__dict__`` and
    slots, e.g. aiohttp's ``request_info``), and the contents of mappings, sequences and
    sets among them. Frames and tracebacks are left out: the locals of the frames an
    exception passed through are Python's, not the error's."""
    seen: set[int] = set()
    stack: list[object] = [root]
    while stack and len(seen) < 20_000:
        obj = stack.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, str | bytes | bytearray | int | float | type):
            continue
        if isinstance(obj, BaseException):
            stack += [obj.__context__, obj.__cause__, *obj.args]
        if isinstance(obj, Mapping):
            for key, value in obj.items():
                stack += [key, value]
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += list(obj)
        for name in getattr(type(obj), "__slots__", ()):
            stack.append(getattr(obj, name, None))
        if hasattr(obj, "__dict__") and not callable(obj):
            stack += list(vars(obj).values())


def _secrets_held(error: BaseException, secrets: list[str]) -> list[str]:
    found = []
    for obj in _reachable(error):
        if isinstance(obj, bytes | bytearray):
            obj = bytes(obj).decode("latin-1")
        if isinstance(obj, str):
            found += [secret for secret in secrets if secret in obj]
    return found


async def _raw_gateway(
    answer_token: bytes, answer_operation: bytes
) -> tuple[asyncio.Server, str, collections.Counter[str]]:
    """A gateway written at the socket level, to answer what aiohttp's server will not
    send: a malformed response."""
    counts: collections.Counter[str] = collections.Counter()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                path = head.split(b" ")[1].decode()
                counts[path] += 1
                writer.write(answer_token if path == "/oauth/token" else answer_operation)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", counts


def _http(status_line: bytes, body: bytes, *headers: bytes) -> bytes:
    lines = [status_line, b"Content-Type: application/json", *headers]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


#: A response aiohttp's parser refuses, raising an error that carries the request.
MALFORMED: Final = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello"


async def test_a_failed_call_keeps_no_request_with_the_token_alive() -> None:
    token_answer = _http(b"HTTP/1.1 200 OK", _token_answer())
    server, base_url, counts = await _raw_gateway(token_answer, MALFORMED)
    try:
        policy = maxa.RetryPolicy(attempts=2, backoff=False, deadline=30.0)
        async with maxa.MaxaClient(CREDS, base_url=base_url, retry=policy) as client:
            with pytest.raises(TransportError) as caught:
                await client.terminology("thritaEHR.Religion", "1")
    finally:
        server.close()
        await server.wait_closed()
    assert counts[TERMINOLOGY_PATH] == 2
    assert _secrets_held(caught.value, [ACCESS, f"Bearer {ACCESS}", "Authorization"]) == []
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_a_failed_grant_keeps_no_request_with_the_client_secret_alive() -> None:
    server, base_url, counts = await _raw_gateway(MALFORMED, MALFORMED)
    basic = base64.b64encode(f"{CREDS.client_id}:{CLIENT_SECRET}".encode()).decode()
    try:
        async with maxa.MaxaClient(CREDS, base_url=base_url) as client:
            with pytest.raises(TransportError) as caught:
                await client.tokens.get()
    finally:
        server.close()
        await server.wait_closed()
    assert counts["/oauth/token"] >= 1
    assert _secrets_held(caught.value, [basic, CLIENT_SECRET, PASSWORD, "Authorization"]) == []
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_refusals_keep_no_request_alive_either() -> None:
    async with _servers() as (gateway, foreign):
        gateway.operation = _redirect(307, f"{foreign.base_url}/x")
        async with _client(gateway) as client:
            with pytest.raises(ProtocolError) as redirected:
                await client.terminology("thritaEHR.Religion", "1")
            gateway.operation = _endless
            with pytest.raises(ProtocolError) as too_large:
                await client.terminology("thritaEHR.Religion", "1")
    for caught in (redirected, too_large):
        assert caught.value.__context__ is None and caught.value.__cause__ is None
        assert _secrets_held(caught.value, [ACCESS, "Authorization"]) == []


# --------------------------------------------------------------------------- body limits


async def _stream(
    request: web.Request,
    pieces: Iterator[bytes],
    *,
    length: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Send ``pieces`` one at a time until they end or the client hangs up."""
    response = web.StreamResponse(headers={"Content-Type": "application/json", **(headers or {})})
    if length is None:
        response.enable_chunked_encoding()
    else:
        response.content_length = length
    await response.prepare(request)
    try:
        for piece in pieces:
            await response.write(piece)
        await response.write_eof()
    except ConnectionError:
        pass  # the client hung up: what these tests want
    return response


def _zeros(total: int) -> Iterator[bytes]:
    piece = b"0" * PIECE
    for _ in range(total // PIECE):
        yield piece


async def _endless(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _zeros(ENDLESS_CAP))


@cache
def _gzip_bomb() -> bytes:
    """About 1 MB of gzip that expands to 1 GiB of zeros, built without holding the GiB:
    1 MiB of zeros is compressed once into a self-contained deflate segment (a full
    flush: no reference reaches back before it), repeated 1024 times, then the final
    block and the gzip trailer (CRC-32 and size of the whole GiB)."""
    zeros = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    for _ in range(1024):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + segment * 1024 + final_block + struct.pack("<II", crc, (1024 * MiB) % 2**32)


def _pieces(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), PIECE):
        yield bytes(view[start : start + PIECE])


async def _gzip_bomb_answer(request: web.Request) -> web.StreamResponse:
    bomb = _gzip_bomb()
    return await _stream(
        request, _pieces(bomb), length=len(bomb), headers={"Content-Encoding": "gzip"}
    )


def _huge_value_pieces(size: int) -> Iterator[bytes]:
    """A valid envelope whose data is a ``size``-byte string, in pieces."""
    yield b'{"result":{"status":{"statusCode":200},"data":"'
    yield from _zeros(size)
    yield b'"},"status":{"statusCode":200}}'


HUGE_VALUE: Final = 50 * MiB
HUGE_VALUE_LENGTH: Final = sum(len(p) for p in _huge_value_pieces(HUGE_VALUE))


async def _huge_value_declared(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _huge_value_pieces(HUGE_VALUE), length=HUGE_VALUE_LENGTH)


async def _huge_value_chunked(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _huge_value_pieces(HUGE_VALUE))


async def _two_gib_declared(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _zeros(ENDLESS_CAP), length=2 * 1024 * MiB)


@contextmanager
def _peak_growth() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, the peak growth of traced memory."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    growth: list[int] = []
    try:
        yield growth
    finally:
        growth.append(tracemalloc.get_traced_memory()[1] - before)
        if started:
            tracemalloc.stop()


HOSTILE_BODIES: Final = {
    "endless": _endless,
    "2-GiB-declared": _two_gib_declared,
    "gzip-bomb": _gzip_bomb_answer,
    "huge-value-declared": _huge_value_declared,
    "huge-value-chunked": _huge_value_chunked,
}


@pytest.mark.parametrize("body", sorted(HOSTILE_BODIES))
@pytest.mark.parametrize(
    ("operation", "limits"),
    [
        ("Terminology", None),  # a lookup, at its default ceiling
        ("TerminologiesTermByVersion", {"TerminologiesTermByVersion": 8 * MiB}),  # configured
    ],
)
async def test_a_hostile_body_is_refused_with_flat_memory_in_time(
    body: str, operation: str, limits: Mapping[str, int] | None
) -> None:
    if body == "gzip-bomb":
        _gzip_bomb()  # built before the clock and the memory count start
    limit = response_limits(limits)[operation]
    async with _servers() as (gateway, _), _client(gateway, max_response_bytes=limits) as client:
        await client.tokens.get()  # the grant is not what is measured
        gateway.operation = HOSTILE_BODIES[body]
        call = (
            client.terminology("thritaEHR.Religion", "1")
            if operation == "Terminology"
            else client.terminologies_term_by_version("ContactType", version="1")
        )
        started = time.monotonic()
        with _peak_growth() as growth, pytest.raises(ProtocolError) as caught:
            await call
        elapsed = time.monotonic() - started
        # The refused connection was closed, not pooled: the next call takes a new one.
        gateway.operation = Server.religion
        assert await client.terminology("thritaEHR.Religion", "1") == RELIGION
    assert caught.value.operation == operation
    assert f"{limit:,} bytes allowed for {operation}" in str(caught.value)
    assert growth[0] < MEMORY_BOUND, f"peak memory grew by {growth[0]:,} bytes"
    assert elapsed < ATTEMPT_SECONDS + SLACK
    refused_peer = gateway.peers[BASE_PATH + operation][0]
    assert gateway.peers[TERMINOLOGY_PATH][-1] != refused_peer
    hostile_sends = gateway.counts[BASE_PATH + operation] - (operation == "Terminology")
    assert hostile_sends == 1  # a refused body is not retried


@pytest.mark.parametrize("gzipped", [False, True])
async def test_a_body_that_trickles_in_times_out_with_the_attempt(gzipped: bool) -> None:
    """Under the ceiling but never ending: the attempt's time limit covers the whole
    read, compressed or not."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        compressor = zlib.compressobj(wbits=31)

        def pieces() -> Iterator[bytes]:
            yield b'{"result":'
            while True:
                yield b" "

        def encode(piece: bytes) -> bytes:
            return compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)

        headers = {"Content-Encoding": "gzip"} if gzipped else {}
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for piece in pieces():
                await response.write(encode(piece) if gzipped else piece)
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        return response

    limit = 1.0
    async with _servers() as (gateway, _):
        gateway.operation = trickle
        policy = maxa.RetryPolicy(attempts=1, backoff=False, deadline=30.0)
        timeout = maxa.Timeout(request=limit, connect=1.0)
        async with _client(gateway, retry=policy, timeout=timeout) as client:
            await client.tokens.get()
            started = time.monotonic()
            with pytest.raises(TransportError, match="did not answer in time"):
                await client.terminology("thritaEHR.Religion", "1")
            elapsed = time.monotonic() - started
    assert limit <= elapsed < limit + SLACK
    assert gateway.counts[TERMINOLOGY_PATH] == 1


async def test_an_oversized_token_answer_is_refused_once() -> None:
    async with _servers() as (gateway, _):

        async def padded(request: web.Request) -> web.StreamResponse:
            body = _token_answer(scope="x" * MAX_RESPONSE_BYTES["token"])
            return web.Response(body=body, content_type="application/json")

        gateway.token = padded
        async with _client(gateway) as client:
            with pytest.raises(ProtocolError, match="65,536 bytes allowed for token"):
                await client.terminology("thritaEHR.Religion", "1")
    assert gateway.grant_types() == ["password"]
    assert gateway.counts[TERMINOLOGY_PATH] == 0


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("gzipped", [False, True])
async def test_a_body_at_the_ceiling_is_read_and_one_byte_more_is_refused(
    declared: bool, gzipped: bool
) -> None:
    """Exact edges: an answer of exactly ``max_response_bytes`` (decompressed) is read,
    with or without Content-Length, compressed or not; one byte more is refused."""
    answer = RELIGION_ANSWER
    async with _servers() as (gateway, _):
        for extra, refused in ((0, False), (1, True)):
            body = answer + b" " * extra  # JSON allows trailing white space

            async def serve(request: web.Request, body: bytes = body) -> web.StreamResponse:
                payload = zlib.compress(body, wbits=31) if gzipped else body
                headers = {"Content-Encoding": "gzip"} if gzipped else {}
                return await _stream(
                    request,
                    _pieces(payload),
                    length=len(payload) if declared else None,
                    headers=headers,
                )

            gateway.operation = serve
            limits = {"Terminology": len(answer)}
            async with _client(gateway, max_response_bytes=limits) as client:
                await client.tokens.get()
                if refused:
                    with pytest.raises(ProtocolError, match=f"{len(answer):,} bytes allowed"):
                        await client.terminology("thritaEHR.Religion", "1")
                else:
                    assert await client.terminology("thritaEHR.Religion", "1") == RELIGION


async def test_the_default_ceilings_let_real_answers_through() -> None:
    """The fake gateway's answers, every operation, under the default ceilings."""
    from maxa_async.testing import FakeGateway, GatewayConfig

    async with (
        FakeGateway(GatewayConfig(seed=3)) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url) as client,
    ):
        assert await client.terminology("thritaEHR.Religion", "1") == RELIGION
        terms = await client.terminologies_term_by_version("ContactType", version="1")
        versions = await client.terminology_versions("ContactType")
    assert len(terms) == 14 and versions


# --------------------------------------------------------------------------- the option


def test_max_response_bytes_defaults_one_number_or_some_operations() -> None:
    assert response_limits(None) == dict(MAX_RESPONSE_BYTES)
    assert set(response_limits(1000).values()) == {1000}
    assert set(response_limits(1000)) == set(MAX_RESPONSE_BYTES)
    some = response_limits({"Terminology": 10})
    assert some["Terminology"] == 10
    assert {k: v for k, v in some.items() if k != "Terminology"} == {
        k: v for k, v in MAX_RESPONSE_BYTES.items() if k != "Terminology"
    }
    # single lookups small, whole-version lists largest
    assert MAX_RESPONSE_BYTES["Terminology"] < MAX_RESPONSE_BYTES["TerminologyVersions"]
    assert max(MAX_RESPONSE_BYTES.values()) == MAX_RESPONSE_BYTES["TerminologiesTermByVersion"]


@pytest.mark.parametrize(
    ("option", "field"),
    [
        (0, "max_response_bytes"),
        (-5, "max_response_bytes"),
        (True, "max_response_bytes"),
        (1.5, "max_response_bytes"),
        ("1MB", "max_response_bytes"),
        ({"Terminology": 0}, "max_response_bytes['Terminology']"),
        ({"Terminology": None}, "max_response_bytes['Terminology']"),
        ({"NoSuchOperation": 10}, "max_response_bytes"),
    ],
)
def test_a_bad_max_response_bytes_is_refused_naming_the_field(option: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        maxa.MaxaClient(CREDS, base_url="http://127.0.0.1:9", max_response_bytes=option)
    assert caught.value.field == field


# --------------------------------------------------------------------------- token type


@pytest.mark.parametrize("token_type", ["mac", "DPoP", "", "bearer-ish"])
async def test_a_token_of_another_type_is_refused_and_never_sent(token_type: str) -> None:
    async with _servers() as (gateway, _):

        async def other_type(request: web.Request) -> web.StreamResponse:
            body = orjson.loads(_token_answer())
            body["token_type"] = token_type
            return web.Response(body=orjson.dumps(body), content_type="application/json")

        gateway.token = other_type
        async with _client(gateway) as client:
            with pytest.raises(ProtocolError, match="token_type") as caught:
                await client.terminology("thritaEHR.Religion", "1")
    assert caught.value.operation == "token"
    assert gateway.grant_types() == ["password"]
    assert gateway.counts[TERMINOLOGY_PATH] == 0


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
async def test_a_bearer_token_in_any_case_is_used(token_type: str) -> None:
    async with _servers() as (gateway, _):

        async def typed(request: web.Request) -> web.StreamResponse:
            body = orjson.loads(_token_answer())
            body["token_type"] = token_type
            return web.Response(body=orjson.dumps(body), content_type="application/json")

        gateway.token = typed
        async with _client(gateway) as client:
            assert await client.terminology("thritaEHR.Religion", "1") == RELIGION
    (_, headers, _), *_ = [s for s in gateway.seen if s[0] == TERMINOLOGY_PATH]
    assert headers["Authorization"] == f"Bearer {ACCESS}"
