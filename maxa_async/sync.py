"""A synchronous MaxaClient for code without an event loop: scripts, Django views, Celery.

Same methods, same arguments, plain return values::

    from maxa_async.sync import MaxaClient

    client = MaxaClient.from_env()          # once per process, e.g. at module level
    client.terminology("thritaEHR.Religion", "1")                  # 'اسلام'
    for outcome in client.validate_many(rows):                     # a plain iterator
        ...
    client.close()                          # or `with MaxaClient(...) as client:`

One event loop runs in a background thread (an anyio blocking portal) and owns one
:class:`maxa_async.MaxaClient`. Every thread of the process that calls the facade goes
through it, so they share one token, one connection pool and one rate limiter, exactly as
the coroutines of an async application share one client.

- Any number of threads may call one facade at once.
- Ctrl-C (``KeyboardInterrupt``) during a call, or while iterating ``validate_many``,
  cancels the work in the loop (its requests are abandoned, their slots released) and
  re-raises in the calling thread; the client stays usable.
- The loop thread starts on first use; :meth:`MaxaClient.close` (or leaving the ``with``
  block) stops it. A client still open at interpreter exit is closed then, without an
  "Unclosed client session" warning.
- After ``fork()`` (Celery's prefork pool, gunicorn's workers), a facade first used in
  the parent cannot be used in the child: create it in each process, or use it there
  only. One that was never used before the fork starts its loop in the child.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final, Generic, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .bulk import default_window
from .client import MaxaClient as AsyncMaxaClient
from .errors import InvalidInputError
from .models import CodedText, Credentials, TerminologyVersion, ValidationOutcome
from .stats import ClientStats

__all__ = ["MaxaClient", "ValidationRun"]

T = TypeVar("T")

#: How long an interrupted call waits for its cancelled work to wind down in the loop.
_CANCEL_GRACE: Final = 5.0
#: How often a waiting thread checks that the client was not closed under it.
_CLOSED_POLL: Final = 1.0
#: Most items handed to the loop at once by ``validate_many``.
_BATCH: Final = 256

_CLOSED_MESSAGE: Final = "this MaxaClient is closed; create a new one"


class _LoopCall(Generic[T]):
    """One call from a thread: a task in the loop, and an event set once that task ended.

    asyncio's ``run_coroutine_threadsafe`` settles its future at the moment it is
    cancelled, not when the task has finished winding down, and anyio's portal cancels
    with a cancel scope that also cancels the task's clean-up awaits; the client's
    cancellation handling (and validate_many's clean-up) expect one plain asyncio cancel.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, T]]
    ) -> None:
        self._loop = loop
        self.ended = threading.Event()
        self._task: asyncio.Task[T] | None = None
        self._result: T | None = None
        self._error: BaseException | None = None
        loop.call_soon_threadsafe(self._start, make)

    def _start(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        try:
            task = self._loop.create_task(make())
        except BaseException as exc:
            self._error = exc
            self.ended.set()
            return
        self._task = task
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self._error = RuntimeError(_CLOSED_MESSAGE)  # only closing cancels on its own
        elif (error := task.exception()) is not None:
            self._error = error
        else:
            self._result = task.result()
        self.ended.set()

    def cancel(self) -> None:
        """Cancel the task once (from any thread); ``ended`` tells when it is over."""
        try:
            self._loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:  # the loop is closed: nothing runs there any more
            self.ended.set()

    def _cancel(self) -> None:
        if self._task is not None:  # _start was scheduled first, so it has run
            self._task.cancel()

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set when no error


class _Runner:
    """The loop thread of one facade in one process, and the async client it owns."""

    def __init__(self, client: AsyncMaxaClient) -> None:
        self.client = client
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self.stopped = False
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        self.loop, self.thread_id = self._portal.call(_loop_identity)

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` in the loop and wait for it; an interruption (Ctrl-C) cancels it."""
        if self.stopped:
            raise RuntimeError(_CLOSED_MESSAGE)
        try:
            call = _LoopCall(self.loop, make)
        except RuntimeError:  # the loop closed between the check and the call
            raise RuntimeError(_CLOSED_MESSAGE) from None
        return self.wait(call)

    def wait(self, call: _LoopCall[T]) -> T:
        try:
            while not call.ended.wait(_CLOSED_POLL):
                if self.stopped and not self._portal_alive():
                    raise RuntimeError(_CLOSED_MESSAGE)
        except BaseException:
            if not call.ended.is_set():
                call.cancel()
                call.ended.wait(_CANCEL_GRACE)
            raise
        return call.result()

    def start(self, make: Callable[[], Coroutine[Any, Any, T]]) -> _LoopCall[T]:
        """Start ``make()`` in the loop without waiting for it."""
        if self.stopped:
            raise RuntimeError(_CLOSED_MESSAGE)
        try:
            return _LoopCall(self.loop, make)
        except RuntimeError:
            raise RuntimeError(_CLOSED_MESSAGE) from None

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self.thread_id

    def _portal_alive(self) -> bool:
        return not self.loop.is_closed()

    def shutdown(self) -> None:
        """Close the async client, stop the loop and join its thread (once; any thread)."""
        with self._lock:
            if self.stopped:
                return
            self.stopped = True
        if os.getpid() != self.pid:  # a forked child: the loop thread is the parent's
            return
        if self.in_loop_thread():  # garbage-collected in the loop itself: not from here
            threading.Thread(target=self._stop, name="maxa-sync-close", daemon=True).start()
            return
        self._stop()

    def _stop(self) -> None:
        try:
            self._portal.call(self.client.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)


def _loop_identity() -> tuple[asyncio.AbstractEventLoop, int]:
    threading.current_thread().name = "maxa-sync-loop"
    return asyncio.get_running_loop(), threading.get_ident()


class MaxaClient:
    """A blocking client for the seven MAXA operations, safe to share between threads.

    Takes the same arguments as :class:`maxa_async.MaxaClient` (credentials, then its
    keyword options: ``base_url``, ``max_concurrency``, ``timeout``, ``retry``,
    ``cache``, ``redis_url`` ...), except ``session``: an aiohttp session belongs to one
    event loop, and this client's loop is its own. Arguments are checked here, before
    anything starts; the background loop starts on first use (or :meth:`open`).

    Create one per process and share it; close it at shutdown (it is closed at
    interpreter exit otherwise).
    """

    def __init__(self, credentials: Credentials, **options: Any) -> None:
        if "session" in options:
            raise InvalidInputError(
                "session", "is not accepted by the sync client (its event loop is its own)"
            )
        self._attach(AsyncMaxaClient(credentials, **options))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> MaxaClient:
        """As :meth:`maxa_async.MaxaClient.from_env`: credentials from ``MAXA_*``,
        ``MAXA_BASE_URL`` and ``MAXA_REDIS_URL`` when set; keyword options win."""
        if "session" in options:
            raise InvalidInputError(
                "session", "is not accepted by the sync client (its event loop is its own)"
            )
        self = cls.__new__(cls)
        self._attach(AsyncMaxaClient.from_env(environ, **options))
        return self

    def _attach(self, client: AsyncMaxaClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._runner: _Runner | None = None
        self._closed = False
        self._finalizer: weakref.finalize[[], MaxaClient] | None = None

    # ------------------------------------------------------------------ lifecycle

    def _running(self) -> _Runner:
        runner = self._runner
        if runner is not None and runner.pid == os.getpid():
            return runner
        with self._lock:
            runner = self._runner
            if self._closed:
                raise RuntimeError(_CLOSED_MESSAGE)
            if runner is not None:
                if runner.pid != os.getpid():
                    raise RuntimeError(
                        "this MaxaClient was started in another process before a fork; "
                        "create one in each process (e.g. in Celery's worker_process_init)"
                    )
                return runner
            runner = _Runner(self._client)
            # At garbage collection or at interpreter exit, whichever comes first; the
            # callback holds the runner, not this facade.
            self._finalizer = weakref.finalize(self, runner.shutdown)
            self._runner = runner
            return runner

    def open(self) -> None:
        """Start the background loop and create the connection pool now, not on first use."""
        runner = self._running()
        runner.run(self._client.open)

    def close(self) -> None:
        """Close the async client and stop the background loop (idempotent).

        Calls still running in other threads fail with ``RuntimeError`` or a
        ``TransportError``; call it when the process is done with the client.
        """
        with self._lock:
            self._closed = True
            finalizer = self._finalizer
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> MaxaClient:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def base_url(self) -> str:
        return self._client.base_url

    @property
    def stats(self) -> ClientStats:
        """The async client's live counters (written by the loop thread as calls go on);
        :meth:`stats_as_dict` takes a consistent snapshot."""
        return self._client.stats

    def stats_as_dict(self) -> dict[str, Any]:
        """``stats.as_dict()``, taken in the loop thread so that no count moves meanwhile."""
        return self._running().run(_as_coroutine(self._client.stats.as_dict))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"sync.{self._client!r} ({state})"

    # ------------------------------------------------------------------ operations

    def terminology(self, terminology_id: str, coded_string: str) -> str:
        """Terminology: the value (text) of a code, e.g. ("thritaEHR.Religion", "1")."""
        client = self._client
        return self._running().run(
            functools.partial(client.terminology, terminology_id, coded_string)
        )

    def search_terminology(self, terminology_id: str, since: Any) -> list[CodedText]:
        """SearchTerminology: the terms created since ``since`` (datetime, date, Jalali)."""
        client = self._client
        return self._running().run(
            functools.partial(client.search_terminology, terminology_id, since)
        )

    def validate_cts(self, coded_text: CodedText) -> bool:
        """ValidateCts: True if ``coded_text.value`` is the value registered for its code."""
        return self._running().run(functools.partial(self._client.validate_cts, coded_text))

    def cts_terminologies(self, since: Any) -> list[str]:
        """CtsTerminologies: the ids of the terminologies defined since ``since``."""
        return self._running().run(functools.partial(self._client.cts_terminologies, since))

    def terminology_value_by_version(
        self, terminology_id: str, coded_string: str, *, version: str
    ) -> str:
        """TerminologyValueByVersion: the value of a code in one version."""
        client = self._client
        return self._running().run(
            functools.partial(
                client.terminology_value_by_version, terminology_id, coded_string, version=version
            )
        )

    def terminologies_term_by_version(
        self, terminology_id: str, *, version: str
    ) -> list[CodedText]:
        """TerminologiesTermByVersion: every term of a terminology at one version."""
        client = self._client
        return self._running().run(
            functools.partial(client.terminologies_term_by_version, terminology_id, version=version)
        )

    def terminology_versions(self, terminology_id: str) -> list[TerminologyVersion]:
        """TerminologyVersions: the versions of a terminology (one has ``is_last``)."""
        client = self._client
        return self._running().run(functools.partial(client.terminology_versions, terminology_id))

    def validate_many(
        self,
        items: Iterable[CodedText],
        *,
        window: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ValidationRun:
        """Validate many items; iterate the result for one outcome per item, in input order.

        As :meth:`maxa_async.MaxaClient.validate_many`: at most ``window`` items (default:
        :func:`maxa_async.bulk.default_window`) are in progress at once, an item that fails
        yields an outcome with ``error`` set, and ``progress`` is called with the count of
        outcomes yielded so far. ``items`` is read in the calling thread (a Django queryset, a file
        or a generator of yours is never touched by another thread), a batch at a time and
        only as the run has room, so neither the input nor the outcomes are ever held
        whole. Stopping early: ``close()`` the run, or use it as a context manager.
        """
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int) or window < 1
        ):
            raise InvalidInputError("window", "must be an int >= 1 (or None)")
        if progress is not None and not callable(progress):
            raise InvalidInputError("progress", "must be a callable or None")
        size = window or default_window(self._client.limiter.max_concurrency)
        return ValidationRun(self, items, size, progress)


def _as_coroutine(func: Callable[[], T]) -> Callable[[], Coroutine[Any, Any, T]]:
    async def call() -> T:
        return func()

    return call


class ValidationRun(Iterator[ValidationOutcome]):
    """The plain iterator returned by :meth:`MaxaClient.validate_many`.

    Outcomes come in input order. The calling thread hands items to the background
    loop a batch at a time and takes back the outcomes ready so far; at most ``window``
    plus one batch of items are between the two. ``close()`` (or leaving a ``with`` block,
    or a ``KeyboardInterrupt`` inside ``next()``) cancels what is still in flight.
    """

    def __init__(
        self,
        facade: MaxaClient,
        items: Iterable[CodedText],
        window: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self._facade = facade  # keeps the client open while the run is alive
        self._items = iter(items)
        self._window = window
        self._batch = min(window, _BATCH)
        self._ahead_limit = window + self._batch  # items sent and not yet taken back
        self._progress = progress
        self._ready: collections.deque[ValidationOutcome] = collections.deque()
        self._ahead = 0
        self._source_done = False
        self._finished = False
        self._yielded = 0
        self._runner: _Runner | None = None
        self._exchange: _Exchange | None = None
        self._pump: _LoopCall[None] | None = None

    def __iter__(self) -> ValidationRun:
        return self

    def __next__(self) -> ValidationOutcome:
        ready = self._ready
        while not ready:
            if self._finished:
                raise StopIteration
            try:
                self._trade()
            except BaseException:
                self.close()
                raise
        outcome = ready.popleft()
        self._yielded += 1
        if self._progress is not None:
            try:
                self._progress(self._yielded)
            except BaseException:
                self.close()
                raise
        return outcome

    def _start(self) -> tuple[_Runner, _Exchange]:
        runner = self._facade._running()
        exchange = runner.run(
            _as_coroutine(functools.partial(_Exchange, self._facade._client, self._window))
        )
        pump = runner.start(exchange.pump)
        self._runner, self._exchange, self._pump = runner, exchange, pump
        # A run dropped without close() (a consumer that raised, a break) still stops.
        weakref.finalize(self, pump.cancel)
        return runner, exchange

    def _trade(self) -> None:
        if self._runner is None or self._exchange is None:
            runner, exchange = self._start()
        else:
            runner, exchange = self._runner, self._exchange
        batch: list[CodedText] = []
        if not self._source_done:
            room = min(self._batch, self._ahead_limit - self._ahead)
            if room > 0:
                batch = list(itertools.islice(self._items, room))
                if len(batch) < room:
                    self._source_done = True
        self._ahead += len(batch)
        can_send_more = not self._source_done and self._ahead < self._ahead_limit
        outcomes, finished = runner.run(
            functools.partial(exchange.trade, batch, self._source_done, can_send_more)
        )
        self._ahead -= len(outcomes)
        self._ready.extend(outcomes)
        if finished:
            self._finished = True

    def close(self) -> None:
        """Stop the run: cancel what is in flight and wait (briefly) until it has stopped."""
        self._finished = True
        self._ready.clear()
        pump, runner = self._pump, self._runner
        if pump is None or runner is None or pump.ended.is_set():
            return
        pump.cancel()
        if not runner.in_loop_thread():
            pump.ended.wait(_CANCEL_GRACE)

    def __enter__(self) -> ValidationRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Exchange:
    """Loop side of a :class:`ValidationRun`: the async source that ``validate_many``
    reads, fed by the calling thread's batches, and the outcomes it has not taken yet.
    Lives in the loop thread only."""

    def __init__(self, client: AsyncMaxaClient, window: int) -> None:
        self._client = client
        self._window = window
        self._inbox: collections.deque[CodedText] = collections.deque()
        self._outbox: list[ValidationOutcome] = []
        self._end = False  # the calling thread has no more items
        self._hungry = False  # validate_many waits for an item and the inbox is empty
        self._finished = False
        self._error: Exception | None = None
        self._fed = asyncio.Event()
        self._changed = asyncio.Event()

    def __aiter__(self) -> _Exchange:
        return self

    async def __anext__(self) -> CodedText:
        inbox = self._inbox
        while not inbox:
            if self._end:
                raise StopAsyncIteration
            self._hungry = True
            self._changed.set()
            self._fed.clear()
            await self._fed.wait()
        return inbox.popleft()

    async def pump(self) -> None:
        try:
            async for outcome in self._client.validate_many(self, window=self._window):
                self._outbox.append(outcome)
                self._changed.set()
        except Exception as exc:  # e.g. the client was closed: the calling thread raises it
            self._error = exc
        finally:
            self._finished = True
            self._changed.set()

    async def trade(
        self, batch: list[CodedText], end: bool, can_send_more: bool
    ) -> tuple[list[ValidationOutcome], bool]:
        """Take the calling thread's items; return once there are outcomes, the run is
        over, or validate_many waits for items that the calling thread could send.

        Returns the outcomes and whether the run is over (a failure of the run itself is
        raised once every outcome before it has been taken)."""
        if batch or end:
            self._inbox.extend(batch)
            self._end = end
            self._hungry = False
            self._fed.set()
        while not (self._outbox or self._finished or (self._hungry and can_send_more)):
            self._changed.clear()
            await self._changed.wait()
        outcomes, self._outbox = self._outbox, []
        if not outcomes and self._error is not None:
            raise self._error
        return outcomes, self._finished and self._error is None
