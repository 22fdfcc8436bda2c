"""Hostile snapshot files: views, triggers and other objects we never create, empty and
foreign files. Each file is built with sqlite3 directly, then used through the public
entry points (the store, ``maxa snapshot info``, ``maxa validate --offline``, ``maxa
snapshot pull``). A refused file is refused before any query runs on it, and a file that
is only read is never written to."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest

import maxa_async as maxa
from maxa_async.snapshot import SnapshotCorruptError, SnapshotError, SnapshotStore
from maxa_async.snapshot import _db as snapshot_db
from maxa_async.testing import FakeGateway

#: Every subprocess and every test gets this long at most: a hang fails, never blocks.
SECONDS = 60
pytestmark = pytest.mark.timeout(2 * SECONDS)

#: The CLI's default snapshot file name, in the directory it runs in.
SNAPSHOT = "maxa-snapshot.db"
TERMS = 2_000

#: A view that never ends, in constant memory (the same seven rows, over and over).
RECURSIVE_TERMS_VIEW = """
DROP TABLE terms;
CREATE VIEW terms AS
    WITH RECURSIVE forever(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM forever)
    SELECT 'erx' AS key, CAST(n % 7 AS TEXT) AS code, 'x' AS value FROM forever;
"""
#: A view that answers one value for a code, whatever the file held.
FIXED_TERMS_VIEW = """
DROP TABLE terms;
CREATE VIEW terms AS SELECT 'erx' AS key, '7' AS code, 'ANY VALUE AT ALL' AS value;
"""
#: A trigger that deletes every row as soon as it is inserted.
SWALLOWING_TRIGGER = """
CREATE TRIGGER swallow AFTER INSERT ON terms
BEGIN DELETE FROM terms WHERE key = NEW.key AND code = NEW.code; END;
"""


class _Source:
    """A TermSource of ``count`` eRx terms ("1" -> "value 1", ...); counts its calls."""

    base_url = "https://example.invalid"

    def __init__(self, count: int, version: str = "1") -> None:
        self.count = count
        self.version = version
        self.calls = 0

    async def terminology_versions(self, terminology_id: str) -> list[maxa.TerminologyVersion]:
        self.calls += 1
        return [maxa.TerminologyVersion(1, terminology_id, self.version, 1, True)]

    async def terminologies_term_by_version(
        self, terminology_id: str, *, version: str
    ) -> list[maxa.CodedText]:
        self.calls += 1
        return [
            maxa.CodedText(f"value {n}", terminology_id, str(n)) for n in range(1, self.count + 1)
        ]

    async def search_terminology(self, terminology_id: str, since: object) -> list[maxa.CodedText]:
        self.calls += 1
        return []


async def _genuine(path: Path, count: int = TERMS) -> None:
    """A real snapshot of ``count`` eRx terms, written by the store."""
    async with SnapshotStore.open(path) as store:
        summary = await store.pull(_Source(count), "eRx")
    assert summary.terms == count


def _script(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
    finally:
        conn.close()


def _count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


async def _hostile(path: Path, script: str) -> str:
    """A genuine snapshot made hostile by ``script``; its digest."""
    await _genuine(path)
    await asyncio.to_thread(_script, path, script)
    return await asyncio.to_thread(_digest, path)


@attrs.frozen
class Run:
    returncode: int
    stdout: str
    stderr: str


def _maxa(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Run:
    """``python -m maxa_async.cli ARGS`` as the user runs it, bounded in time."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "maxa_async.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=environ,
        cwd=cwd,
        timeout=SECONDS,
        check=False,
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def _one_error_line(run: Run) -> str:
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


def _csv(path: Path, *rows: tuple[str, str, str]) -> Path:
    lines = ["terminology,code,value", *(",".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- views


async def test_a_recursive_view_is_refused_before_any_query(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    before = await _hostile(path, RECURSIVE_TERMS_VIEW)
    source = _csv(tmp_path / "lines.csv", ("eRx", "1", "value 1"))

    offline = await asyncio.to_thread(_maxa, "validate", str(source), "--offline", cwd=tmp_path)

    assert offline.returncode == 3, offline
    line = _one_error_line(offline)
    assert line.startswith(f"maxa: {SNAPSHOT} is not a MAXA snapshot as maxa_async writes it: ")
    assert "it holds a view named 'terms' where maxa_async keeps a table" in line
    assert "refused before any query ran on it" in line and "pull again" in line
    assert await asyncio.to_thread(_digest, path) == before

    for read_only in (True, False):  # the library: both ways of opening refuse it
        with pytest.raises(SnapshotCorruptError, match="a view named 'terms'") as caught:
            await SnapshotStore.open(path, read_only=read_only)
        assert caught.value.path == str(path)
    assert await asyncio.to_thread(_digest, path) == before


async def test_a_view_with_fixed_answers_cannot_make_a_wrong_value_valid(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    before = await _hostile(path, FIXED_TERMS_VIEW)
    source = _csv(tmp_path / "lines.csv", ("eRx", "7", "ANY VALUE AT ALL"))

    offline = await asyncio.to_thread(_maxa, "validate", str(source), "--offline", cwd=tmp_path)

    assert offline.returncode == 3, offline
    assert "valid" not in offline.stdout
    assert "it holds a view named 'terms'" in _one_error_line(offline)
    assert await asyncio.to_thread(_digest, path) == before
    with pytest.raises(SnapshotCorruptError, match="a view named 'terms'"):
        await SnapshotStore.open(path, create=False)


# ---------------------------------------------------------------------------- triggers


async def test_pull_into_a_file_with_a_trigger_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    before = await _hostile(path, SWALLOWING_TRIGGER)
    source = _Source(3 * TERMS, version="2")

    with pytest.raises(SnapshotCorruptError, match="a trigger named 'swallow' on 'terms'"):
        async with SnapshotStore.open(path) as store:
            await store.pull(source, "eRx")

    assert source.calls == 0  # refused on open: nothing fetched, nothing written
    assert await asyncio.to_thread(_count, path, "SELECT count(*) FROM terms") == TERMS
    assert await asyncio.to_thread(_digest, path) == before


async def test_cli_pull_into_a_file_with_a_trigger_is_refused(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    path = tmp_path / SNAPSHOT
    before = await _hostile(path, SWALLOWING_TRIGGER)
    credentials = gateway.credentials
    env = {
        "MAXA_CLIENT_ID": credentials.client_id,
        "MAXA_CLIENT_SECRET": credentials.client_secret,
        "MAXA_USERNAME": credentials.username,
        "MAXA_PASSWORD": credentials.password,
        "MAXA_PID": credentials.pid,
        "MAXA_BASE_URL": gateway.base_url,
    }

    pull = await asyncio.to_thread(_maxa, "snapshot", "pull", "eRx", cwd=tmp_path, env=env)

    assert pull.returncode == 3, pull
    assert "it holds a trigger named 'swallow' on 'terms'" in _one_error_line(pull)
    assert gateway.stats.requests_by_operation.get("TerminologiesTermByVersion", 0) == 0
    assert await asyncio.to_thread(_count, path, "SELECT count(*) FROM terms") == TERMS
    assert await asyncio.to_thread(_digest, path) == before


async def test_a_trigger_added_by_another_process_after_open_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / SNAPSHOT
    await _genuine(path)
    source = _Source(3 * TERMS, version="2")
    async with SnapshotStore.open(path) as store:
        await asyncio.to_thread(_script, path, SWALLOWING_TRIGGER)
        with pytest.raises(SnapshotCorruptError, match="a trigger named 'swallow'"):
            await store.pull(source, "eRx")
    assert await asyncio.to_thread(_count, path, "SELECT count(*) FROM terms") == TERMS
    assert await asyncio.to_thread(_count, path, "SELECT term_count FROM terminologies") == TERMS


async def test_a_view_swapped_in_by_another_process_after_open_is_refused(
    tmp_path: Path,
) -> None:
    path = tmp_path / SNAPSHOT
    await _genuine(path)
    async with SnapshotStore.open(path, read_only=True) as store:
        await asyncio.to_thread(_script, path, RECURSIVE_TERMS_VIEW)
        with pytest.raises(SnapshotCorruptError, match="a view named 'terms'"):
            await store.lookup("eRx", "1")


# ---------------------------------------------------------------------------- any other object


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        (
            "CREATE INDEX by_value ON terms (value);",
            "it holds an index named 'by_value' on 'terms'",
        ),
        ("CREATE TABLE notes (body TEXT);", "it holds a table named 'notes'"),
        ("CREATE VIEW everything AS SELECT * FROM terms;", "it holds a view named 'everything'"),
        (
            "CREATE TRIGGER keep BEFORE UPDATE ON meta BEGIN SELECT 1; END;",
            "it holds a trigger named 'keep' on 'meta'",
        ),
        ("ANALYZE;", "it holds a table named 'sqlite_stat1'"),
        (
            "DROP TABLE meta; CREATE VIEW meta AS SELECT 'schema_version' AS key, '1' AS value;",
            "it holds a view named 'meta' where maxa_async keeps a table",
        ),
        (
            "DROP TABLE terms; CREATE TABLE terms (key TEXT NOT NULL, code TEXT NOT NULL,"
            " value TEXT NOT NULL, note TEXT, PRIMARY KEY (key, code)) WITHOUT ROWID;",
            "table 'terms' has columns (key, code, value, note), not (key, code, value)",
        ),
        (
            "DROP TABLE terms; CREATE TABLE terms (key TEXT NOT NULL,"
            " code TEXT NOT NULL COLLATE NOCASE, value TEXT NOT NULL,"
            " PRIMARY KEY (key, code)) WITHOUT ROWID;",
            "table 'terms' has its definition differs from ours",
        ),
        (
            "PRAGMA writable_schema = ON; INSERT INTO sqlite_master VALUES"
            " ('table', 'vt', 'vt', 0, 'CREATE VIRTUAL TABLE vt USING nosuchmodule(x)');",
            "it holds a table named 'vt'",
        ),
    ],
    ids=[
        "index",
        "table",
        "view",
        "trigger",
        "sqlite_stat1",
        "meta-view",
        "extra-column",
        "collation",
        "virtual-table",
    ],
)
async def test_any_object_we_do_not_create_is_refused_by_name(
    tmp_path: Path, script: str, problem: str
) -> None:
    path = tmp_path / SNAPSHOT
    before = await _hostile(path, script)
    for read_only in (True, False):
        with pytest.raises(SnapshotCorruptError) as caught:
            await SnapshotStore.open(path, read_only=read_only)
        assert problem in str(caught.value)
        assert caught.value.path == str(path)
    assert await asyncio.to_thread(_digest, path) == before


async def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    before = await _hostile(path, "PRAGMA application_id = 42;")
    with pytest.raises(SnapshotCorruptError, match=r"another application \(application_id 0x2a\)"):
        await SnapshotStore.open(path)
    assert await asyncio.to_thread(_digest, path) == before


# ---------------------------------------------------------------------------- files only read


async def test_info_and_offline_never_write_into_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    path.write_bytes(b"")
    source = _csv(tmp_path / "lines.csv", ("eRx", "1", "value 1"))
    listing = _listing(tmp_path)

    info = await asyncio.to_thread(_maxa, "snapshot", "info", cwd=tmp_path)
    offline = await asyncio.to_thread(_maxa, "validate", str(source), "--offline", cwd=tmp_path)

    for run in (info, offline):
        assert run.returncode == 3, run
        assert _one_error_line(run) == (
            f"maxa: {SNAPSHOT} is empty, not a MAXA snapshot; pull a terminology into it "
            "first (nothing was written to it)"
        )
    assert path.stat().st_size == 0
    assert _listing(tmp_path) == listing  # no -wal, -shm or -journal either
    for create in (False, True):  # read-only, or create=False: refused, not filled in
        with pytest.raises(SnapshotCorruptError, match="is empty, not a MAXA snapshot"):
            await SnapshotStore.open(path, create=create, read_only=True)
    with pytest.raises(SnapshotCorruptError, match="is empty, not a MAXA snapshot"):
        await SnapshotStore.open(path, create=False)
    assert path.stat().st_size == 0


async def test_info_on_another_sqlite_database_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    await asyncio.to_thread(_script, path, "CREATE TABLE patients (id INTEGER);")
    before = await asyncio.to_thread(_digest, path)
    listing = _listing(tmp_path)

    info = await asyncio.to_thread(_maxa, "snapshot", "info", cwd=tmp_path)

    assert info.returncode == 3, info
    assert "is an SQLite database but not a MAXA snapshot (no meta table)" in _one_error_line(info)
    assert await asyncio.to_thread(_digest, path) == before
    assert _listing(tmp_path) == listing


async def test_info_and_offline_leave_a_genuine_snapshot_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    await _genuine(path)
    before = await asyncio.to_thread(_digest, path)
    source = _csv(tmp_path / "lines.csv", ("eRx", "1", "value 1"), ("eRx", "2", "value 1"))

    info = await asyncio.to_thread(_maxa, "snapshot", "info", "--json", cwd=tmp_path)
    offline = await asyncio.to_thread(_maxa, "validate", str(source), "--offline", cwd=tmp_path)

    assert info.returncode == 0, info
    assert f'"terms": {TERMS}' in info.stdout
    assert offline.returncode == 1, offline  # one invalid row
    statuses = [row["status"] for row in csv.DictReader(offline.stdout.splitlines())]
    assert statuses == ["valid", "invalid"]
    assert await asyncio.to_thread(_digest, path) == before
    # SQLite's WAL readers need its shared-memory file; the log they leave holds nothing.
    wal = tmp_path / f"{SNAPSHOT}-wal"
    assert not wal.exists() or wal.stat().st_size == 0


async def test_a_read_only_store_answers_and_refuses_to_write(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT
    await _genuine(path)
    before = await asyncio.to_thread(_digest, path)
    source = _Source(TERMS, version="2")

    async with SnapshotStore.open(path, read_only=True) as store:
        assert store.read_only
        assert await store.lookup("eRx", "7") == "value 7"
        assert await store.validate(maxa.CodedText("value 7", "eRx", "7"))
        for write in (
            store.pull(source, "eRx"),
            store.sync(source, "eRx"),
            store.sync_all(source),
            store.drop("eRx"),
        ):
            with pytest.raises(SnapshotError, match="is open read-only"):
                await write

    assert source.calls == 0
    assert await asyncio.to_thread(_digest, path) == before
    with pytest.raises(SnapshotError, match="no snapshot file at"):
        await SnapshotStore.open(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


# ---------------------------------------------------------------------------- interruption


async def test_closing_the_store_interrupts_a_query_that_would_never_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were a query ever to run on and on, closing the store (as
    Ctrl-C or SIGTERM does in the CLI) ends it through the progress handler."""
    path = tmp_path / SNAPSHOT
    await _genuine(path)
    started = threading.Event()

    def endless_load(self: snapshot_db.Database, key: str) -> None:
        started.set()
        self.conn.execute(
            "WITH RECURSIVE forever(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM forever)"
            " SELECT count(*) FROM forever"
        ).fetchall()

    monkeypatch.setattr(snapshot_db.Database, "load", endless_load)
    store = await SnapshotStore.open(path)
    lookup = asyncio.create_task(store.lookup("eRx", "1"))
    assert await asyncio.to_thread(started.wait, SECONDS)

    await store.aclose()

    with pytest.raises(SnapshotError, match="interrupted"):
        await lookup
    assert store.closed


_ENDLESS_CLI = """
import runpy, sys
from maxa_async.snapshot import _db

def endless_load(self, key):
    sys.stderr.write("query started\\n")
    sys.stderr.flush()
    self.conn.execute(
        "WITH RECURSIVE forever(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM forever)"
        " SELECT count(*) FROM forever"
    ).fetchall()

_db.Database.load = endless_load
sys.argv = ["maxa", *sys.argv[1:]]
runpy.run_module("maxa_async.cli", run_name="__main__")
"""


def _sigterm_during_an_endless_query(tmp_path: Path, source: Path) -> tuple[int, str]:
    script = tmp_path / "endless_cli.py"
    script.write_text(_ENDLESS_CLI, encoding="utf-8")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    process = subprocess.Popen(
        [sys.executable, str(script), "validate", str(source), "--offline"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
        cwd=tmp_path,
    )
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], SECONDS)
        assert ready and process.stderr.readline() == b"query started\n"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=SECONDS)
        return process.returncode, stderr.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def test_sigterm_ends_validate_offline_during_a_query_that_would_never_end(
    tmp_path: Path,
) -> None:
    """The CLI's SIGTERM cancels the run and closes the store, whose progress handler
    then stops the query: the process ends with exit 130 instead of spinning on."""
    await _genuine(tmp_path / SNAPSHOT)
    source = _csv(tmp_path / "lines.csv", ("eRx", "1", "value 1"))

    returncode, stderr = await asyncio.to_thread(_sigterm_during_an_endless_query, tmp_path, source)

    assert returncode == 130, stderr
    assert "rerun the same command to continue" in stderr
