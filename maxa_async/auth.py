"""One OAuth2 token per client, shared by every coroutine.

* Lazy: the first call fetches it; however many coroutines start at once, one grant runs
  (single flight: one shared refresh task, which no cancelled caller can abort).
* Refresh-ahead: once ``refresh_fraction`` of the token's own lifetime has passed, one
  background task refreshes it while callers keep using the still-valid token.
* Refresh grant first; if the server rejects it, a password grant; if that is rejected
  too, every waiter gets AuthenticationError and the next call starts afresh.
* Compare-and-invalidate: a 401 invalidates the token *it was sent with*, so a thousand
  in-flight 401s cause one refresh, not a thousand.
* Grants never queue behind the MAXA request limiter; they have their own small retry.

The token lives in a :class:`TokenStore`: process memory by default; a store shared by
many processes (Redis) plugs in behind the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from multidict import CIMultiDict, CIMultiDictProxy

from .errors import AuthenticationError, MaxaError
from .models import Credentials, Token
from .oauth import TokenRequest, parse_token_response, password_grant, refresh_grant
from .operations import request_headers

__all__ = ["MemoryTokenStore", "TokenManager", "TokenStore"]

log = logging.getLogger("maxa_async.auth")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

#: Sends a grant request: ``(request) -> (status, headers, body)``.
GrantSender = Callable[[TokenRequest], Awaitable[tuple[int, Mapping[str, str], bytes]]]


@runtime_checkable
class TokenStore(Protocol):
    """Where the current token lives. Implementations must be safe to share."""

    async def load(self) -> Token | None: ...

    async def save(self, token: Token) -> None: ...

    async def invalidate(self, access_token: str) -> None:
        """Forget the current token only if it is still ``access_token``."""

    def refresh_lease(self) -> contextlib.AbstractAsyncContextManager[bool]:
        """Held while refreshing; yields True if this holder should do the grant."""
        ...


class MemoryTokenStore:
    """The default: the token in this process's memory; no cross-process coordination."""

    def __init__(self) -> None:
        self._token: Token | None = None

    async def load(self) -> Token | None:
        return self._token

    async def save(self, token: Token) -> None:
        self._token = token

    async def invalidate(self, access_token: str) -> None:
        if self._token is not None and self._token.access_token == access_token:
            self._token = None

    @contextlib.asynccontextmanager
    async def refresh_lease(self) -> AsyncIterator[bool]:
        yield True


class TokenManager:
    """Keeps one valid token for a client and the MAXA headers that go with it."""

    def __init__(
        self,
        credentials: Credentials,
        send: GrantSender,
        *,
        store: TokenStore | None = None,
        refresh_fraction: float = 0.75,
        grant_attempts: int = 3,
        grant_backoff: float = 0.2,
        clock: Callable[[], float] = time.time,
        on_grant: Callable[[str, bool], None] | None = None,
    ) -> None:
        if not 0.0 < refresh_fraction < 1.0:
            raise ValueError(f"refresh_fraction must be between 0 and 1, got {refresh_fraction}")
        self._credentials = credentials
        self._send = send
        self._store: TokenStore = store or MemoryTokenStore()
        self._refresh_fraction = refresh_fraction
        self._grant_attempts = grant_attempts
        self._grant_backoff = grant_backoff
        self._clock = clock
        self._on_grant = on_grant
        self._token: Token | None = None
        self._refresh_token: str | None = None
        self._headers: Mapping[str, str] = _NO_HEADERS
        # Until this moment (clock) the token needs no look: usable, no refresh due.
        self._quiet_until = 0.0
        self._task: asyncio.Task[Token] | None = None
        self._background_failed_at = 0.0

    @property
    def token(self) -> Token | None:
        """The token in use (None before the first grant or after an invalidation)."""
        return self._token

    @property
    def store(self) -> TokenStore:
        return self._store

    @property
    def headers(self) -> Mapping[str, str]:
        """MAXA request headers for the current token, built once per token (as the
        multidict aiohttp would otherwise build from a dict on every request)."""
        return self._headers

    @staticmethod
    def _usable_until(token: Token) -> float:
        # Keep a small margin so a token does not expire in flight.
        return token.expires_at - min(2.0, token.lifetime * 0.05)

    def _usable(self, token: Token | None, now: float) -> bool:
        return token is not None and now < self._usable_until(token)

    def current(self) -> Token | None:
        """The token to use now, without waiting (starting a refresh-ahead if it is due);
        None when a grant must be awaited first (:meth:`get`)."""
        token = self._token
        if token is None:
            return None
        now = self._clock()
        if now < self._quiet_until:
            return token  # the hot path
        if not self._usable(token, now):
            return None
        if now >= token.refresh_due_at(self._refresh_fraction):
            self._refresh_in_background(token, now)
        return token

    async def get(self) -> Token:
        """A valid token; starts or joins a grant only when there is none."""
        return self.current() or await self._join_refresh(self._token)

    def _refresh_in_background(self, token: Token, now: float) -> None:
        if self._task is not None and not self._task.done():
            return
        if now - self._background_failed_at < max(1.0, token.lifetime * 0.02):
            return  # a background refresh just failed; the token is still good
        self._task = asyncio.get_running_loop().create_task(self._refresh(token))
        self._task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Token]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._background_failed_at = self._clock()
            log.warning("refresh-ahead failed; the current token stays in use: %s", exc)

    async def _join_refresh(self, stale: Token | None) -> Token:
        task = self._task
        if task is None or task.done():
            task = self._task = asyncio.get_running_loop().create_task(self._refresh(stale))
            task.add_done_callback(_consume_exception)
        # shield: a cancelled caller stops waiting; the shared refresh goes on.
        return await asyncio.shield(task)

    async def invalidate(self, token: Token) -> None:
        """After a 401: forget ``token`` if it is still the current one (compare-and-set)."""
        if self._token is token:
            log.debug("token rejected with 401; invalidating it")
            self._token = None
            self._headers = _NO_HEADERS
            await self._store.invalidate(token.access_token)

    async def _refresh(self, stale: Token | None) -> Token:
        async with self._store.refresh_lease() as leader:
            stored = await self._store.load()
            now = self._clock()
            fresh = (
                stored is not None
                and (stale is None or stored.access_token != stale.access_token)
                and self._usable(stored, now)
            )
            if (
                stored is not None
                and fresh
                and (not leader or now < stored.refresh_due_at(self._refresh_fraction))
            ):
                return self._use(stored)  # another holder of the store refreshed already
            if stored is not None and stored.refresh_token:
                # A shared store's token may be newer than any this holder used (another
                # process refreshed it, and the server may have rotated the refresh token).
                self._refresh_token = stored.refresh_token
            token = await self._grant()
            await self._store.save(token)
            return self._use(token)

    def _use(self, token: Token) -> Token:
        self._token = token
        if token.refresh_token:
            self._refresh_token = token.refresh_token
        self._headers = CIMultiDictProxy(
            CIMultiDict(request_headers(token.access_token, self._credentials.pid))
        )
        self._quiet_until = min(
            token.refresh_due_at(self._refresh_fraction), self._usable_until(token)
        )
        return token

    async def _grant(self) -> Token:
        # The latest refresh token is kept even after its access token was invalidated:
        # a 401 on the access token says nothing about the refresh token.
        if self._refresh_token:
            try:
                return await self._send_grant(refresh_grant(self._credentials, self._refresh_token))
            except AuthenticationError as exc:
                self._refresh_token = None
                log.info("refresh grant rejected (%s); falling back to the password grant", exc)
        return await self._send_grant(password_grant(self._credentials))

    async def _send_grant(self, request: TokenRequest) -> Token:
        attempt = 0
        while True:
            attempt += 1
            now = self._clock()
            try:
                status, headers, body = await self._send(request)
                token = parse_token_response(status, headers, body, now=now)
            except MaxaError as exc:
                if self._on_grant is not None:
                    self._on_grant(request.grant_type, False)
                if isinstance(exc, AuthenticationError) or not exc.retryable:
                    raise
                if attempt >= self._grant_attempts:
                    raise
                log.debug("token grant failed (%s); retry %d", exc, attempt)
                await asyncio.sleep(self._grant_backoff * attempt)
                continue
            if self._on_grant is not None:
                self._on_grant(request.grant_type, True)
            log.debug("token granted (%s), lifetime %.0fs", request.grant_type, token.lifetime)
            return token

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _consume_exception(task: asyncio.Task[Token]) -> None:
    # Waiters see the exception through shield(); this keeps asyncio from logging
    # "exception was never retrieved" when every waiter was cancelled.
    if not task.cancelled():
        task.exception()
