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
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
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
    """One SQLite connection, opened, used and closed on the same worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SnapshotError(f"the snapshot store {self.path} is closed", path=self.path)
        return self._conn

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self, *, create: bool, verify: bool) -> dict[str, SnapshotInfo]:
        """Connect, check (or create) the schema; the catalog of snapshots in the file."""
        if self.path != ":memory:" and not os.path.exists(self.path):
            if not create:
                raise SnapshotError(f"no snapshot file at {self.path}", path=self.path)
            parent = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(parent):
                raise SnapshotError(f"directory {parent} does not exist", path=self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self._conn = conn
            conn.execute("PRAGMA busy_timeout = 30000")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            if not tables:
                self._create()
            else:
                self._check_schema(tables)
            if verify:
                self._quick_check()
            if self.path != ":memory:":
                # Readers in other processes keep the old snapshot while a pull commits.
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            return self.catalog()
        except BaseException:
            self._conn = None
            conn.close()
            raise

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
            conn.execute("ROLLBACK")
            raise

    def _check_schema(self, tables: set[str]) -> None:
        conn = self.conn
        if "meta" not in tables:
            raise SnapshotCorruptError(
                f"{self.path} is an SQLite database but not a MAXA snapshot (no meta table)",
                path=self.path,
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            found = int(row[0]) if row is not None else None
        except ValueError:
            found = None
        if found is None:
            raise SnapshotCorruptError(
                f"{self.path}: the meta table has no readable schema_version", path=self.path
            )
        if found > SCHEMA_VERSION:
            raise SnapshotSchemaError(
                f"{self.path} has snapshot schema version {found}; this maxa_async "
                f"({__version__}) reads up to version {SCHEMA_VERSION}: upgrade maxa-async, "
                "or pull into a new file",
                path=self.path,
            )
        if found < 1 or not {"terminologies", "terms"} <= tables:
            raise SnapshotCorruptError(
                f"{self.path}: schema version {found} but tables are missing", path=self.path
            )

    def _quick_check(self) -> None:
        rows = [row[0] for row in self.conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            raise SnapshotCorruptError(
                f"{self.path} is damaged (SQLite quick_check: {'; '.join(rows[:3])}); "
                "move it away and pull again",
                path=self.path,
            )

    # -- reading --------------------------------------------------------------------------------

    def catalog(self) -> dict[str, SnapshotInfo]:
        rows = self.conn.execute(f"SELECT {_INFO_COLUMNS} FROM terminologies ORDER BY key")
        return {row[0]: _info(row) for row in rows}

    def info(self, key: str) -> SnapshotInfo | None:
        row = self.conn.execute(
            f"SELECT {_INFO_COLUMNS} FROM terminologies WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else _info(row)

    def load(self, key: str) -> TerminologyIndex | None:
        """The terminology's index, built on this thread, or None if it has no snapshot."""
        conn = self.conn
        conn.execute("BEGIN")  # metadata and terms from one consistent read
        try:
            info = self.info(key)
            if info is None:
                return None
            values = dict(conn.execute("SELECT code, value FROM terms WHERE key = ?", (key,)))
        finally:
            conn.execute("COMMIT")
        return TerminologyIndex(info, values)

    # -- writing --------------------------------------------------------------------------------

    def replace(
        self, info: SnapshotInfo, values: dict[str, str], cancel: threading.Event
    ) -> tuple[Diff, TerminologyIndex]:
        """Swap a terminology's snapshot for ``values``, in one transaction.

        The old rows are deleted and the new inserted inside a single SQLite transaction,
        so a failure, a cancellation (``cancel`` is checked between chunks), a crash or a
        power cut before the commit leaves the old snapshot exactly as it was."""
        conn = self.conn
        index = TerminologyIndex(info, values)  # owns ``values`` from now on
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = self.info(info.key)
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
            if cancel.is_set():
                raise WriteCancelled
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
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
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
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = self.info(key)
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
            if cancel.is_set():
                raise WriteCancelled
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        info = attrs.evolve(
            current,
            term_count=term_count,
            synced_at=dt.datetime.fromisoformat(_iso(synced_at)),
        )
        return info, written, Diff(added=added, changed=changed, unchanged=unchanged)

    def drop(self, key: str) -> bool:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            gone = conn.execute("DELETE FROM terminologies WHERE key = ?", (key,)).rowcount
            conn.execute("DELETE FROM terms WHERE key = ?", (key,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return gone > 0


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
