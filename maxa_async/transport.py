"""The only I/O: an aiohttp ClientSession over a pooled TCPConnector.

It sends bytes and returns the triple ``(status, headers, body)``; everything else
(envelopes, errors, retries) happens above it. Connection failures and time-outs become
:class:`TransportError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl as ssl_module
from collections.abc import Mapping
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .errors import InvalidInputError, TransportError
from .limits import Timeout

__all__ = ["AiohttpTransport", "check_base_url"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


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
    ) -> None:
        self._base_url = base_url
        self._pool_size = pool_size
        self._ssl: ssl_module.SSLContext | bool = ssl
        self._client_timeout = aiohttp.ClientTimeout(
            total=timeout.request, sock_connect=timeout.connect
        )
        self._session = session
        self._owns_session = session is None
        self._urls: dict[str, URL] = {}

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return self._session

    async def open(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=self._pool_size,
            ttl_dns_cache=300,
            keepalive_timeout=30,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._client_timeout,
            auto_decompress=True,
            raise_for_status=False,
        )

    async def close(self) -> None:
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
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        session = self._session
        if session is None:
            await self.open()
            session = self._session
            assert session is not None
        kwargs: dict[str, Any] = {"headers": headers, "data": body}
        if not self._owns_session:
            kwargs["timeout"] = self._client_timeout
            kwargs["ssl"] = self._ssl
        try:
            async with session.request(method, self.url(path), **kwargs) as response:
                payload = await response.read()
                return response.status, response.headers, payload
        except TimeoutError:
            raise TransportError(
                "the gateway did not answer in time", operation=operation
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"connection to the gateway failed: {type(exc).__name__}: {exc}",
                operation=operation,
            ) from None
        except asyncio.CancelledError:
            raise
