"""The file: schema versioning, refusal of newer schemas, damaged or foreign files,
several stores on one file, lifecycle."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import maxa_async as maxa
from maxa_async.snapshot import (
    SCHEMA_VERSION,
    NoSnapshotError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotSchemaError,
    SnapshotStore,
)
from maxa_async.snapshot import _db as snapshot_db
from maxa_async.testing import FakeGateway, Term


def _sql(path: Path, *statements: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            rows = conn.execute(statement).fetchall()
    conn.close()
    return rows


async def test_new_file_has_a_versioned_schema(snapshot_path: Path) -> None:
    async with SnapshotStore.open(snapshot_path):
        pass
    rows = await asyncio.to_thread(_sql, snapshot_path, "SELECT key, value FROM meta")
    meta = {str(key): str(value) for key, value in rows}
    assert meta["schema_version"] == str(SCHEMA_VERSION) == "1"
    assert meta["created_by"].startswith("maxa_async ")
    [(app_id,)] = await asyncio.to_thread(_sql, snapshot_path, "PRAGMA application_id")
    assert app_id == snapshot_db.APPLICATION_ID
    tables = await asyncio.to_thread(
        _sql, snapshot_path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    assert [t[0] for t in tables] == ["meta", "terminologies", "terms"]


async def test_a_newer_schema_is_refused_clearly(
    client: maxa.MaxaClient, snapshot_path: Path
) -> None:
    async with SnapshotStore.open(snapshot_path) as store:
        await store.pull(client, "ContactType")
    await asyncio.to_thread(
        _sql, snapshot_path, "UPDATE meta SET value = '7' WHERE key = 'schema_version'"
    )

    with pytest.raises(SnapshotSchemaError) as caught:
        await SnapshotStore.open(snapshot_path)

    message = str(caught.value)
    assert "schema version 7" in message and "up to version 1" in message
    assert "upgrade maxa-async" in message and caught.value.path == str(snapshot_path)
    assert isinstance(caught.value, SnapshotError) and isinstance(caught.value, maxa.MaxaError)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is a CSV file, not a database\n" * 100, "not an SQLite database, or damaged"),
        (b"", None),  # an empty file is a fresh database
    ],
)
async def test_a_file_that_is_not_sqlite(
    snapshot_path: Path, content: bytes, expected: str | None
) -> None:
    await asyncio.to_thread(snapshot_path.write_bytes, content)
    if expected is None:
        async with SnapshotStore.open(snapshot_path) as store:
            assert await store.snapshots() == []
        return
    with pytest.raises(SnapshotCorruptError, match=expected):
        await SnapshotStore.open(snapshot_path)


async def test_another_sqlite_database_is_not_a_snapshot(snapshot_path: Path) -> None:
    await asyncio.to_thread(_sql, snapshot_path, "CREATE TABLE patients (id INTEGER)")
    with pytest.raises(SnapshotCorruptError, match="not a MAXA snapshot"):
        await SnapshotStore.open(snapshot_path)
    assert await asyncio.to_thread(_sql, snapshot_path, "SELECT count(*) FROM patients") == [(0,)]


async def test_a_damaged_file_fails_on_open(client: maxa.MaxaClient, tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    async with SnapshotStore.open(path) as store:
        await store.pull(client, "eRx", version="1000")
    data = bytearray(await asyncio.to_thread(path.read_bytes))
    assert len(data) > 1_000_000
    for offset in range(200_000, 900_000, 4096):  # scribble over B-tree pages
        data[offset : offset + 64] = b"\xff" * 64
    await asyncio.to_thread(path.write_bytes, bytes(data))

    with pytest.raises(SnapshotCorruptError, match="damaged") as caught:
        await SnapshotStore.open(path)
    assert "pull again" in str(caught.value)


async def test_create_false_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no snapshot file at"):
        await SnapshotStore.open(tmp_path / "missing.db", create=False)
    with pytest.raises(SnapshotError, match="does not exist"):
        await SnapshotStore.open(tmp_path / "no" / "such" / "dir.db")
    assert not await asyncio.to_thread((tmp_path / "missing.db").exists)


async def test_a_closed_store_refuses_calls(snapshot_path: Path) -> None:
    store = await SnapshotStore.open(snapshot_path)
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(SnapshotError, match="not open"):
        await store.lookup("eRx", "1")
    with pytest.raises(SnapshotError, match="not open"):
        list(store.validate_many_sync([]))
    assert "closed" in repr(store)


async def test_two_stores_on_one_file(
    gateway: FakeGateway, client: maxa.MaxaClient, snapshot_path: Path
) -> None:
    async with (
        SnapshotStore.open(snapshot_path) as writer,
        SnapshotStore.open(snapshot_path) as reader,
    ):
        with pytest.raises(NoSnapshotError):
            await reader.lookup("ContactType", "1")
        await writer.pull(client, "ContactType")
        with pytest.raises(NoSnapshotError):  # remembered as absent until reload
            await reader.lookup("ContactType", "1")
        await reader.reload()
        assert await reader.lookup("ContactType", "1") == "تلفن منزل"

        gateway.add_version("ContactType", "2", [Term("1", "تلفن ثابت")], inherit=True)
        assert (await writer.sync(client, "ContactType")).repulled
        assert await reader.lookup("ContactType", "1") == "تلفن منزل"  # memory, as loaded
        # info() and snapshots() read the file and drop what memory held of a replaced one
        assert (await reader.info("ContactType")).version == "2"
        assert await reader.lookup("ContactType", "1") == "تلفن ثابت"


async def test_concurrent_questions_load_a_terminology_once(
    client: maxa.MaxaClient, snapshot_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SnapshotStore.open(snapshot_path) as store:
        await store.pull(client, "ContactType")
    loads: list[str] = []
    real_load = snapshot_db.Database.load

    def counting_load(self: snapshot_db.Database, key: str) -> object:
        loads.append(key)
        return real_load(self, key)

    monkeypatch.setattr(snapshot_db.Database, "load", counting_load)
    async with SnapshotStore.open(snapshot_path) as store:
        values = await asyncio.gather(*(store.lookup("contactTYPE", "1") for _ in range(20)))
        assert set(values) == {"تلفن منزل"}
        misses = await asyncio.gather(
            *(store.lookup("ICD10", "A00") for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(m, NoSnapshotError) for m in misses)
    assert loads == ["contacttype", "icd10"]


async def test_concurrent_pulls_of_one_terminology_take_turns(
    client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    first, second = await asyncio.gather(
        store.pull(client, "ContactType"), store.pull(client, "contacttype")
    )
    assert (first.added, first.previous_version) == (14, None)
    assert (second.unchanged, second.previous_version) == (14, "1")
    assert (await store.info("ContactType")).term_count == 14


def test_validate_many_sync_loads_from_the_file_without_a_loop(snapshot_path: Path) -> None:
    async def prepare() -> SnapshotStore:
        store = await SnapshotStore.open(snapshot_path)
        # a snapshot written by hand through the public pieces: a pull from a tiny source
        summary = await store.pull(_TinySource(), "Tiny")
        assert (summary.terms, summary.skipped) == (1, 1)  # the blank code is skipped
        await store.reload()  # memory empty: the sync path must load from the file
        return store

    loop = asyncio.new_event_loop()
    try:
        store = loop.run_until_complete(prepare())
        items = [maxa.CodedText("one", "TINY", "1"), maxa.CodedText("two", "tiny", "1")]
        assert [o.valid for o in store.validate_many_sync(items)] == [True, False]
        loop.run_until_complete(store.aclose())
    finally:
        loop.close()


class _TinySource:
    """A TermSource that is not a MaxaClient: pull needs only the three methods."""

    base_url = "https://example.invalid"

    async def terminology_versions(self, terminology_id: str) -> list[maxa.TerminologyVersion]:
        return [maxa.TerminologyVersion(1, terminology_id, "v1", 1, True)]

    async def terminologies_term_by_version(
        self, terminology_id: str, *, version: str
    ) -> list[maxa.CodedText]:
        return [maxa.CodedText("one", terminology_id, "1"), maxa.CodedText("x", "Tiny", " ")]

    async def search_terminology(self, terminology_id: str, since: object) -> list[maxa.CodedText]:
        return []
