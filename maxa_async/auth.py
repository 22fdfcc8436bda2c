"""One OAuth2 token per client, shared by every coroutine.

* Lazy: the first call fetches it; however many coroutines start at once, one grant runs
  (single flight: one shared refresh task, which no cancelled caller can abort).
* Refresh-ahead: once ``refresh_fraction`` of the token's own lifetime has passed, one
  background task refreshes it while callers keep using the still-valid token.
* Refresh grant first; if the server rejects it, a password grant; if that is rejected
  too, every waiter gets AuthenticationError and the next call starts afresh.
* Compare-and-invalidate: a 401 invalidates the token *it was sent with*, so a thousand
  in-flight 401s cause one refresh, not a thousand.
* Grants never queue behind the MAXA request limiter; they retry by their own
  :class:`~maxa_async.retry.RetryPolicy` (``GrantPolicy.retry``: few, quick attempts).
* Grant storms are refused (:class:`GrantPolicy`): a failed grant round (rejected
  credentials, an unreadable answer, a token that dies at once, or a fresh token the
  gateway answers 401 to before it accepts any request) pauses grants. While paused,
  calls that need a token fail at once with that round's error and nothing is sent;
  pauses grow exponentially (jittered, capped) with the failures in a row, and grant
  requests of any outcome are capped per minute. A successful grant ends the pause.
  Each run of failures is logged once, as a WARNING, and shows in ``client.stats``.
* Tokens are checked (:func:`token_problem`) whether they come from the gateway or from
  the store: a store's unusable token is dropped with a warning and a grant follows.

The token lives in a :class:`TokenStore`: process memory by default; a store shared by
many processes (Redis) plugs in behind the same interface.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

from .envelope import header
from .errors import AuthenticationError, ClientLimitError, ConfigError, MaxaError, ProtocolError
from .models import Credentials, Token
from .oauth import TokenRequest, parse_token_response, password_grant, refresh_grant
from .operations import request_headers
from .retry import RetryPolicy
from .retry import finite_number as _finite
from .stats import ClientStats

__all__ = [
    "GRANT_RETRY",
    "GrantPolicy",
    "MemoryTokenStore",
    "TokenManager",
    "TokenStore",
    "token_problem",
]

log = logging.getLogger("maxa_async.auth")

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

#: Sends a grant request: ``(request) -> (status, headers, body)``.
GrantSender = Callable[[TokenRequest], Awaitable[tuple[int, Mapping[str, str], bytes]]]

_WINDOW: Final = 60.0  # seconds over which GrantPolicy.max_grants_per_minute counts


#: A grant round's own retries: every caller that needs a token waits on the round, so they
#: are few and quick (0.2 s, then 0.4 s); a Retry-After over a second ends the round, and
#: the pause after a failed round (GrantPolicy.delay) does the longer waiting.
GRANT_RETRY: Final = RetryPolicy(attempts=3, base_delay=0.2, jitter=False, max_retry_after=1.0)


@attrs.frozen(kw_only=True)
class GrantPolicy:
    """How hard a client may press the token endpoint when grants fail.

    A failed grant round pauses grants for ``delay(failures in a row)``: exponential from
    ``base_delay``, capped at ``max_delay``, with jitter (a uniform pick in the upper half,
    so many clients do not return together). While paused, calls needing a token fail at
    once with the error the round produced. At most ``max_grants_per_minute`` grant
    requests, failed or not, leave over any 60 seconds. A token that lives less than
    ``min_lifetime`` seconds counts as a failed grant. ``base_delay=0`` turns pauses off
    (the per-minute cap still holds). ``retry`` retries the requests of one round (5xx,
    429, transport errors; a rejected grant never) by :meth:`RetryPolicy.decide`, its
    ``elapsed`` counted from the round's first request.
    """

    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: bool = True
    max_grants_per_minute: int = 30
    min_lifetime: float = 1.0
    retry: RetryPolicy = GRANT_RETRY

    def __attrs_post_init__(self) -> None:
        for name in ("base_delay", "max_delay", "min_lifetime"):
            value = getattr(self, name)
            if not _finite(value) or value < 0:
                raise ConfigError(f"GrantPolicy.{name}", f"must be a number >= 0, got {value!r}")
        cap = self.max_grants_per_minute
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(
                "GrantPolicy.max_grants_per_minute", f"must be an int >= 1, got {cap!r}"
            )
        if not isinstance(self.retry, RetryPolicy):
            raise ConfigError("GrantPolicy.retry", "must be a maxa.RetryPolicy")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The pause after ``failures`` failed rounds in a row (0 for none)."""
        if failures < 1 or self.base_delay <= 0:
            return 0.0
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(failures - 1, 60))
        if not self.jitter:
            return ceiling
        return float((rng or random).uniform(ceiling / 2, ceiling))


def _visible(text: str, *, space: bool) -> bool:
    low = " " if space else "!"
    return all(low <= ch <= "~" for ch in text)


def token_problem(token: object, *, min_lifetime: float = 0.0) -> str | None:
    """Why ``token`` cannot be used (None: it can). The same checks for a token from the
    gateway and one read back from a store, whose fields may be anything: the access
    token goes into every request's Authorization header, so it must be visible ASCII
    (RFC 6750), the refresh token into a form (RFC 6749's VSCHAR), the type must be
    bearer, the lifetime and expiry finite. Whether it has expired is the caller's to
    judge (it needs a margin). The reason never quotes the token."""
    if not isinstance(token, Token):
        return f"not a token but {type(token).__name__}"
    access = token.access_token
    if not isinstance(access, str) or not access:
        return "no access token"
    if not _visible(access, space=False):
        return "the access token has characters that cannot go in a header"
    refresh = token.refresh_token
    if refresh is not None and (
        not isinstance(refresh, str) or not refresh or not _visible(refresh, space=True)
    ):
        return "the refresh token is empty, not a string, or has control characters"
    if not isinstance(token.token_type, str) or token.token_type.lower() != "bearer":
        return "the token type is not bearer"
    if token.scope is not None and (
        not isinstance(token.scope, str) or not _visible(token.scope, space=True)
    ):
        return "the scope is not a string of visible characters"
    lifetime = token.lifetime
    if not _finite(lifetime) or lifetime <= 0:
        return "the lifetime is not a positive number of seconds"
    if lifetime < min_lifetime:
        return f"it lives {lifetime:.3g}s, less than the {min_lifetime:.3g}s a token must"
    if not _finite(token.expires_at):
        return "the expiry is not a finite time"
    return None


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

    async def aclose(self) -> None:
        """Release connections; the client awaits it once, when it is closed."""


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

    async def aclose(self) -> None:
        """Nothing to release: the token is only in memory."""


class TokenManager:
    """Keeps one valid token for a client and the MAXA headers that go with it.

    ``grant_policy`` (a :class:`GrantPolicy`) and ``clock`` (wall-clock seconds; token
    expiry, pauses and the per-minute count all read it) may be replaced at any time.
    ``stats``: the client's :class:`ClientStats`, where grant pauses show; when not given
    and ``on_grant`` is a ClientStats method (as MaxaClient passes it), that ClientStats.
    ``grant_attempts`` and ``grant_backoff``, when given, replace the attempts and the
    first back-off of ``grant_policy.retry`` (the back-off doubles from there).
    """

    def __init__(
        self,
        credentials: Credentials,
        send: GrantSender,
        *,
        store: TokenStore | None = None,
        refresh_fraction: float = 0.75,
        grant_attempts: int | None = None,
        grant_backoff: float | None = None,
        clock: Callable[[], float] = time.time,
        on_grant: Callable[[str, bool], None] | None = None,
        grant_policy: GrantPolicy | None = None,
        stats: ClientStats | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not _finite(refresh_fraction) or not 0.0 < refresh_fraction < 1.0:
            raise ConfigError(
                "refresh_fraction", f"must be between 0 and 1, got {refresh_fraction!r}"
            )
        if grant_policy is not None and not isinstance(grant_policy, GrantPolicy):
            raise ConfigError("grant_policy", "must be a GrantPolicy")
        grant_policy = grant_policy or GrantPolicy()
        if grant_attempts is not None or grant_backoff is not None:
            retry = grant_policy.retry
            retry = attrs.evolve(
                retry,
                attempts=retry.attempts if grant_attempts is None else grant_attempts,
                base_delay=retry.base_delay if grant_backoff is None else grant_backoff,
            )
            grant_policy = attrs.evolve(grant_policy, retry=retry)
        self._credentials = credentials
        self._send = send
        self._store: TokenStore = store or MemoryTokenStore()
        self._refresh_fraction = refresh_fraction
        self.clock = clock
        self._on_grant = on_grant
        self.grant_policy = grant_policy
        self._rng = rng or random.Random()
        if stats is None:
            owner = getattr(on_grant, "__self__", None)
            stats = owner if isinstance(owner, ClientStats) else None
        self._stats = stats
        if stats is not None:
            stats.grants = self.grant_state
        self._token: Token | None = None
        self._refresh_token: str | None = None
        self._headers: Mapping[str, str] = _NO_HEADERS
        # Until this moment (clock) the token needs no look: usable, no refresh due.
        self._quiet_until = 0.0
        self._task: asyncio.Task[Token] | None = None
        self._background_failed_at = 0.0
        # The storm guard. A pause runs from _paused_from to _paused_until (clock); a
        # clock that went back before its start ends it. _failure is what calls get.
        self._failures = 0  # failed grant rounds in a row
        self._strikes = 0  # fresh tokens answered 401 before any other answer, in a row
        self._failure: MaxaError | None = None
        self._paused_from = 0.0
        self._paused_until = 0.0
        self._episode = False  # a run of failures, logged once when it starts
        self._throttle: MaxaError | None = None  # the error the per-minute cap raised
        self._grant_times: collections.deque[float] = collections.deque()
        self._granted: Token | None = None  # the last token this manager was granted
        self._refused: Token | None = None  # the store's last unusable token
        self._answers_at_grant = 0

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
        now = self.clock()
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
        if self._paused(now):
            return  # grants are paused after failures; the token is still good
        self._task = asyncio.get_running_loop().create_task(self._refresh(token, background=True))
        self._task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Token]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # The run of failures it belongs to was logged once, as a WARNING.
            self._background_failed_at = self.clock()
            log.debug("refresh-ahead failed; the current token stays in use: %s", exc)

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
            if token is self._granted:
                self._judge_granted_token(rejected=True)
            self._token = None
            self._headers = _NO_HEADERS
            await self._store.invalidate(token.access_token)

    def retry_now(self) -> None:
        """End a grant pause: the next call that needs a token asks for one at once
        (e.g. after the account was unlocked or its password fixed at the gateway). The
        per-minute cap still holds."""
        self._paused_until = 0.0
        self._failures = self._strikes = 0
        self._end_episode()

    def grant_state(self) -> dict[str, Any]:
        """The storm guard's state, for ``client.stats``: failures in a row, whether
        grants are paused and until when (wall clock), grant requests in the last minute."""
        now = self.clock()
        left = self._paused_until - now if self._paused(now) else 0.0
        return {
            "failures_in_row": self._steps(),
            "paused": left > 0,
            "retry_in": round(left, 3),
            "retry_at": round(now + left, 3) if left > 0 else None,
            "grants_last_minute": self._grants_in_window(now),
        }

    async def _refresh(self, stale: Token | None, *, background: bool = False) -> Token:
        now = self.clock()
        if self._paused(now):
            # No grant while paused; a token another holder of the store got is welcome.
            stored = self._checked(await self._store.load())
            if stored is not None and _newer(stored, stale) and self._usable(stored, now):
                return self._use(stored)
            if self._stats is not None:
                self._stats.grants_skipped += 1
            raise self._failure_again(now)
        async with self._store.refresh_lease() as leader:
            now = self.clock()
            stored = self._checked(await self._store.load())
            fresh = stored is not None and _newer(stored, stale) and self._usable(stored, now)
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
            try:
                token = await self._grant()
            except MaxaError as exc:
                self._grant_failed(exc, background=background)
                raise
            self._grant_succeeded()
            await self._store.save(token)
            return self._use(token, granted=True)

    def _checked(self, stored: Token | None) -> Token | None:
        """The store's token, or None if it cannot be used (it is dropped, with a warning,
        and a grant follows, just as for a bad answer from the gateway)."""
        if stored is None:
            return None
        problem = token_problem(stored, min_lifetime=self.grant_policy.min_lifetime)
        if problem is None:
            return stored
        if stored != self._refused:  # warned about once
            self._refused = stored
            log.warning("the token store holds an unusable token (%s); ignoring it", problem)
        return None

    def _use(self, token: Token, *, granted: bool = False) -> Token:
        previous = self._token
        if previous is not None and previous is self._granted:
            self._judge_granted_token(rejected=False)
        self._token = token
        if granted:
            self._granted = token
            self._answers_at_grant = self._answers()
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
                if exc is self._throttle:
                    raise
                self._refresh_token = None
                log.info("refresh grant rejected (%s); falling back to the password grant", exc)
        return await self._send_grant(password_grant(self._credentials))

    async def _send_grant(self, request: TokenRequest) -> Token:
        retry = self.grant_policy.retry
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            now = self.clock()
            self._count_grant(now)
            try:
                status, headers, body = await self._send(request)
                token = parse_token_response(status, headers, body, now=now)
                problem = token_problem(token, min_lifetime=self.grant_policy.min_lifetime)
                if problem is not None:
                    raise ProtocolError(
                        f"the token endpoint issued an unusable token: {problem}",
                        status=status,
                        operation="token",
                        request_id=header(headers, "requestId"),
                    )
            except MaxaError as exc:
                if self._on_grant is not None:
                    self._on_grant(request.grant_type, False)
                delay = retry.decide(exc, attempt, time.monotonic() - started, rng=self._rng)
                if delay is None:
                    raise
                log.debug("token grant failed (%s); retry %d in %.2fs", exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            if self._on_grant is not None:
                self._on_grant(request.grant_type, True)
            log.debug("token granted (%s), lifetime %.0fs", request.grant_type, token.lifetime)
            return token

    # ------------------------------------------------------------------ storm guard

    def _paused(self, now: float) -> bool:
        return self._paused_from <= now < self._paused_until

    def _grants_in_window(self, now: float) -> int:
        times = self._grant_times
        # Oldest first; a time after now means the clock went back: forget it too.
        while times and (times[0] <= now - _WINDOW or times[0] > now):
            times.popleft()
        return len(times)

    def _count_grant(self, now: float) -> None:
        """Take one of the minute's grant requests, or raise: the cap is reached."""
        cap = self.grant_policy.max_grants_per_minute
        if self._grants_in_window(now) < cap:
            self._grant_times.append(now)
            return
        until = self._grant_times[0] + _WINDOW
        if self._failure is not None:
            error = _again(self._failure)
        else:
            error = ClientLimitError(
                f"{cap} token grants in the last minute, the most allowed; no grant "
                f"for {until - now:.1f}s",
                retry_after=until - now,
                operation="token",
            )
        self._throttle = error
        self._pause(now, until, error, f"{cap} token grants in the last minute")
        raise error

    def _answers(self) -> int:
        """Answers other than 401 (and other than no answer) the client has seen."""
        if self._stats is None:
            return 0
        return sum(n for status, n in self._stats.answered.items() if status not in (0, 401))

    def _steps(self) -> int:
        """Pause steps: failed rounds in a row, and tokens refused in a row but the first
        (one may be a revocation that came right after a refresh; two are a 401 storm)."""
        return self._failures + max(0, self._strikes - 1)

    def _judge_granted_token(self, *, rejected: bool) -> None:
        """The last granted token leaves use. If the gateway answered nothing but 401 since
        it was granted, a grant would only buy another 401 (a 401 storm): a failure."""
        if self._stats is None:
            return  # no answers to judge by; the per-minute cap still bounds grants
        self._granted = None
        if self._answers() > self._answers_at_grant:
            if self._strikes:
                self._strikes = 0
                if not self._failures:
                    self._end_episode()
            return
        if not rejected:
            return
        self._strikes += 1
        self._stats.rejected_fresh_tokens += 1
        if not self._steps():
            log.debug("a new token was refused with 401 before any answer; granting again")
            return
        now = self.clock()
        delay = self.grant_policy.delay(self._steps(), self._rng)
        error = AuthenticationError(
            "the gateway answered 401 to a newly granted token before accepting any request "
            "with it; grants are paused",
            status=401,
        )
        self._pause(now, now + delay, error, "a new token was refused with 401")

    def _grant_failed(self, exc: MaxaError, *, background: bool) -> None:
        if exc is self._throttle:
            return  # the cap paused grants already; not a failure of the grant
        self._failures += 1
        now = self.clock()
        delay = self.grant_policy.delay(self._steps(), self._rng)
        what = "refresh-ahead failed; the current token stays in use" if background else None
        self._pause(now, now + delay, exc, what or "token grant failed")

    def _grant_succeeded(self) -> None:
        failures, self._failures = self._failures, 0
        self._paused_until = 0.0
        if failures:
            log.info("token granted after %d failed grant round(s)", failures)
        if not self._strikes:
            self._end_episode()

    def _pause(self, now: float, until: float, error: MaxaError, what: str) -> None:
        if error is not self._throttle or self._failure is None:
            self._failure = error
        if not self._paused(now) or until > self._paused_until:
            self._paused_until = until
        self._paused_from = min(now, self._paused_until)
        left = max(0.0, self._paused_until - now)
        if self._episode:
            log.debug("%s again (%s); no grant for %.1fs", what, error, left)
            return
        self._episode = True
        if self._stats is not None:
            self._stats.grant_failure_episodes += 1
        policy = self.grant_policy
        log.warning(
            "%s: %s; calls needing a token fail at once with this error for %.1fs, then "
            "grants resume with back-off (up to %.0fs) and at most %d a minute",
            what,
            error,
            left,
            policy.max_delay,
            policy.max_grants_per_minute,
        )

    def _end_episode(self) -> None:
        self._episode = False
        self._failure = None
        self._throttle = None

    def _failure_again(self, now: float) -> MaxaError:
        failure = self._failure
        if failure is None:  # pragma: no cover - a pause always has its error
            failure = AuthenticationError("token grants are paused")
        error = _again(failure)
        error.add_note(f"no token grant for {self._paused_until - now:.1f}s after failures")
        return error

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def _newer(stored: Token, stale: Token | None) -> bool:
    return stale is None or stored.access_token != stale.access_token


def _again(error: MaxaError) -> MaxaError:
    """A copy of ``error`` to raise once more: same type, message and fields, but its own
    traceback and notes (raising one instance again and again would grow its traceback),
    and no chained exceptions kept alive."""
    try:
        again = copy.copy(error)
    except Exception:  # an error type whose constructor wants more than its message
        return error.with_traceback(None)
    if "__notes__" in again.__dict__:
        again.__notes__ = list(again.__notes__)
    return again


def _consume_exception(task: asyncio.Task[Token]) -> None:
    # Waiters see the exception through shield(); this keeps asyncio from logging
    # "exception was never retrieved" when every waiter was cancelled.
    if not task.cancelled():
        task.exception()
