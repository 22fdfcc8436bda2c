"""A pull that fails or is cancelled midway leaves the previous snapshot intact and
answering, in memory and in the file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import maxa_async as maxa
from maxa_async.snapshot import SnapshotError, SnapshotStore
from maxa_async.snapshot import _db as snapshot_db
from maxa_async.testing import FakeGateway, Term

NEW_VERSION = [Term("1", "تلفن ثابت منزل"), Term("99", "کبوتر نامه‌بر")]


async def _previous_snapshot(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    """ContactType "1" in the store; the gateway then makes "2" (changed and new) latest."""
    await store.pull(client, "ContactType")
    gateway.add_version("ContactType", "2", NEW_VERSION, inherit=True)


async def _assert_previous_intact(store: SnapshotStore, path: Path) -> None:
    assert (await store.info("ContactType")).version == "1"
    assert await store.lookup("ContactType", "1") == "تلفن منزل"
    assert await store.lookup("ContactType", "99") is None
    assert await store.validate(maxa.CodedText("تلفن منزل", "ContactType", "1"))
    async with SnapshotStore.open(path, create=False) as other:  # what the file says
        info = await other.info("ContactType")
        assert (info.version, info.term_count) == ("1", 14)
        assert await other.lookup("ContactType", "1") == "تلفن منزل"
        assert await other.lookup("ContactType", "99") is None


async def _wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_cancelled_while_fetching_the_terms(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore, snapshot_path: Path
) -> None:
    await _previous_snapshot(gateway, client, store)
    gateway.config.latency = 30.0
    by_operation = gateway.stats.requests_by_operation

    task = asyncio.create_task(store.pull(client, "ContactType"))
    await _wait_for(lambda: by_operation.get("TerminologiesTermByVersion") == 1)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    gateway.config.latency = 0.0
    await _assert_previous_intact(store, snapshot_path)
    summary = await store.pull(client, "ContactType")  # the store still works
    assert (summary.version, summary.terms, summary.added, summary.changed) == ("2", 15, 1, 1)


async def test_gateway_fails_the_terms_fetch(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore, snapshot_path: Path
) -> None:
    await _previous_snapshot(gateway, client, store)

    class FailsAfterVersions:
        """The real client; the gateway starts failing once the versions are listed."""

        base_url = client.base_url

        async def terminology_versions(self, terminology_id: str) -> Any:
            versions = await client.terminology_versions(terminology_id)
            gateway.config.error_rate = 1.0
            return versions

        async def terminologies_term_by_version(self, terminology_id: str, *, version: str) -> Any:
            return await client.terminologies_term_by_version(terminology_id, version=version)

        async def search_terminology(self, terminology_id: str, since: Any) -> Any:
            raise AssertionError("not called by pull")

    with pytest.raises(maxa.ServiceError):
        await store.pull(FailsAfterVersions(), "ContactType")
    assert gateway.stats.requests_by_operation["TerminologiesTermByVersion"] == 1 + 5  # 5 tries

    await _assert_previous_intact(store, snapshot_path)
    with pytest.raises(maxa.ServiceError):  # the versions call itself failing
        await store.sync(client, "ContactType")
    gateway.config.error_rate = 0.0
    await _assert_previous_intact(store, snapshot_path)


async def test_write_fails_midway(
    gateway: FakeGateway,
    client: maxa.MaxaClient,
    store: SnapshotStore,
    snapshot_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _previous_snapshot(gateway, client, store)
    monkeypatch.setattr(snapshot_db, "_CHUNK", 4)  # 15 terms: 4 chunks
    chunks: list[int] = []
    real_insert = snapshot_db.Database._insert

    def failing_insert(self: snapshot_db.Database, rows: Iterable[tuple[str, str, str]]) -> None:
        chunks.append(1)
        if len(chunks) == 3:
            raise sqlite3.OperationalError("disk I/O error")
        real_insert(self, rows)

    monkeypatch.setattr(snapshot_db.Database, "_insert", failing_insert)

    with pytest.raises(SnapshotError, match="disk I/O error") as caught:
        await store.pull(client, "ContactType")

    assert caught.value.path == str(snapshot_path)
    assert len(chunks) == 3  # two chunks were written, then rolled back
    await _assert_previous_intact(store, snapshot_path)


async def test_cancelled_while_writing(
    gateway: FakeGateway,
    client: maxa.MaxaClient,
    store: SnapshotStore,
    snapshot_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _previous_snapshot(gateway, client, store)
    monkeypatch.setattr(snapshot_db, "_CHUNK", 4)
    writing = threading.Event()
    release = threading.Event()
    chunks: list[int] = []
    real_insert = snapshot_db.Database._insert

    def slow_insert(self: snapshot_db.Database, rows: Iterable[tuple[str, str, str]]) -> None:
        chunks.append(1)
        real_insert(self, rows)
        if len(chunks) == 2:
            writing.set()
            release.wait(10)

    monkeypatch.setattr(snapshot_db.Database, "_insert", slow_insert)

    task = asyncio.create_task(store.pull(client, "ContactType"))
    await _wait_for(writing.is_set)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # it waits for the thread to roll back, not leaving it behind
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(chunks) == 2  # the cancel was seen before the third chunk
    await _assert_previous_intact(store, snapshot_path)
