"""SnapshotStore: terminology versions in one SQLite file, answered from memory."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import functools
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import Any, Final, Protocol, TypeVar

from ..bulk import make_outcome, ordered, ordered_sync
from ..errors import InvalidInputError, NotFoundError
from ..jalali import JalaliDateTime
from ..models import CodedText, TerminologyVersion, ValidationOutcome, latest_version
from ..operations import check_coded_text, check_terminology_id, check_text
from ._db import Database, Diff, translate
from ._errors import NoSnapshotError, SnapshotError
from ._index import TerminologyIndex
from ._models import PullSummary, SnapshotInfo, SyncSummary

__all__ = ["DEFAULT_SYNC_MARGIN", "LATEST", "SnapshotStore", "TermSource"]

R = TypeVar("R")

#: ``pull(..., version=LATEST)``: the version TerminologyVersions marks IsLast.
LATEST: Final = "latest"

#: SearchTerminology is asked from the last sync minus this much: clocks of this host and
#: the gateway may disagree, and a term may be stamped a little before it is visible.
DEFAULT_SYNC_MARGIN: Final = dt.timedelta(minutes=5)

#: Raw terminology-id strings remembered by the bulk path (after their first check).
_MEMO_SIZE: Final = 1024
_ABSENT_SIZE: Final = 10_000


class TermSource(Protocol):
    """What pull and sync need from a client (:class:`maxa_async.MaxaClient` is one)."""

    async def terminology_versions(self, terminology_id: str) -> list[TerminologyVersion]: ...

    async def terminologies_term_by_version(
        self, terminology_id: str, *, version: str
    ) -> list[CodedText]: ...

    async def search_terminology(self, terminology_id: str, since: Any) -> list[CodedText]: ...


def _now() -> dt.datetime:
    # Whole seconds: what the file stores and what FromDate can express.
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _margin(value: dt.timedelta | float) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        margin = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        margin = dt.timedelta(seconds=value)
    else:
        raise InvalidInputError("margin", "must be a datetime.timedelta or seconds")
    if margin < dt.timedelta(0):
        raise InvalidInputError("margin", "must not be negative")
    return margin


def choose_version(
    versions: list[TerminologyVersion], wanted: str | None, terminology_id: str
) -> TerminologyVersion:
    """The named version, or the IsLast one (the highest VersionId if several or none)."""
    if not versions:
        raise NotFoundError(
            f"TerminologyVersions lists no version of {terminology_id!r}",
            status=404,
            operation="TerminologyVersions",
        )
    if wanted is None:
        latest = latest_version(versions)
        assert latest is not None  # versions is not empty
        return latest
    for candidate in versions:
        if candidate.version.strip() == wanted:
            return candidate
    listed = ", ".join(v.version for v in versions)
    raise NotFoundError(
        f"no version {wanted!r} of {terminology_id!r}; the gateway lists: {listed}",
        status=404,
        operation="TerminologyVersions",
    )


def _label(terms: list[CodedText], fallback: str) -> str:
    """The id as the gateway spells it inside its CodedText answers (e.g. ``eRx``)."""
    for term in terms[:1]:
        candidate = term.terminology_id.strip() if isinstance(term.terminology_id, str) else ""
        if candidate and candidate.lower() == fallback.lower():
            return candidate
    return fallback


def _values(terms: Iterable[CodedText]) -> tuple[dict[str, str], int]:
    """code (stripped, as the gateway matches it) -> value (as sent); and the blank codes."""
    values: dict[str, str] = {}
    skipped = 0
    for term in terms:
        code = term.coded_string.strip()
        if code:
            values[code] = term.value
        else:
            skipped += 1
    return values, skipped


class _Opening:
    """``await SnapshotStore.open(path)`` or ``async with SnapshotStore.open(path) as s``."""

    def __init__(self, store: SnapshotStore) -> None:
        self._store = store

    async def _open(self) -> SnapshotStore:
        await self._store._open()
        return self._store

    def __await__(self) -> Generator[Any, None, SnapshotStore]:
        return self._open().__await__()

    async def __aenter__(self) -> SnapshotStore:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._store.aclose()


class SnapshotStore:
    """Terminology snapshots in one SQLite file; offline answers from memory.

    Open with ``store = await SnapshotStore.open(path)`` (close with ``await
    store.aclose()``) or ``async with SnapshotStore.open(path) as store:``. The file is
    created (with the current schema) if missing, unless ``create=False``. ``verify``
    runs SQLite's ``quick_check`` on open, so a damaged file fails there with
    :class:`SnapshotCorruptError` rather than mid-run. ``read_only=True`` never writes to
    the file (SQLite opens it read-only; pull, sync and drop raise :class:`SnapshotError`).

    Opening checks that the file holds exactly the tables a snapshot has, defined as this
    library defines them, before any query reads them: a view, a trigger or any other
    object (which would run SQL chosen by whoever wrote the file) is refused with
    :class:`SnapshotCorruptError`, as is an empty file unless the store may create one.

    All file access runs on one worker thread per store (SQLite is never touched from
    the event loop); answers come from an in-memory :class:`TerminologyIndex` per
    terminology, loaded from the file the first time the terminology is asked about.
    A store belongs to one event loop at a time and is not thread-safe; several
    processes may share the file (SQLite WAL: readers keep the old snapshot while a
    pull commits). A process sees another's pulls after :meth:`reload`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        verify: bool = True,
        read_only: bool = False,
    ) -> None:
        self._path = os.fspath(path)
        self._create = create
        self._verify = verify
        self._db = Database(self._path, read_only=read_only)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._indexes: dict[str, TerminologyIndex] = {}
        self._absent: set[str] = set()
        self._memo: dict[str, TerminologyIndex] = {}
        self._generation: dict[str, int] = {}
        self._loading: dict[str, asyncio.Future[TerminologyIndex | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        verify: bool = True,
        read_only: bool = False,
    ) -> _Opening:
        """Open (or create) the snapshot file at ``path``; await it or ``async with`` it."""
        return _Opening(cls(path, create=create, verify=verify, read_only=read_only))

    async def _open(self) -> None:
        if self._executor is not None:
            return
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="maxa-snapshot")
        self._executor = executor
        try:
            await self._run(
                functools.partial(self._db.open, create=self._create, verify=self._verify)
            )
        except BaseException:
            self._executor = None
            self._db.interrupt()  # a cancelled open stops its checks at once
            executor.submit(self._db.close)
            executor.shutdown(wait=False)
            raise

    async def aclose(self) -> None:
        """Close the file (after any write in progress; a read in progress is interrupted
        and its caller gets :class:`SnapshotError`). Idempotent."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        self._forget()
        self._db.interrupt()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._db.close)
        finally:
            executor.shutdown(wait=False)

    async def __aenter__(self) -> SnapshotStore:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def path(self) -> str:
        return self._path

    @property
    def closed(self) -> bool:
        return self._executor is None

    @property
    def read_only(self) -> bool:
        return self._db.read_only

    def _require_writable(self) -> None:
        if self._db.read_only:
            raise SnapshotError(
                f"the snapshot store {self._path} is open read-only; open it without "
                "read_only=True to pull, sync or drop",
                path=self._path,
            )

    def file_size(self) -> int:
        """Bytes on disk: the file plus its write-ahead log, if any."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self._path + suffix)
        return total

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"loaded={sorted(self._indexes)}"
        return f"SnapshotStore({self._path!r}, {state})"

    # ------------------------------------------------------------------ the worker thread

    def _call(self, fn: Callable[..., R], *args: Any) -> R:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise translate(exc, self._path) from exc

    def _require_open(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            raise SnapshotError(f"the snapshot store {self._path} is not open", path=self._path)
        return self._executor

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        executor = self._require_open()
        return await asyncio.get_running_loop().run_in_executor(executor, self._call, fn, *args)

    async def _write(
        self, job: Callable[[threading.Event], R], on_commit: Callable[[R], None]
    ) -> R:
        """Run a write on the worker thread; ``on_commit`` updates memory once it committed.

        Cancelling the caller sets the job's ``cancel`` event (checked between chunks; the
        job then rolls back) and waits for the thread to finish, so memory and file agree
        whichever came first, the cancellation or the commit."""
        executor = self._require_open()
        cancel = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(executor, self._call, job, cancel)
        try:
            result = await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            while not future.done():
                try:
                    await asyncio.wait([future])
                except asyncio.CancelledError:
                    continue  # the thread finishes within one chunk; then we re-raise
            if not future.cancelled() and future.exception() is None:
                on_commit(future.result())
            raise
        on_commit(result)
        return result

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------ memory

    def _install(self, key: str, index: TerminologyIndex) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1
        self._indexes[key] = index
        self._absent.discard(key)
        self._memo.clear()

    def _evict(self, key: str) -> None:
        self._generation[key] = self._generation.get(key, 0) + 1
        self._indexes.pop(key, None)
        self._absent.discard(key)
        self._memo.clear()

    def _forget(self) -> None:
        for key in list(self._indexes):
            self._evict(key)
        self._absent.clear()

    def _loaded(self, key: str, generation: int, index: TerminologyIndex | None) -> None:
        if self._generation.get(key, 0) != generation or key in self._indexes:
            return
        if index is None:
            if len(self._absent) >= _ABSENT_SIZE:
                self._absent.clear()
            self._absent.add(key)
        else:
            self._indexes[key] = index

    async def _load(self, key: str) -> TerminologyIndex | None:
        """The terminology's index, loading it once (single-flight), or None."""
        while True:
            index = self._indexes.get(key)
            if index is not None:
                return index
            if key in self._absent:
                return None
            generation = self._generation.get(key, 0)
            pending = self._loading.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._run(self._db.load, key))
                self._loading[key] = pending
                pending.add_done_callback(functools.partial(self._loading_done, key))
            loaded = await asyncio.shield(pending)
            if self._generation.get(key, 0) == generation:
                self._loaded(key, generation, loaded)
                return loaded
            # replaced by a pull or sync while loading: look again

    def _loading_done(self, key: str, future: asyncio.Future[TerminologyIndex | None]) -> None:
        if self._loading.get(key) is future:
            del self._loading[key]
        if not future.cancelled():
            future.exception()  # retrieved: the awaiters raise it

    def _load_blocking(self, key: str) -> None:
        if key in self._indexes or key in self._absent:
            return
        generation = self._generation.get(key, 0)
        loaded = self._require_open().submit(self._call, self._db.load, key).result()
        self._loaded(key, generation, loaded)

    def _note(self, key: str, info: SnapshotInfo | None) -> None:
        """Drop a loaded index that another process (or store) has since replaced."""
        index = self._indexes.get(key)
        if info is None:
            if index is not None:
                self._evict(key)
        elif index is None:
            self._absent.discard(key)
        elif index.info != info:
            self._evict(key)

    async def _require(self, terminology: object, field: str = "terminology") -> TerminologyIndex:
        terminology_id = check_terminology_id(terminology, field)
        index = await self._load(terminology_id.lower())
        if index is None:
            raise NoSnapshotError(terminology_id, path=self._path)
        return index

    # ------------------------------------------------------------------ pull and sync

    async def pull(
        self, client: TermSource, terminology: str, version: str | None = LATEST
    ) -> PullSummary:
        """Fetch a whole version and make it the terminology's snapshot, atomically.

        TerminologyVersions picks the version (``version="latest"``: the one marked IsLast;
        or the one named), TerminologiesTermByVersion fetches its terms, and one SQLite
        transaction replaces the old snapshot with them. If either call fails or the pull
        is cancelled before the commit, the previous snapshot stays, intact and answering
        (in memory and in the file). Gateway errors propagate as the client raises them
        (e.g. :class:`NotFoundError` for an unknown terminology or version).
        """
        terminology_id = check_terminology_id(terminology, "terminology")
        wanted = None if version is None or version == LATEST else check_text(version, "version")
        self._require_writable()
        key = terminology_id.lower()
        async with self._lock(key):
            started = time.perf_counter()
            versions = await client.terminology_versions(terminology_id)
            chosen = choose_version(versions, wanted, terminology_id)
            return await self._pull(client, terminology_id, key, chosen, _now(), started)

    async def _pull(
        self,
        client: TermSource,
        terminology_id: str,
        key: str,
        chosen: TerminologyVersion,
        now: dt.datetime,
        started: float,
    ) -> PullSummary:
        version = chosen.version.strip()
        terms = await client.terminologies_term_by_version(terminology_id, version=version)
        fetch_seconds = time.perf_counter() - started
        base_url = str(getattr(client, "base_url", ""))
        fallback = chosen.terminology_id.strip() or terminology_id

        def job(cancel: threading.Event) -> tuple[Diff, TerminologyIndex, int]:
            values, skipped = _values(terms)
            info = SnapshotInfo(
                key=key,
                terminology_id=_label(terms, fallback),
                version=version,
                version_id=chosen.version_id,
                term_count=len(values),
                base_url=base_url,
                pulled_at=now,
                synced_at=now,
            )
            diff, index = self._db.replace(info, values, cancel)
            return diff, index, skipped

        def commit(result: tuple[Diff, TerminologyIndex, int]) -> None:
            self._install(key, result[1])

        diff, index, skipped = await self._write(job, commit)
        return PullSummary(
            terminology_id=index.terminology_id,
            version=version,
            version_id=chosen.version_id,
            previous_version=diff.previous_version,
            terms=len(index),
            added=diff.added,
            changed=diff.changed,
            removed=diff.removed,
            unchanged=diff.unchanged,
            skipped=skipped,
            seconds=time.perf_counter() - started,
            fetch_seconds=fetch_seconds,
        )

    async def sync(
        self,
        client: TermSource,
        terminology: str,
        *,
        margin: dt.timedelta | float = DEFAULT_SYNC_MARGIN,
    ) -> SyncSummary:
        """Bring a terminology's snapshot up to date.

        If TerminologyVersions marks another version IsLast than the snapshot's, the new
        version is pulled whole (``repulled``). Otherwise SearchTerminology is asked for
        the terms created since the last sync minus ``margin`` (Jalali ``FromDate``,
        Tehran time) and they are written over the snapshot in one transaction: new codes
        are ``added``, known codes with a new value ``changed``, the rest ``unchanged``.
        ``synced_at`` moves to the moment the request was sent. A snapshot pulled at a
        named older version follows the latest on its first sync.
        Raises :class:`NoSnapshotError` if the terminology was never pulled.
        """
        terminology_id = check_terminology_id(terminology, "terminology")
        delta = _margin(margin)
        self._require_writable()
        key = terminology_id.lower()
        async with self._lock(key):
            started = time.perf_counter()
            now = _now()
            current = await self._run(self._db.info, key)
            self._note(key, current)
            if current is None:
                raise NoSnapshotError(terminology_id, path=self._path)
            versions = await client.terminology_versions(terminology_id)
            latest = choose_version(versions, None, terminology_id)
            if latest.version.strip() != current.version:
                pulled = await self._pull(client, terminology_id, key, latest, now, started)
                return SyncSummary(
                    terminology_id=pulled.terminology_id,
                    version=pulled.version,
                    previous_version=current.version,
                    repulled=True,
                    since=None,
                    received=pulled.terms,
                    added=pulled.added,
                    changed=pulled.changed,
                    unchanged=pulled.unchanged,
                    removed=pulled.removed,
                    terms=pulled.terms,
                    seconds=pulled.seconds,
                )
            since = JalaliDateTime.from_datetime(current.synced_at - delta)
            terms = await client.search_terminology(terminology_id, since=since)
            values, _ = _values(terms)

            def job(cancel: threading.Event) -> tuple[SnapshotInfo, dict[str, str], Diff]:
                return self._db.upsert(key, current.version, values, now, cancel)

            def commit(result: tuple[SnapshotInfo, dict[str, str], Diff]) -> None:
                info, written, _ = result
                index = self._indexes.get(key)
                if index is not None and index.info == current:
                    index._apply(written, info)
                else:
                    self._evict(key)

            info, _, diff = await self._write(job, commit)
            return SyncSummary(
                terminology_id=info.terminology_id,
                version=info.version,
                previous_version=current.version,
                repulled=False,
                since=since,
                received=len(values),
                added=diff.added,
                changed=diff.changed,
                unchanged=diff.unchanged,
                removed=0,
                terms=info.term_count,
                seconds=time.perf_counter() - started,
            )

    async def sync_all(
        self, client: TermSource, *, margin: dt.timedelta | float = DEFAULT_SYNC_MARGIN
    ) -> list[SyncSummary]:
        """:meth:`sync` every terminology in the file, one after another."""
        self._require_writable()
        return [
            await self.sync(client, info.terminology_id, margin=margin)
            for info in await self.snapshots()
        ]

    async def drop(self, terminology: str) -> bool:
        """Delete a terminology's snapshot; False if there was none."""
        terminology_id = check_terminology_id(terminology, "terminology")
        self._require_writable()
        key = terminology_id.lower()
        async with self._lock(key):
            gone = await self._run(self._db.drop, key)
            self._evict(key)
            return gone

    # ------------------------------------------------------------------ metadata

    async def snapshots(self) -> list[SnapshotInfo]:
        """Every terminology in the file, by key (read from the file, not memory)."""
        catalog = await self._run(self._db.catalog)
        for key in list(self._indexes):
            self._note(key, catalog.get(key))
        return list(catalog.values())

    async def info(self, terminology: str) -> SnapshotInfo:
        """One terminology's metadata (read from the file); :class:`NoSnapshotError` if
        there is none."""
        terminology_id = check_terminology_id(terminology, "terminology")
        key = terminology_id.lower()
        info = await self._run(self._db.info, key)
        self._note(key, info)
        if info is None:
            raise NoSnapshotError(terminology_id, path=self._path)
        return info

    async def reload(self) -> None:
        """Forget what is in memory; the next question reloads from the file (to see
        pulls and syncs made by other processes)."""
        self._require_open()
        self._forget()

    # ------------------------------------------------------------------ offline answers

    async def index(self, terminology: str) -> TerminologyIndex:
        """The terminology's in-memory index (loaded from the file on first use): its
        methods answer synchronously. :class:`NoSnapshotError` if there is no snapshot."""
        return await self._require(terminology)

    async def load(self, *terminologies: str) -> None:
        """Load these terminologies into memory now (else each loads when first asked)."""
        for terminology in terminologies:
            await self._require(terminology)

    async def lookup(self, terminology: str, code: str) -> str | None:
        """Terminology, offline: the value of ``code`` exactly as the gateway sent it, or
        None if the snapshot does not have the code.

        The terminology id is matched without regard to case after stripping surrounding
        white space; the code exactly after stripping. Bad input raises
        :class:`InvalidInputError` naming the field (``terminology``, ``coded_string``);
        a terminology never pulled raises :class:`NoSnapshotError`.
        """
        index = await self._require(terminology)
        return index.lookup(code)

    async def validate(self, coded_text: CodedText) -> bool:
        """ValidateCts, offline, with the gateway's rules:

        - ``terminology_id``: without regard to case, after stripping surrounding white
          space;
        - ``coded_string``: exactly, after stripping surrounding white space;
        - ``value``: True iff it equals the snapshot's value for that code once both are
          stripped of surrounding white space (``str.strip()``: Unicode white space, NBSP
          included, but not ZWNJ or other zero-width characters); everything else counts
          (case, ``ي`` vs ``ی``, ``ك`` vs ``ک``, inner spaces, ZWNJ);
        - a code the snapshot does not have: False (the gateway's answer for a code absent
          from its latest version; see :class:`HybridValidator` for asking it).

        Bad input raises :class:`InvalidInputError` naming the field (the client's checks:
        ``coded_text.value``, ``coded_text.terminology_id``, ``coded_text.coded_string``),
        so offline refuses exactly what the client would refuse to send. A terminology
        never pulled raises :class:`NoSnapshotError` (where the gateway answers 404).
        """
        checked = check_coded_text(coded_text)
        index = await self._require(checked.terminology_id, "coded_text.terminology_id")
        return index.match(checked.coded_string, checked.value) is True

    async def search_value(
        self, terminology: str, text: str, *, normalize: bool = True, limit: int = 50
    ) -> list[CodedText]:
        """Find terms by text in their value: at most ``limit`` CodedText, best first.

        With ``normalize`` (default), value and query are both put through
        :func:`normalize_text` (Arabic ي/ى/ك to Persian ی/ک, digits to ASCII, ZWNJ and
        other zero-width characters removed, white space collapsed, casefolded), and a
        term matches if it contains the query, or every word of it. Ranked: value equal
        to the query, then starting with it, then containing it, then containing all its
        words; ties by code. ``normalize=False`` finds the exact substring only.
        Search is for finding; :meth:`validate` stays exact.
        """
        index = await self._require(terminology)
        return index.search(text, normalize=normalize, limit=limit)

    # ------------------------------------------------------------------ bulk answers

    def loaded_index(self, terminology: object) -> TerminologyIndex | None:
        """The terminology's index if it is in memory now, else None (not loaded yet, no
        snapshot of it, or not a terminology id at all). No file access, never raises:
        for synchronous fast paths; :meth:`find_index` loads."""
        try:
            return self._memo[terminology]  # type: ignore[index]
        except (KeyError, TypeError):
            pass
        try:
            key = check_terminology_id(terminology).lower()
        except InvalidInputError:
            return None
        index = self._indexes.get(key)
        if index is not None and type(terminology) is str and len(self._memo) < _MEMO_SIZE:
            self._memo[terminology] = index  # the next item spelled so finds it at once
        return index

    def known_missing(self, terminology: str) -> bool:
        """True if the store has looked and the file has no snapshot of this terminology
        (since the last pull, sync, drop or reload in this process). No file access."""
        return terminology.strip().lower() in self._absent

    async def find_index(self, terminology: str) -> TerminologyIndex | None:
        """The terminology's index, loaded from the file on first use (once, however many
        ask at the same time), or None if the file has no snapshot of it."""
        return await self._load(check_terminology_id(terminology).lower())

    def _answer_now(self, item: Any) -> ValidationOutcome | str:
        """One bulk answer from memory, or the key of the terminology to load first."""
        index: TerminologyIndex | None
        try:
            index = self._memo[item.terminology_id]
        except (AttributeError, KeyError, TypeError):
            index = self.loaded_index(item.terminology_id) if isinstance(item, CodedText) else None
        if index is not None:
            outcome = index.answer(item)
            # a code the snapshot lacks is False offline, as the gateway answers
            return make_outcome(item, False) if outcome is None else outcome
        try:
            checked = check_coded_text(item)
        except InvalidInputError as exc:
            return ValidationOutcome(item, None, exc)
        key = checked.terminology_id.lower()
        if key in self._absent:
            error = NoSnapshotError(checked.terminology_id, path=self._path)
            return ValidationOutcome(item, None, error)
        return key

    async def _answer_loaded(self, item: Any, key: str) -> ValidationOutcome:
        await self._load(key)
        return self._answer_after_load(item, key)

    def _answer_loaded_blocking(self, item: Any, key: str) -> ValidationOutcome:
        self._load_blocking(key)
        return self._answer_after_load(item, key)

    def _answer_after_load(self, item: Any, key: str) -> ValidationOutcome:
        answer = self._answer_now(item)
        assert isinstance(answer, ValidationOutcome), "the terminology was loaded or absent"
        return answer

    def validate_many(
        self,
        items: Iterable[CodedText] | AsyncIterable[CodedText],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[ValidationOutcome]:
        """:meth:`validate` for many items (a plain or async iterable), offline: one
        :class:`ValidationOutcome` per item, in input order, as the client's
        ``validate_many`` yields them. Bad input and terminologies without a snapshot give
        an outcome with ``error`` set (``valid`` None); the run goes on. Each terminology
        is loaded into memory the first time it appears. ``progress`` is called with the
        count of outcomes yielded so far. A closed store raises :class:`SnapshotError`
        at once."""
        self._require_open()
        return ordered(
            items, self._answer_now, self._answer_loaded, window=1, workers=0, progress=progress
        )

    def validate_many_sync(
        self, items: Iterable[CodedText], *, progress: Callable[[int], None] | None = None
    ) -> Iterator[ValidationOutcome]:
        """:meth:`validate_many` for a plain iterable, as a plain generator: the hot path
        for scripts (no event loop is needed to iterate it once the store is open).

        A terminology not yet in memory is loaded from the file *blocking the caller*
        (tens of milliseconds for 50,000 codes): from async code, ``await
        store.load("eRx")`` first, or use :meth:`validate_many`."""
        self._require_open()
        return ordered_sync(
            items, self._answer_now, self._answer_loaded_blocking, progress=progress
        )
