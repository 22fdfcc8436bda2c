"""Networks as hospitals have them: a CA of their own, an egress proxy (issue 17, in part).

A real TLS server (the fake gateway's application) whose certificate comes from a test
CA (trustme), and a real CONNECT proxy on 127.0.0.1; nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

import maxa_async as maxa
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_gateway(ca: trustme.CA) -> AsyncIterator[tuple[FakeGateway, str]]:
    """The fake gateway served over TLS with a certificate for 127.0.0.1 from ``ca``."""
    gateway = FakeGateway()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    runner = web.AppRunner(gateway.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield gateway, f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "hospital-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that tunnels to loopback only, and counts."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if len(request) < 2 or request[0] != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, _, port = request[1].rpartition(":")
            if host != "127.0.0.1":
                writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            self.tunnels.append(request[1])
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            with contextlib.suppress(Exception):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def test_verification_is_on_by_default_and_a_wrong_ca_is_a_clear_error(
    tls_gateway: tuple[FakeGateway, str],
) -> None:
    gateway, base_url = tls_gateway
    policy = maxa.RetryPolicy(attempts=3, backoff=False)
    async with maxa.MaxaClient(gateway.credentials, base_url=base_url, retry=policy) as client:
        with pytest.raises(maxa.TransportError) as info:
            await client.terminology(*RELIGION)
    assert "TLS certificate was not accepted" in str(info.value)
    assert "ca_bundle" in str(info.value)
    assert info.value.retryable is False
    assert gateway.stats.token_requests == 0  # nothing got through the handshake


async def test_a_ca_bundle_of_the_hospitals_ca_is_trusted(
    tls_gateway: tuple[FakeGateway, str], ca_file: Path
) -> None:
    gateway, base_url = tls_gateway
    async with maxa.MaxaClient(gateway.credentials, base_url=base_url, ca_bundle=ca_file) as c:
        assert await c.terminology(*RELIGION) == "اسلام"
    assert gateway.stats.password_grants == 1


async def test_another_cas_bundle_is_refused(
    tls_gateway: tuple[FakeGateway, str], tmp_path: Path
) -> None:
    gateway, base_url = tls_gateway
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    policy = maxa.RetryPolicy(attempts=3, backoff=False)
    client = maxa.MaxaClient(gateway.credentials, base_url=base_url, ca_bundle=other, retry=policy)
    async with client:
        with pytest.raises(maxa.TransportError, match="TLS certificate was not accepted"):
            await client.terminology(*RELIGION)


async def test_grants_and_calls_go_through_the_proxy(
    tls_gateway: tuple[FakeGateway, str], ca_file: Path
) -> None:
    gateway, base_url = tls_gateway
    async with ConnectProxy() as proxy:
        async with maxa.MaxaClient(
            gateway.credentials, base_url=base_url, ca_bundle=ca_file, proxy=proxy.url
        ) as client:
            assert await client.terminology(*RELIGION) == "اسلام"
            assert await client.terminology("eRx", "60002")
        target = base_url.removeprefix("https://")
        assert proxy.tunnels and set(proxy.tunnels) == {target}
    assert gateway.stats.password_grants == 1


async def test_trust_env_takes_the_proxy_from_the_environment_and_honours_no_proxy(
    tls_gateway: tuple[FakeGateway, str], ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, base_url = tls_gateway
    async with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with maxa.MaxaClient(
            gateway.credentials, base_url=base_url, ca_bundle=ca_file, trust_env=True
        ) as client:
            assert await client.terminology(*RELIGION) == "اسلام"
        used = len(proxy.tunnels)
        async with maxa.MaxaClient(  # without trust_env the environment is not read
            gateway.credentials, base_url=base_url, ca_bundle=ca_file
        ) as client:
            assert await client.terminology(*RELIGION) == "اسلام"
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with maxa.MaxaClient(
            gateway.credentials, base_url=base_url, ca_bundle=ca_file, trust_env=True
        ) as client:
            assert await client.terminology(*RELIGION) == "اسلام"
    assert used >= 1
    assert len(proxy.tunnels) == used  # neither of the last two went through it


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"ca_bundle": "/no/such/ca.pem"}, "ca_bundle"),
        ({"ca_bundle": __file__}, "ca_bundle"),  # not PEM
        ({"proxy": "socks5://127.0.0.1:1080"}, "proxy"),
        ({"proxy": ""}, "proxy"),
        ({"trust_env": "yes"}, "trust_env"),
    ],
)
def test_bad_network_options_are_refused_naming_the_field(
    options: dict[str, object], field: str
) -> None:
    creds = maxa.Credentials(
        client_id="c", client_secret="s", username="u", password="p", pid="pid"
    )
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.MaxaClient(creds, **options)  # type: ignore[arg-type]
    assert info.value.field == field


def test_ca_bundle_and_proxy_from_the_environment(ca_file: Path) -> None:
    env = {
        "MAXA_CLIENT_ID": "c",
        "MAXA_CLIENT_SECRET": "s",
        "MAXA_USERNAME": "u",
        "MAXA_PASSWORD": "p",
        "MAXA_PID": "pid",
        "MAXA_CA_BUNDLE": str(ca_file),
        "MAXA_PROXY": "http://127.0.0.1:3128",
    }
    client = maxa.MaxaClient.from_env(env)
    assert client._transport._request_options["proxy"] == "http://127.0.0.1:3128"
    assert isinstance(client._transport._ssl, ssl.SSLContext)


def test_the_command_line_takes_proxy_and_ca_bundle_from_flags_or_environment(
    ca_file: Path, tmp_path: Path
) -> None:
    from maxa_async.cli._settings import GlobalOptions, resolve_settings

    env = {"MAXA_CA_BUNDLE": str(ca_file), "MAXA_PROXY": "http://127.0.0.1:3128"}
    settings = resolve_settings(GlobalOptions(), env, cwd=tmp_path)
    assert settings.ca_bundle == str(ca_file) and settings.proxy == "http://127.0.0.1:3128"
    flagged = resolve_settings(GlobalOptions(proxy="http://127.0.0.1:8080"), env, cwd=tmp_path)
    assert flagged.proxy == "http://127.0.0.1:8080" and flagged.sources["proxy"] == "flag"
