"""MaxaClient: one pooled session, one shared token, bounded concurrency, retries.

Create one per process, share it with every coroutine, close it at shutdown::

    async with maxa.MaxaClient(maxa.Credentials.from_env()) as client:
        ok = await client.validate_cts(maxa.CodedText(value=..., terminology_id="eRx",
                                                      coded_string="60002"))
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import math
import os
import random
import ssl as ssl_module
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import aiohttp
import attrs

from . import operations as ops
from .auth import TokenManager, TokenStore
from .bulk import default_window, make_outcome, ordered
from .cache import MISSING, ResponseCache
from .envelope import REQUEST_ID, header
from .errors import (
    AuthenticationError,
    ClientClosedError,
    ConfigError,
    InvalidInputError,
    MaxaError,
    RateLimitedError,
    TransportError,
)
from .events import Hooks, RequestEvent, ResponseEvent
from .limits import Limiter, RateGate, RetryBudget, RetryPolicy, Timeout
from .models import CodedText, Credentials, TerminologyVersion, Token, ValidationOutcome
from .oauth import TokenRequest
from .options import DEFAULT_BASE_URL, ClientOptions, ssl_context_from, timeout_from
from .pacer import Budget, budget_from_headers
from .stats import ClientStats
from .transport import AiohttpTransport, check_base_url

if TYPE_CHECKING:
    from aiohttp import ClientMiddlewareType

    from .fleet import Fleet

__all__ = ["DEFAULT_BASE_URL", "MaxaClient", "ValidationOutcome"]  # the outcome: from models

T = TypeVar("T")

log = logging.getLogger("maxa_async.client")

#: Replays after a 401, each with a token fetched after the one that was refused.
_MAX_401_REPLAYS: Final = 3
#: A Retry-After up to this says "too fast" (see MaxaClient._attempts); a longer one
#: pauses every caller.
_SHORT_RETRY_AFTER: Final = 1.0
#: How long aclose() waits for the calls it ended to leave.
_CLOSE_WAIT: Final = 5.0
#: validate_many's workers at most, per slot of max_concurrency: room for those waiting
#: out a short Retry-After (they hold no slot) to be replaced.
_WORKERS_PER_SLOT: Final = 4
#: The options :meth:`MaxaClient.from_env` reads, and their variables.
_ENVIRONMENT_OPTIONS: Final = {
    "base_url": "MAXA_BASE_URL",
    "redis_url": "MAXA_REDIS_URL",
    "ca_bundle": "MAXA_CA_BUNDLE",
    "proxy": "MAXA_PROXY",
    "fleet_rate_limit": "MAXA_FLEET_RATE_LIMIT",
}
_DEFAULT_OPTIONS: Final = ClientOptions()


class _Unset:
    """The default of an option left as it was (None means "none")."""


_UNSET: Final = _Unset()


class MaxaClient:
    """An asyncio client for the seven MAXA operations.

    Keyword options (or all of them at once: ``options=``, a :class:`ClientOptions`;
    each is checked there, and a bad one raises :class:`ConfigError` naming it):
        base_url: the DITAS gateway (https; plain http only to loopback).
        max_concurrency: the most MAXA requests in flight (and the connection pool size).
        timeout: per-attempt :class:`Timeout`, or a number of seconds.
        retry: a :class:`RetryPolicy`; ``RetryPolicy.for_tests()`` turns back-off off.
        retry_budget: a :class:`RetryBudget` shared by all calls (None: unlimited retries
            within each call's own policy).
        adaptive: find the rate the gateway admits (the pacer) and let the in-flight bound
            adapt (AIMD) between 1 and the maximum; False keeps only ``rate_limit``.
        rate_limit: optional cap in requests/second (GCRA).
        fail_fast: raise RateLimitedError instead of queueing when every slot is taken.
        coalesce: identical concurrent calls share one request (all are read-only).
        cache: a :class:`ResponseCache` to answer repeated lookups and validations
            from memory (off by default).
        session: an aiohttp ClientSession of yours; the client will not close it.
        ssl: an ``ssl.SSLContext`` (or False to disable verification: don't).
        ca_bundle: a PEM file of the CA certificates to trust for the gateway (your own CA,
            a TLS-inspecting proxy's), instead of the system's; also ``MAXA_CA_BUNDLE``.
        proxy: an ``http://`` proxy for every request (token grants included); HTTPS goes
            through it with CONNECT. Also ``MAXA_PROXY``.
        trust_env: take the proxy from ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY``.
        token_store: where the token lives (process memory by default).
        rate_gate: a rate budget shared with other clients or processes (see fleet mode).
        fleet: fleet mode with a :class:`maxa_async.fleet.Fleet` of yours, used as it is:
            its token store and rate gate (unless ``token_store``/``rate_gate`` are given),
            its stats under ``stats.as_dict()["fleet"]``; not with ``redis_url``.
        redis_url: fleet mode: share the token and the rate budget with every process
            using the same Redis and account (needs the ``redis`` extra); also read from
            ``MAXA_REDIS_URL`` by :meth:`from_env`.
        fleet_rate_limit: fleet mode: requests/second for all processes together
            (``MAXA_FLEET_RATE_LIMIT``); set it a few percent under the account's limit.
            Without it the fleet learns a shared pace from the gateway's answers.
        fleet_options: more :class:`maxa_async.fleet.Fleet` options (lease_seconds,
            key_prefix, burst ...).
        refresh_fraction: refresh ahead once this share of the token's lifetime is gone.
        on_request: called before every attempt with a :class:`RequestEvent`; it may add
            headers (a correlation id, say) to ``event.headers``.
        on_response: called once per call, when it ends, with a :class:`ResponseEvent`
            (the gateway's request id, status, attempts, time, cache or coalesced).
        latency_tolerance: shrink the in-flight bound when latency climbs past this factor
            of the best seen (e.g. 3.0; None, the default: latency does not steer it).
        max_response_bytes: the largest answer body read, one number for every operation
            or ``{wire name: bytes}`` for some (defaults: ``operations.MAX_RESPONSE_BYTES``).
        middlewares: aiohttp client middlewares (aiohttp 3.12+) for the session the client
            makes: they see every request, token grants (credentials) included; not with
            ``session`` (give them to your session).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        options: ClientOptions | None = None,
        base_url: str = DEFAULT_BASE_URL,
        max_concurrency: int = 64,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        adaptive: bool = True,
        rate_limit: float | None = None,
        fail_fast: bool = False,
        coalesce: bool = True,
        cache: ResponseCache | None = None,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        ca_bundle: str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        trust_env: bool = False,
        token_store: TokenStore | None = None,
        rate_gate: RateGate | None = None,
        fleet: Fleet | None = None,
        redis_url: str | None = None,
        fleet_rate_limit: float | None = None,
        fleet_options: Mapping[str, Any] | None = None,
        refresh_fraction: float = 0.75,
        latency_tolerance: float | None = None,
        on_request: Callable[[RequestEvent], None] | None = None,
        on_response: Callable[[ResponseEvent], None] | None = None,
        max_response_bytes: int | Mapping[str, int] | None = None,
        middlewares: Sequence[ClientMiddlewareType] | None = None,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise InvalidInputError(
                "credentials", f"must be maxa.Credentials, got {type(credentials).__name__}"
            )
        keywords = ClientOptions(
            base_url=base_url,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry=retry,
            retry_budget=retry_budget,
            adaptive=adaptive,
            rate_limit=rate_limit,
            fail_fast=fail_fast,
            coalesce=coalesce,
            cache=cache,
            session=session,
            ssl=ssl,
            ca_bundle=ca_bundle,
            proxy=proxy,
            trust_env=trust_env,
            token_store=token_store,
            rate_gate=rate_gate,
            fleet=fleet,
            redis_url=redis_url,
            fleet_rate_limit=fleet_rate_limit,
            fleet_options=fleet_options,
            refresh_fraction=refresh_fraction,
            latency_tolerance=latency_tolerance,
            on_request=on_request,
            on_response=on_response,
            max_response_bytes=max_response_bytes,
            middlewares=middlewares,
        )
        if options is None:
            options = keywords
        elif not isinstance(options, ClientOptions):
            raise ConfigError("options", "must be a maxa.ClientOptions or None")
        else:
            _refuse_keywords_besides_options(keywords)
        self._options = options
        tls = options.ssl
        if options.ca_bundle is not None:
            tls = ssl_context_from(options.ca_bundle, options.ssl)
        self._base_url = check_base_url(options.base_url)
        self._credentials = credentials
        self._retry = options.retry or RetryPolicy()
        self._budget = options.retry_budget
        self._coalesce = options.coalesce
        self._cache = options.cache
        self._rng = random.Random()
        self.stats = ClientStats()
        # Fleet mode: the Fleet given, or the one made here from redis_url. The client
        # keeps it, for its stats and to close it.
        self._fleet = options.fleet
        if self._fleet is None and options.redis_url is not None:
            from .fleet import Fleet  # optional dependency: imported only when asked for

            self._fleet = Fleet(
                options.redis_url,
                credentials=credentials,
                rate_limit=options.fleet_rate_limit,
                **dict(options.fleet_options or {}),
            )
        store, gate = options.token_store, options.rate_gate
        if self._fleet is not None:
            store = self._fleet.token_store if store is None else store
            gate = self._fleet.rate_gate if gate is None else gate
            self.stats.fleet = self._fleet.stats
        self._gate = gate
        # A gate that learns the shared pace paces for the client (its own pacer keeps
        # only rate_limit): two pacers in series would cut twice for one overshoot.
        learns_pace = gate is not None and gate.learns_pace
        self._limiter = Limiter(
            options.max_concurrency,
            adaptive=options.adaptive,
            rate_limit=options.rate_limit,
            fail_fast=options.fail_fast,
            latency_tolerance=options.latency_tolerance,
            pace_adaptive=options.adaptive and not learns_pace,
        )
        self.stats.limiter = self._limiter.state
        self._transport = AiohttpTransport(
            self._base_url,
            pool_size=options.max_concurrency,
            timeout=options.timeout,
            session=options.session,
            ssl=tls,
            proxy=options.proxy,
            trust_env=options.trust_env,
            max_response_bytes=options.max_response_bytes,
            middlewares=options.middlewares,
        )
        self._tokens = TokenManager(
            credentials,
            self._send_grant,
            store=store,
            refresh_fraction=options.refresh_fraction,
            on_grant=self.stats.record_grant,
        )
        self._pending: dict[tuple[str, bytes], asyncio.Future[Any] | None] = {}
        self._calls: set[asyncio.Task[Any]] = set()  # tasks sending a call (_execute)
        self._closing: set[asyncio.Task[Any]] = set()  # of those, the ones aclose cancelled
        self._life = _Life()  # shared with the views of with_options()
        self._hooks = Hooks(on_request=options.on_request, on_response=options.on_response)
        self._attempt_timeout: float | None = None  # a view's own per-attempt limit
        self._call_deadline: float | None = None  # a view's limit on a whole call

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> MaxaClient:
        """Credentials from ``MAXA_*`` (see :meth:`Credentials.from_env`); ``MAXA_BASE_URL``,
        ``MAXA_REDIS_URL``, ``MAXA_FLEET_RATE_LIMIT``, ``MAXA_CA_BUNDLE`` and ``MAXA_PROXY``
        when set. Keyword options as for the constructor win (a ``fleet`` given wins over
        the fleet variables); with ``options=``, the variables fill in only what those
        options leave at the default."""
        env = os.environ if environ is None else environ
        found: dict[str, Any] = {}
        for name, variable in _ENVIRONMENT_OPTIONS.items():
            if env.get(variable, "").strip():
                found[name] = env[variable].strip()
        if "fleet_rate_limit" in found:
            try:
                found["fleet_rate_limit"] = float(found["fleet_rate_limit"])
            except ValueError:
                raise ConfigError(
                    "MAXA_FLEET_RATE_LIMIT", "must be a number of requests/second"
                ) from None
        whole = options.get("options")
        fleet = whole.fleet if isinstance(whole, ClientOptions) else options.get("fleet")
        if fleet is not None:  # a Fleet given wins over the fleet variables
            found.pop("redis_url", None)
            found.pop("fleet_rate_limit", None)
        if isinstance(whole, ClientOptions):
            # The environment fills in what the options given leave at the default.
            found = {
                name: value
                for name, value in found.items()
                if getattr(whole, name) == getattr(_DEFAULT_OPTIONS, name)
            }
            options["options"] = attrs.evolve(whole, **found)
        else:
            for name, value in found.items():
                options.setdefault(name, value)
        return cls(Credentials.from_env(env), **options)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MaxaClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Create the pooled session (done by ``async with`` or on first use)."""
        if self._life.closed:
            raise ClientClosedError("this MaxaClient is closed; create a new one")
        await self._transport.open()

    async def aclose(self) -> None:
        """Close the client: calls in flight or queued end with :class:`ClientClosedError`
        (none sends after this), the token refresh stops and the session closes (if the
        client made it). Closing twice is harmless."""
        self._life.closed = True
        self._limiter.bound.fail_waiters(ClientClosedError("the MaxaClient was closed"))
        current = asyncio.current_task()
        for task in list(self._calls):
            if task is not current and task not in self._closing:
                self._closing.add(task)
                task.cancel()
        if self._calls - {current}:
            # Let them leave (each one only has to unwind); bounded, so that a caller
            # that swallows its cancellation cannot hold the close forever.
            self._life.all_left = asyncio.Event()
            self._life.keep_open = current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._life.all_left.wait(), _CLOSE_WAIT)
        await self._tokens.aclose()
        await self._transport.close()
        if self._life.parts_closed:
            return
        self._life.parts_closed = True  # the store, gate and fleet are closed once
        await self._tokens.store.aclose()
        if self._gate is not None:
            await self._gate.aclose()
        if self._fleet is not None:
            await self._fleet.aclose()

    @property
    def options(self) -> ClientOptions:
        """The options this client was made with (a view made by :meth:`with_options`
        shares them; the per-call options it was given are its own)."""
        return self._options

    @property
    def base_url(self) -> str:
        return str(self._base_url)

    @property
    def limiter(self) -> Limiter:
        return self._limiter

    @property
    def tokens(self) -> TokenManager:
        return self._tokens

    def with_options(
        self,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        on_request: Callable[[RequestEvent], None] | _Unset | None = _UNSET,
        on_response: Callable[[ResponseEvent], None] | _Unset | None = _UNSET,
    ) -> MaxaClient:
        """A view of this client with other per-call options; it shares the pool, the
        token, the limiter, the cache and the stats (and closing either closes both).

        ``timeout``: the per-attempt limit (a :class:`Timeout` or seconds); ``retry``: the
        retry policy; ``deadline``: seconds for a whole call, its queueing, pacing and
        retries included (past it: ``TransportError``); the hooks replace the client's.
        E.g. a prescriber's interactive lookup, on the same client as a nightly bulk run::

            quick = client.with_options(timeout=2, retry=RetryPolicy(attempts=2), deadline=3)
            value = await quick.terminology("eRx", code)
        """
        view = copy.copy(self)
        if timeout is not None:
            view._attempt_timeout = timeout_from(timeout).request
        if retry is not None:
            if not isinstance(retry, RetryPolicy):
                raise InvalidInputError("retry", "must be a maxa.RetryPolicy")
            view._retry = retry
        if deadline is not None:
            if (
                isinstance(deadline, bool)
                or not isinstance(deadline, int | float)
                or not math.isfinite(deadline)
                or deadline <= 0
            ):
                raise InvalidInputError("deadline", "must be a positive number of seconds")
            view._call_deadline = float(deadline)
        hooks = self._hooks
        if not isinstance(on_request, _Unset):
            hooks = attrs.evolve(hooks, on_request=on_request)
        if not isinstance(on_response, _Unset):
            hooks = attrs.evolve(hooks, on_response=on_response)
        view._hooks = hooks
        return view

    def __repr__(self) -> str:
        return (
            f"MaxaClient(base_url={self.base_url!r}, username={self._credentials.username!r}, "
            f"max_concurrency={self._limiter.max_concurrency})"
        )

    # ------------------------------------------------------------------ operations

    async def terminology(self, terminology_id: str, coded_string: str) -> str:
        """Terminology: the value (text) of a code, e.g. ("thritaEHR.Religion", "1")."""
        return await self._execute(ops.terminology(terminology_id, coded_string))

    async def search_terminology(self, terminology_id: str, since: Any) -> list[CodedText]:
        """SearchTerminology: the terms created since ``since`` (datetime, date, Jalali)."""
        return await self._execute(ops.search_terminology(terminology_id, since))

    async def validate_cts(self, coded_text: CodedText) -> bool:
        """ValidateCts: True if ``coded_text.value`` is the value registered for its code."""
        return await self._execute(ops.validate_cts(coded_text))

    async def cts_terminologies(self, since: Any) -> list[str]:
        """CtsTerminologies: the ids of the terminologies defined since ``since``."""
        return await self._execute(ops.cts_terminologies(since))

    async def terminology_value_by_version(
        self, terminology_id: str, coded_string: str, *, version: str
    ) -> str:
        """TerminologyValueByVersion: the value of a code in one version."""
        return await self._execute(
            ops.terminology_value_by_version(terminology_id, coded_string, version)
        )

    async def terminologies_term_by_version(
        self, terminology_id: str, *, version: str
    ) -> list[CodedText]:
        """TerminologiesTermByVersion: every term of a terminology at one version."""
        return await self._execute(ops.terminologies_term_by_version(terminology_id, version))

    async def terminology_versions(self, terminology_id: str) -> list[TerminologyVersion]:
        """TerminologyVersions: the versions of a terminology (one has ``is_last``)."""
        return await self._execute(ops.terminology_versions(terminology_id))

    def validate_many(
        self,
        items: Iterable[CodedText] | AsyncIterable[CodedText],
        *,
        window: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[ValidationOutcome]:
        """Validate many items; yield one outcome per item, in input order.

        At most ``window`` items are in progress at once, so memory stays flat however long
        ``items`` is. The default (:func:`maxa_async.bulk.default_window`: 16 x
        ``max_concurrency``, and at least 16,384) holds a few seconds of sends, so that one
        item waiting out a retry holds back nothing but its own turn. An
        item that fails (bad input, or an error after retries) yields an outcome with
        ``error`` set; the run goes on. ``progress`` is called with the count of outcomes
        yielded so far. A bad ``window`` raises :class:`InvalidInputError` at once.
        """
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int) or window < 1
        ):
            raise InvalidInputError("window", "must be an int >= 1 (or None)")
        concurrency = self._limiter.max_concurrency
        bound = self._limiter.bound
        answers = _OnlineAnswers(self)

        def may_grow() -> bool:
            # One more worker only for a slot that no call holds or waits for (besides
            # the one about to start): a worker waiting out its Retry-After holds none,
            # and is replaced; workers never queue for slots.
            return bound.unclaimed > 1

        return ordered(
            items,
            answers.now,
            answers.later,
            window=window or default_window(concurrency),
            workers=_WORKERS_PER_SLOT * concurrency,
            may_grow=may_grow,
            progress=progress,
        )

    # ------------------------------------------------------------------ engine
    # The pipeline of one call, outermost first: _execute (cache and coalescing; a view's
    # deadline and hooks wrap it, in _observed), _attempts (retries), _authorized (a 401
    # replays with a fresh token), _attempt (one request). The two inner layers hand a
    # failed request back as its error, for the layer above to decide on; they raise
    # only what ends the call before a request went out.

    async def _execute(
        self, call: ops.Call[T], record: _CallRecord | None = None, *, share: bool = True
    ) -> T:
        """One call: answered from the cache, by following an identical call in flight
        (coalescing, unless ``share`` is False), or sent. A call that is sent can be ended
        by :meth:`aclose` (with ClientClosedError) while it runs; its answer (or failure)
        settles the calls that follow it, and its answer goes to the cache.

        A call begins here without a ``record``. In a view with a deadline or an
        ``on_response`` hook it then runs inside :meth:`_observed`, which comes back here
        with the record."""
        stats = self.stats
        if record is None:
            if self._life.closed:
                raise ClientClosedError("this MaxaClient is closed; create a new one")
            stats.calls += 1
            record = _CallRecord(next(self._life.numbers))
            if self._call_deadline is not None or self._hooks.on_response is not None:
                return await self._observed(call, record)
        request = call.request
        cache = self._cache
        if cache is not None:
            if request.operation in cache.operations:
                cached = cache.get(call.key)
                if cached is not MISSING:
                    stats.cache_hits += 1
                    record.cached = True
                    return cast(T, cached)
            else:
                cache = None
        # pending[key] is None while nobody follows the call in flight, else the future
        # its followers wait on (made by the first follower).
        key: tuple[str, bytes] | None = None
        if share and self._coalesce:
            key = (request.operation, request.body)
            if key in self._pending:
                stats.coalesced += 1
                record.coalesced = True
                return await self._follow(call, key, record)
            self._pending[key] = None
        # The loop given: without it, current_task() looks the loop up in Python code
        # first (on 3.11), once per call.
        task = asyncio.current_task(asyncio.get_running_loop())
        assert task is not None
        record.task = task
        self._calls.add(task)
        limiter = self._limiter
        try:
            if not limiter.try_acquire():
                # Calls gathered by the thousand queue here for the first attempt's slot,
                # before the layers below exist: the garbage collector walks the chain of
                # coroutines of every waiting call, over and over, so short chains are
                # cheaper for all. (_attempt takes the slots of any later attempts.)
                queued_from = time.monotonic()
                stats.queue_wait_total += await limiter.acquire(queued_from + self._retry.deadline)
                record.queued = time.monotonic() - queued_from
            record.holds_slot = True
            result = await self._attempts(call, record)
        except BaseException as exc:
            if record.holds_slot:  # the first attempt never began: its slot goes back
                record.holds_slot = False
                limiter.release(time.monotonic(), None, False)
            if isinstance(exc, asyncio.CancelledError) and task in self._closing:
                # aclose() cancelled this call: take that cancellation back (unless the
                # caller cancelled too) and end the call with one clear error.
                self._closing.discard(task)
                if task.uncancel() == 0:
                    exc = ClientClosedError("the MaxaClient was closed while this call ran")
            if key is not None:
                _fail_followers(self._pending.pop(key), exc)
            if isinstance(exc, MaxaError):
                stats.failures += 1
            raise exc from None
        finally:
            self._calls.discard(task)
            life = self._life
            if life.all_left is not None and self._calls <= {life.keep_open}:
                life.all_left.set()
        if key is not None:
            shared = self._pending.pop(key)
            if shared is not None:  # followers wait for it
                shared.set_result(result)
        if cache is not None:
            cache.put(call.key, result)
        return result

    async def _observed(self, call: ops.Call[T], record: _CallRecord) -> T:
        """A call within the view's deadline, if it has one, reported to its
        ``on_response`` hook, if it has one."""
        started = time.monotonic()
        try:
            if self._call_deadline is None:
                result = await self._execute(call, record)
            else:
                try:
                    async with asyncio.timeout(self._call_deadline):
                        result = await self._execute(call, record)
                except TimeoutError:
                    self.stats.failures += 1
                    raise TransportError(
                        f"no answer within the call's deadline of {self._call_deadline:g}s "
                        "(queueing, pacing and retries included)",
                        operation=call.request.operation,
                        retryable=False,
                    ) from None
        except MaxaError as exc:
            if self._hooks.on_response is not None:
                self._report(call, record, started, exc)
            raise
        if self._hooks.on_response is not None:
            self._report(call, record, started, None)
        return result

    def _report(
        self, call: ops.Call[Any], record: _CallRecord, started: float, error: MaxaError | None
    ) -> None:
        self._hooks.response(
            ResponseEvent(
                operation=call.request.operation,
                status=record.status,
                request_id=record.request_id or (error.request_id if error else None),
                attempts=record.attempts,
                elapsed=time.monotonic() - started,
                cached=record.cached,
                coalesced=record.coalesced,
                error=error,
                call=record.number,
                terminology_id=call.terminology_id,
                queued=record.queued,
                retried=record.retried,
            )
        )

    async def _follow(self, call: ops.Call[T], key: tuple[str, bytes], record: _CallRecord) -> T:
        """Wait for an identical call's answer; if that call was cancelled (and we were
        not), make the call ourselves."""
        shared = self._pending[key]
        if shared is None:
            shared = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            result: T = await asyncio.shield(shared)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if shared.cancelled() and task is not None and not task.cancelling():
                return await self._execute(call, record, share=False)
            raise
        except MaxaError:
            self.stats.failures += 1
            raise
        return result

    async def _attempts(self, call: ops.Call[T], record: _CallRecord) -> T:
        """Retries: send the call until it is answered, or its retry policy gives up."""
        while True:
            outcome = await self._authorized(call, record)
            if not isinstance(outcome, MaxaError):
                return outcome
            delay = await self._retry_delay(call, outcome, record)
            if delay is None:
                raise outcome
            if delay:
                await asyncio.sleep(delay)

    async def _retry_delay(
        self, call: ops.Call[Any], error: MaxaError, record: _CallRecord
    ) -> float | None:
        """The seconds to wait before sending ``call`` again after ``error``, or None to
        give up: not retryable, attempts spent, the retry budget spent, or a wait longer
        than the call has left (:meth:`RetryPolicy.decide`)."""
        stats = self.stats
        retry_after = error.retry_after
        pause: float | None = None
        if error.status == 429:
            stats.rate_limited += 1
            # A Retry-After of a second or less (whole seconds round a token bucket's "a
            # few milliseconds" up to one) says "too fast": the pacer has slowed down and
            # nobody else stops, but this call waits what it was told. A longer one says
            # nothing passes until then (a spent window, a quota): every caller of this
            # client, and every process of its fleet, waits.
            if retry_after is not None and retry_after > _SHORT_RETRY_AFTER:
                pause = retry_after
                if self._limiter.cool_down(pause):
                    stats.cooldowns += 1
                if self._gate is not None:
                    await self._gate.cool_down(pause)
        assert record.first_sent is not None  # a failed request was sent
        elapsed = time.monotonic() - record.first_sent - record.waited
        delay = self._retry.decide(error, record.attempts, elapsed, rng=self._rng)
        if delay is None:
            return None
        if self._budget is not None and not self._budget.try_spend(error):
            stats.retry_budget_exhausted += 1
            return None
        stats.retries[_cause(error)] += 1
        record.retried += (error,)
        log.debug(
            "retrying %s after %s (attempt %d)", call.request.operation, error, record.attempts
        )
        return 0.0 if pause is not None else delay  # a pause is waited out in acquire()

    async def _authorized(self, call: ops.Call[T], record: _CallRecord) -> T | MaxaError:
        """Authentication: a request answered 401 invalidates the token it carried (if it
        is still the current one) and goes again with a fresh one; a replay is not an
        attempt for the retry policy. More than one replay only helps when tokens are
        revoked again while the replay is in flight (busy accounts); a credential the
        gateway never accepts still fails after a few requests, and the grants are
        shared by all callers."""
        replays = 0
        while True:
            outcome = await self._attempt(call, record)
            if (
                not isinstance(outcome, AuthenticationError)
                or outcome.status != 401
                or replays == _MAX_401_REPLAYS
            ):
                return outcome
            replays += 1
            record.attempts -= 1
            record.retried += (outcome,)
            self.stats.replays_after_401 += 1
            assert record.token is not None
            await self._tokens.invalidate(record.token)

    async def _attempt(self, call: ops.Call[T], record: _CallRecord) -> T | MaxaError:
        """One request: a slot and its turn in the pace, the shared rate gate, a token
        (taken last, so that no wait leaves it stale), the request and its answer parsed;
        the limiter, the gate and the stats hear what came back. Returns the result, or
        the error the failed request amounts to (no answer, or an answer that is an
        error)."""
        limiter = self._limiter
        stats = self.stats
        operation = call.request.operation
        clock = time.monotonic
        if record.holds_slot:
            record.holds_slot = False  # the first attempt's, taken by _execute
        elif not limiter.try_acquire():
            # The deadline counts from the first send (or from now, before it): a cooldown
            # or a pace longer than the call's time fails it at once. Waits for a slot
            # after the first send are not counted against it.
            queued_from = clock()
            since = queued_from if record.first_sent is None else record.first_sent
            slot_wait = await limiter.acquire(since + record.waited + self._retry.deadline)
            record.queued += clock() - queued_from
            stats.queue_wait_total += slot_wait
            if record.first_sent is not None:
                record.waited += slot_wait
        sent_at = clock()
        if record.first_sent is None:
            record.first_sent = sent_at
        latency: float | None = None
        rate_limited = False
        retry_after: float | None = None
        budget: Budget | None = None
        answered = False
        try:
            if self._life.closed:
                raise ClientClosedError("the MaxaClient was closed before this call sent")
            if self._gate is not None:
                await self._gate.acquire(record.first_sent + record.waited + self._retry.deadline)
                sent_at = clock()
            tokens = self._tokens
            token = tokens.current()
            if token is None:
                token = await tokens.get()
                sent_at = clock()
            record.token = token
            record.attempts += 1
            stats.sent[operation] = stats.sent.get(operation, 0) + 1
            send_headers = tokens.headers
            if self._hooks.on_request is not None:
                extra = self._hooks.request(
                    RequestEvent(operation, record.attempts, call=record.number)
                )
                if extra:
                    send_headers = {**extra, **send_headers}
            request = call.request
            try:
                status, headers, body = await self._transport.request(
                    request.method,
                    request.path,
                    send_headers,
                    request.body,
                    operation=operation,
                    attempt_limit=self._attempt_timeout,
                    task=record.task,
                )
            except TransportError as exc:
                stats.answered[0] = stats.answered.get(0, 0) + 1  # status 0: no answer
                return exc
            elapsed = clock() - sent_at
            answered = True
            stats.answered[status] = stats.answered.get(status, 0) + 1
            record.status = status
            record.request_id = header(headers, REQUEST_ID)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "%s -> %d in %.1f ms requestId=%s",
                    operation,
                    status,
                    elapsed * 1000,
                    record.request_id,
                )
            budget = budget_from_headers(headers)
            try:
                result = call.parse(status, headers, body)
            except MaxaError as exc:
                rate_limited = exc.status == 429
                if isinstance(exc, RateLimitedError):
                    retry_after = exc.retry_after
                return exc
            latency = elapsed
            stats.record_latency(elapsed)
            if self._budget is not None:
                self._budget.refund()
            return result
        finally:
            if rate_limited and self._gate is not None:
                # A gate that learns the pace paces for us, unless it cannot now (its
                # Redis is down): then our own pacer finds a pace again.
                limiter.pace_adaptively(self.options.adaptive and not self._gate.learns_pace)
            limiter.release(sent_at, latency, rate_limited, retry_after=retry_after, budget=budget)
            if answered and self._gate is not None:
                self._gate.observe(rate_limited, retry_after)

    async def _send_grant(self, request: TokenRequest) -> tuple[int, Any, bytes]:
        # Token calls bypass the MAXA limiter: they must never queue behind it.
        return await self._transport.request(
            request.method, request.path, request.headers, request.body, operation="token"
        )


class _OnlineAnswers:
    """validate_many's answers for :func:`maxa_async.bulk.ordered`: bad input at once
    (nothing sent), every other item by ValidateCts."""

    __slots__ = ("_client",)

    def __init__(self, client: MaxaClient) -> None:
        self._client = client

    def now(self, item: Any) -> ValidationOutcome | ops.Call[bool]:
        try:
            return ops.validate_cts(item)
        except MaxaError as exc:  # bad input: answered at once, nothing sent
            stats = self._client.stats
            stats.calls += 1
            stats.failures += 1
            return ValidationOutcome(item, None, exc)

    async def later(self, item: Any, call: ops.Call[bool]) -> ValidationOutcome:
        try:
            valid = await self._client._execute(call)
        except ClientClosedError:
            raise  # the run cannot go on: the consumer raises it
        except MaxaError as exc:
            return ValidationOutcome(item, None, exc)
        return make_outcome(item, valid)


@attrs.define
class _Life:
    """What a client and its views share about its life: closed, and who waits."""

    closed: bool = False
    all_left: asyncio.Event | None = None  # set when the calls aclose() ended have left
    keep_open: asyncio.Task[Any] | None = None  # the task closing, if it is a call's
    parts_closed: bool = False  # the token store, rate gate and fleet, closed once
    numbers: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))  # of calls


@attrs.define
class _CallRecord:
    """What one call saw, for its ResponseEvent, and what the layers of its pipeline
    share between its attempts."""

    number: int
    status: int | None = None
    request_id: str | None = None
    attempts: int = 0  # sends, not counting replays after a 401
    cached: bool = False
    coalesced: bool = False
    queued: float = 0.0
    retried: tuple[MaxaError, ...] = ()  # what made it send again, in order
    first_sent: float | None = None  # monotonic; the retry deadline counts from here
    waited: float = 0.0  # seconds waiting for slots after the first send: not counted
    holds_slot: bool = False  # a slot taken for the next attempt (by _execute, for the first)
    task: asyncio.Task[Any] | None = attrs.field(default=None, repr=False)  # the one sending
    token: Token | None = attrs.field(default=None, repr=False)  # the last one sent


def _refuse_keywords_besides_options(keywords: ClientOptions) -> None:
    """``options=`` holds every option: a keyword option set as well is a mistake."""
    for field in attrs.fields(ClientOptions):
        if getattr(keywords, field.name) != getattr(_DEFAULT_OPTIONS, field.name):
            raise ConfigError(field.name, "give either options= or keyword options, not both")


def _fail_followers(shared: asyncio.Future[Any] | None, exc: BaseException) -> None:
    """Hand a coalesced call's failure (or cancellation) to its followers, if any."""
    if shared is None:
        return
    if isinstance(exc, Exception):
        shared.set_exception(exc)
        shared.exception()  # retrieved: no warning if every follower left
    else:
        shared.cancel()


def _cause(error: MaxaError) -> str:
    if isinstance(error, TransportError):
        return "transport"
    return str(error.status) if error.status is not None else type(error).__name__
