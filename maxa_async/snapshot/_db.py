"""The SQLite side of the store. Everything here runs on the store's one worker thread.

Schema (version 1)::

    meta(key PRIMARY KEY, value)                 schema_version, created_at, created_by
    terminologies(key PRIMARY KEY, terminology_id, version, version_id, term_count,
                  base_url, pulled_at, pulled_at_jalali, synced_at, synced_at_jalali)
    terms(key, code, value, PRIMARY KEY (key, code))

``key`` is the terminology id stripped and lower-cased; a snapshot holds one version per
terminology, so the id's spelling and the version live once in ``terminologies``.
Times are ISO 8601 UTC (``*_at``) and Tehran Jalali ``YYYY/MM/DD HH:MM:SS``
(``*_at_jalali``, for people reading the file with the sqlite3 shell).

A snapshot file is data, never code: it is opened with ``trusted_schema`` off, and before
any query touches our tables every object in its schema must be exactly one we create (the
three tables above, defined as above). A view or trigger named like ours, or any object we
do not create, is refused with :class:`SnapshotCorruptError`, because reading a view or
writing under a trigger runs SQL that the file's author chose. A progress handler lets
:meth:`Database.interrupt` (and a write's cancel event) stop a statement in progress.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import pathlib
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from .. import __version__
from ..jalali import JalaliDateTime
from ._errors import SnapshotCorruptError, SnapshotError, SnapshotSchemaError
from ._index import TerminologyIndex
from ._models import SnapshotInfo

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Database", "Diff", "WriteCancelled"]

SCHEMA_VERSION: Final = 1
#: ``PRAGMA application_id``: "MAXA" in ASCII, so ``file(1)`` and we can tell the file apart.
APPLICATION_ID: Final = 0x4D415841

_CHUNK: Final = 5_000

_SCHEMA: Final = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE terminologies (
    key              TEXT PRIMARY KEY,
    terminology_id   TEXT NOT NULL,
    version          TEXT NOT NULL,
    version_id       INTEGER,
    term_count       INTEGER NOT NULL,
    base_url         TEXT NOT NULL,
    pulled_at        TEXT NOT NULL,
    pulled_at_jalali TEXT NOT NULL,
    synced_at        TEXT NOT NULL,
    synced_at_jalali TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE terms (
    key   TEXT NOT NULL,
    code  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (key, code)
) WITHOUT ROWID;
"""

#: SQLite calls the progress handler every this many virtual-machine steps: often enough
#: that an interrupted statement ends at once, rarely enough to cost nothing measurable.
_PROGRESS_STEPS: Final = 10_000

_INFO_COLUMNS: Final = (
    "key, terminology_id, version, version_id, term_count, base_url, pulled_at, synced_at"
)


class WriteCancelled(Exception):
    """The write was cancelled before its commit and rolled back."""


@attrs.frozen
class Diff:
    """A new snapshot compared with the old one, code by code."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    previous_version: str | None = None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _jalali(moment: dt.datetime) -> str:
    return str(JalaliDateTime.from_datetime(moment))


def _info(row: tuple[Any, ...]) -> SnapshotInfo:
    key, terminology_id, version, version_id, term_count, base_url, pulled, synced = row
    return SnapshotInfo(
        key=key,
        terminology_id=terminology_id,
        version=version,
        version_id=version_id,
        term_count=term_count,
        base_url=base_url,
        pulled_at=dt.datetime.fromisoformat(pulled),
        synced_at=dt.datetime.fromisoformat(synced),
    )


@attrs.frozen
class _SchemaObject:
    """One row of ``sqlite_master`` as we compare it: what it is, and its definition."""

    type: str
    name: str
    table: str
    sql: str


def _normalize(sql: str | None) -> str:
    # Our definitions hold no string literals, so white space is never significant in them.
    return " ".join((sql or "").split())


def _schema_objects(conn: sqlite3.Connection) -> list[_SchemaObject]:
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM main.sqlite_master")
    return [
        _SchemaObject(str(kind), str(name), str(table), _normalize(sql))
        for kind, name, table, sql in rows
    ]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    # table_xinfo reads the declared columns from the schema: it runs no query on the table.
    rows = conn.execute("SELECT name FROM pragma_table_xinfo(?, 'main')", (table,))
    return [str(name) for (name,) in rows]


@functools.cache
def _expected() -> tuple[dict[str, _SchemaObject], dict[str, list[str]]]:
    """What ``_SCHEMA`` makes, as SQLite records it, and each table's columns (built once,
    in memory, so the check can never drift from the definitions above)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(_SCHEMA)
        objects = {found.name: found for found in _schema_objects(conn)}
        return objects, {name: _columns(conn, name) for name in objects}
    finally:
        conn.close()


def translate(exc: sqlite3.Error, path: str) -> SnapshotError:
    """An sqlite3 error as the store's typed error."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or type(exc) is sqlite3.DatabaseError:
        return SnapshotCorruptError(
            f"{path} is not a readable MAXA snapshot (not an SQLite database, or damaged: "
            f"{exc}); move it away and pull again",
            path=path,
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return SnapshotError(f"{path} is locked by another writer ({exc}); try again", path=path)
    return SnapshotError(f"{path}: SQLite error: {exc}", path=path)


class Database:
    """One SQLite connection, opened, used and closed on the same worker thread.

    ``read_only`` opens the file with SQLite's ``mode=ro``: SQLite itself then refuses any
    write, so nothing of the file changes (no schema put into an empty file, no journal
    mode set, no checkpoint on close)."""

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        # Set from any thread by interrupt(); read by the progress handler on this one.
        self._stop = threading.Event()
        # The cancel event of the write in progress: a write stops for its caller only.
        self._write_cancel: threading.Event | None = None
        # PRAGMA schema_version when the schema was last found to be ours.
        self._checked_schema: int | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SnapshotError(f"the snapshot store {self.path} is closed", path=self.path)
        return self._conn

    def interrupt(self) -> None:
        """From any thread: a read in progress ends at once with an error (``interrupted``),
        and so does any read until the next :meth:`open`. A write in progress is left to
        commit, or to its own cancel event."""
        self._stop.set()

    def _progress(self) -> int:
        # Non-zero makes SQLite abandon the statement in progress.
        cancel = self._write_cancel
        if cancel is not None:
            return cancel.is_set()
        return self._stop.is_set()

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self, *, create: bool, verify: bool) -> dict[str, SnapshotInfo]:
        """Connect, check (or create) the schema; the catalog of snapshots in the file."""
        create = create and not self.read_only
        in_memory = self.path == ":memory:" and not self.read_only
        if not in_memory and not os.path.exists(self.path):
            if not create:
                raise SnapshotError(f"no snapshot file at {self.path}", path=self.path)
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise SnapshotError(f"directory {parent} does not exist", path=self.path)
        self._stop.clear()
        conn = self._connect()
        try:
            self._conn = conn
            self._harden(conn)
            conn.execute("PRAGMA busy_timeout = 30000")
            objects = _schema_objects(conn)
            self._check_application_id()
            if objects:
                self._check_schema(objects)
            elif create:
                self._create()
            else:
                raise SnapshotCorruptError(
                    f"{self.path} is empty, not a MAXA snapshot; pull a terminology into it "
                    "first (nothing was written to it)",
                    path=self.path,
                )
            if verify:
                self._quick_check()
            if not self.read_only and not in_memory:
                # Readers in other processes keep the old snapshot while a pull commits.
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._checked_schema = self._schema_cookie()
            return self.catalog()
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            uri = pathlib.Path(self.path).absolute().as_uri() + "?mode=ro"
            return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
        return sqlite3.connect(self.path, isolation_level=None, timeout=30.0)

    def _harden(self, conn: sqlite3.Connection) -> None:
        # SQL functions with side effects, and virtual tables, may not run from inside the
        # schema (a view, trigger, default or CHECK), whatever the file holds.
        conn.execute("PRAGMA trusted_schema = OFF")
        if sys.version_info >= (3, 12):
            # No writable_schema, no journal_mode=OFF, no other ways to damage the file.
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _create(self) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created_at", _iso(dt.datetime.now(dt.UTC))),
                    ("created_by", f"maxa_async {__version__}"),
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    # -- the schema check -----------------------------------------------------------------------

    def _corrupt(self, problem: str) -> SnapshotCorruptError:
        return SnapshotCorruptError(
            f"{self.path} is not a MAXA snapshot as maxa_async writes it: {problem}; "
            "it was refused before any query ran on it (a snapshot holds only the tables "
            "meta, terminologies and terms): move it away and pull again",
            path=self.path,
        )

    def _schema_cookie(self) -> int:
        return int(self.conn.execute("PRAGMA schema_version").fetchone()[0])

    def _check_application_id(self) -> None:
        found = int(self.conn.execute("PRAGMA application_id").fetchone()[0])
        if found not in (0, APPLICATION_ID):
            raise SnapshotCorruptError(
                f"{self.path} is an SQLite database of another application "
                f"(application_id {found:#x}), not a MAXA snapshot",
                path=self.path,
            )

    def _check_schema(self, objects: list[_SchemaObject]) -> None:
        """Every object in the file is one we create, defined as we define it; the schema
        version is one we read. Only ``sqlite_master``, ``meta`` and table_xinfo are read
        before the verdict: no view can run and no trigger can fire."""
        expected, _ = _expected()
        metas = [found for found in objects if found.name == "meta"]
        if not metas:
            raise SnapshotCorruptError(
                f"{self.path} is an SQLite database but not a MAXA snapshot (no meta table)",
                path=self.path,
            )
        for found in metas:
            self._check_object(found)
        found_version = self._schema_version()
        if found_version > SCHEMA_VERSION:
            raise SnapshotSchemaError(
                f"{self.path} has snapshot schema version {found_version}; this maxa_async "
                f"({__version__}) reads up to version {SCHEMA_VERSION}: upgrade maxa-async, "
                "or pull into a new file",
                path=self.path,
            )
        for found in objects:
            self._check_object(found)
        if found_version < 1:
            raise SnapshotCorruptError(
                f"{self.path}: the meta table holds schema version {found_version}, which "
                "no maxa_async writes",
                path=self.path,
            )
        missing = sorted(set(expected) - {found.name for found in objects})
        if missing:
            raise SnapshotCorruptError(
                f"{self.path}: schema version {found_version} but tables are missing "
                f"({', '.join(missing)})",
                path=self.path,
            )

    def _check_object(self, found: _SchemaObject) -> None:
        expected, columns = _expected()
        wanted = expected.get(found.name)
        if wanted is None:
            on = f" on {found.table!r}" if found.table != found.name else ""
            raise self._corrupt(f"it holds {_a(found.type)} named {found.name!r}{on}")
        if found.type != wanted.type:
            raise self._corrupt(
                f"it holds {_a(found.type)} named {found.name!r} where maxa_async keeps "
                f"{_a(wanted.type)}"
            )
        if found.sql != wanted.sql or found.table != wanted.table:
            try:
                have = _columns(self.conn, found.name)
            except sqlite3.Error:
                have = []
            if have != columns[found.name]:
                detail = f"columns ({', '.join(have)}), not ({', '.join(columns[found.name])})"
            else:
                detail = "its definition differs from ours"
            raise self._corrupt(f"table {found.name!r} has {detail}")

    def _schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0])
        except (TypeError, ValueError):  # no row at all, or not a number
            raise SnapshotCorruptError(
                f"{self.path}: the meta table has no readable schema_version", path=self.path
            ) from None

    def _quick_check(self) -> None:
        rows = [row[0] for row in self.conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise SnapshotCorruptError(
                f"{self.path} is damaged (SQLite quick_check: {'; '.join(rows[:3])}); "
                "move it away and pull again",
                path=self.path,
            )

    def _recheck(self) -> None:
        """Inside a transaction: check the schema again if another process changed it."""
        if self._schema_cookie() != self._checked_schema:
            self._check_schema(_schema_objects(self.conn))
            self._checked_schema = self._schema_cookie()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One consistent read of a schema known to be ours."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            self._recheck()
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def _writing(self, cancel: threading.Event | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction on a schema known to be ours: committed, or rolled back.
        ``cancel`` set stops it, even inside a statement (:class:`WriteCancelled`)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        self._write_cancel = cancel
        try:
            self._recheck()
            yield conn
            if cancel is not None and cancel.is_set():
                raise WriteCancelled
            conn.execute("COMMIT")
        except sqlite3.OperationalError:
            _rollback(conn)
            if cancel is not None and cancel.is_set():
                raise WriteCancelled from None
            raise
        except BaseException:
            _rollback(conn)
            raise
        finally:
            self._write_cancel = None

    # -- reading --------------------------------------------------------------------------------

    def _infos(self, rows: Iterable[tuple[Any, ...]]) -> list[SnapshotInfo]:
        try:
            return [_info(row) for row in rows]
        except (TypeError, ValueError) as exc:
            raise SnapshotCorruptError(
                f"{self.path}: a row of the terminologies table is unreadable ({exc}); "
                "move it away and pull again",
                path=self.path,
            ) from exc

    def catalog(self) -> dict[str, SnapshotInfo]:
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_INFO_COLUMNS} FROM terminologies ORDER BY key")
            return {info.key: info for info in self._infos(rows)}

    def info(self, key: str) -> SnapshotInfo | None:
        with self._reading():
            return self._info_of(key)

    def _info_of(self, key: str) -> SnapshotInfo | None:
        row = self.conn.execute(
            f"SELECT {_INFO_COLUMNS} FROM terminologies WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else self._infos([row])[0]

    def load(self, key: str) -> TerminologyIndex | None:
        """The terminology's index, built on this thread, or None if it has no snapshot."""
        with self._reading() as conn:  # metadata and terms from one consistent read
            info = self._info_of(key)
            if info is None:
                return None
            values = dict(conn.execute("SELECT code, value FROM terms WHERE key = ?", (key,)))
        return TerminologyIndex(info, values)

    # -- writing --------------------------------------------------------------------------------

    def replace(
        self, info: SnapshotInfo, values: dict[str, str], cancel: threading.Event
    ) -> tuple[Diff, TerminologyIndex]:
        """Swap a terminology's snapshot for ``values``, in one transaction.

        The old rows are deleted and the new inserted inside a single SQLite transaction,
        so a failure, a cancellation (``cancel`` stops the statement in progress), a crash
        or a power cut before the commit leaves the old snapshot exactly as it was."""
        index = TerminologyIndex(info, values)  # owns ``values`` from now on
        with self._writing(cancel) as conn:
            old = self._info_of(info.key)
            previous = dict(
                conn.execute("SELECT code, value FROM terms WHERE key = ?", (info.key,))
            )
            diff = _diff(previous, values, old.version if old is not None else None)
            conn.execute("DELETE FROM terms WHERE key = ?", (info.key,))
            rows = [(info.key, code, value) for code, value in values.items()]
            for start in range(0, len(rows), _CHUNK):
                if cancel.is_set():
                    raise WriteCancelled
                self._insert(rows[start : start + _CHUNK])
            conn.execute(
                "INSERT OR REPLACE INTO terminologies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.key,
                    info.terminology_id,
                    info.version,
                    info.version_id,
                    info.term_count,
                    info.base_url,
                    _iso(info.pulled_at),
                    _jalali(info.pulled_at),
                    _iso(info.synced_at),
                    _jalali(info.synced_at),
                ),
            )
        return diff, index

    def _insert(self, rows: Iterable[tuple[str, str, str]]) -> None:
        self.conn.executemany("INSERT INTO terms (key, code, value) VALUES (?, ?, ?)", rows)

    def upsert(
        self,
        key: str,
        version: str,
        values: Mapping[str, str],
        synced_at: dt.datetime,
        cancel: threading.Event,
    ) -> tuple[SnapshotInfo, dict[str, str], Diff]:
        """Add new codes and new values of known codes, in one transaction; move
        ``synced_at``. Returns the new info, the terms written, and the counts."""
        with self._writing(cancel) as conn:
            current = self._info_of(key)
            if current is None or current.version != version:
                raise SnapshotError(
                    f"{self.path}: the snapshot of {key!r} was replaced while syncing "
                    f"(now {current.version if current else 'gone'}); sync again",
                    path=self.path,
                )
            written: dict[str, str] = {}
            added = changed = unchanged = 0
            for code, value in values.items():
                row = conn.execute(
                    "SELECT value FROM terms WHERE key = ? AND code = ?", (key, code)
                ).fetchone()
                if row is None:
                    added += 1
                elif row[0] != value:
                    changed += 1
                else:
                    unchanged += 1
                    continue
                written[code] = value
            if cancel.is_set():
                raise WriteCancelled
            conn.executemany(
                "INSERT OR REPLACE INTO terms (key, code, value) VALUES (?, ?, ?)",
                [(key, code, value) for code, value in written.items()],
            )
            term_count = current.term_count + added
            conn.execute(
                "UPDATE terminologies SET term_count = ?, synced_at = ?, synced_at_jalali = ?"
                " WHERE key = ?",
                (term_count, _iso(synced_at), _jalali(synced_at), key),
            )
        info = attrs.evolve(
            current,
            term_count=term_count,
            synced_at=dt.datetime.fromisoformat(_iso(synced_at)),
        )
        return info, written, Diff(added=added, changed=changed, unchanged=unchanged)

    def drop(self, key: str) -> bool:
        with self._writing() as conn:
            gone = conn.execute("DELETE FROM terminologies WHERE key = ?", (key,)).rowcount
            conn.execute("DELETE FROM terms WHERE key = ?", (key,))
        return gone > 0


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite has already rolled back a transaction whose statement was interrupted.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _diff(old: Mapping[str, str], new: Mapping[str, str], previous_version: str | None) -> Diff:
    added = changed = unchanged = 0
    for code, value in new.items():
        before = old.get(code)
        if before is None:
            added += 1
        elif before != value:
            changed += 1
        else:
            unchanged += 1
    removed = sum(1 for code in old if code not in new)
    return Diff(added, changed, removed, unchanged, previous_version)
