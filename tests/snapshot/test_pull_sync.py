"""Pull and sync against the fake gateway: counts, versions, metadata, persistence."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest

import maxa_async as maxa
from maxa_async.snapshot import NoSnapshotError, SnapshotStore
from maxa_async.testing import FakeGateway, Term


def _version_terms(gateway: FakeGateway, terminology: str, version: str) -> dict[str, str]:
    return {t.code: t.value for t in gateway.data.terms(terminology, version)}


async def test_pull_latest_erx_holds_every_term_of_the_version(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    expected = _version_terms(gateway, "eRx", "10000")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)

    summary = await store.pull(client, "eRx")

    assert len(expected) == 50_000
    assert (summary.version, summary.version_id, summary.terms) == ("10000", 86, len(expected))
    assert (summary.added, summary.changed, summary.removed, summary.skipped) == (50_000, 0, 0, 0)
    assert summary.previous_version is None
    assert 0 < summary.fetch_seconds <= summary.seconds
    assert gateway.stats.requests_by_operation == {
        "TerminologyVersions": 1,
        "TerminologiesTermByVersion": 1,
    }
    info = await store.info(" ERX ")
    assert (info.key, info.terminology_id, info.version, info.term_count) == (
        "erx",
        "eRx",
        "10000",
        50_000,
    )
    assert info.base_url == gateway.base_url
    assert before <= info.pulled_at == info.synced_at <= dt.datetime.now(dt.UTC)
    assert info.synced_at_jalali == maxa.JalaliDateTime.from_datetime(info.synced_at)
    assert info.synced_at_jalali.year >= 1403
    index = await store.index("eRx")
    assert dict(index.items()) == expected


async def test_pull_named_version_then_sync_moves_to_latest_with_exact_diff(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    old = _version_terms(gateway, "eRx", "1000")
    new = _version_terms(gateway, "eRx", "10000")

    pulled = await store.pull(client, "eRx", version="1000")
    assert (pulled.version, pulled.terms) == ("1000", len(old)) == ("1000", 46_000)
    changed_code = next(c for c in old if c in new and old[c] != new[c])
    assert await store.lookup("eRx", changed_code) == old[changed_code]

    synced = await store.sync(client, "eRx")

    assert synced.repulled and synced.since is None
    assert (synced.previous_version, synced.version, synced.terms) == ("1000", "10000", 50_000)
    assert synced.added == len(new.keys() - old.keys())
    assert synced.removed == len(old.keys() - new.keys())
    assert synced.changed == sum(1 for c in old.keys() & new.keys() if old[c] != new[c])
    assert synced.unchanged == len(new) - synced.added - synced.changed
    assert synced.added > 0 and synced.removed > 0 and synced.changed > 0
    assert await store.lookup("eRx", changed_code) == new[changed_code]
    removed_code = next(iter(old.keys() - new.keys()))
    assert await store.lookup("eRx", removed_code) is None


async def test_sync_counts_exactly_what_the_gateway_gained_and_changed(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, "ContactType")
    pulled = await store.info("ContactType")
    gateway.add_terms("ContactType", [Term("15", "تلفن ماهواره‌ای"), Term("16", "تلکس")])
    gateway.change_term("ContactType", "3", "تلفن همراه")

    first = await store.sync(client, "contacttype")

    assert not first.repulled
    margin = dt.timedelta(minutes=5)
    assert first.since == maxa.JalaliDateTime.from_datetime(pulled.synced_at - margin)
    assert (first.received, first.added, first.changed, first.unchanged) == (3, 2, 1, 0)
    assert (first.removed, first.terms, first.version) == (0, 16, "1")
    assert await store.lookup("ContactType", "15") == "تلفن ماهواره‌ای"
    assert await store.lookup("ContactType", "3") == "تلفن همراه"
    assert await store.validate(maxa.CodedText("تلفن همراه", "ContactType", "3"))
    info = await store.info("ContactType")
    assert info.term_count == 16 and info.synced_at >= pulled.synced_at
    assert info.pulled_at == pulled.pulled_at

    # Within the safety margin the same terms come back: seen, counted unchanged.
    second = await store.sync(client, "ContactType")
    assert (second.received, second.added, second.changed, second.unchanged) == (3, 0, 0, 3)

    gateway.add_terms("ContactType", [Term("17", "پیامرسان")])
    gateway.change_term("ContactType", "15", "تلفن ماهواره ای")
    last = await store.info("ContactType")
    third = await store.sync(client, "ContactType", margin=0)
    assert third.since == last.synced_at_jalali
    assert (third.added, third.changed) == (1, 1)
    assert third.unchanged == third.received - 2
    assert gateway.stats.requests_by_operation["SearchTerminology"] == 3
    assert gateway.stats.requests_by_operation["TerminologiesTermByVersion"] == 1


async def test_sync_repulls_when_a_new_version_is_last(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, "ContactType")
    gateway.add_version(
        "ContactType",
        "2",
        [Term("3", "تلفن همراه"), Term("20", "ایمیل سازمانی")],
        inherit=True,
    )
    gateway.remove_term("ContactType", "14", version="2")

    summary = await store.sync(client, "ContactType")

    assert summary.repulled and (summary.previous_version, summary.version) == ("1", "2")
    assert (summary.added, summary.changed, summary.removed) == (1, 1, 1)
    assert (summary.unchanged, summary.terms) == (12, 14)
    assert await store.lookup("ContactType", "14") is None
    assert (await store.info("ContactType")).version == "2"


async def test_sync_all_and_nothing_new(
    gateway: FakeGateway, client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, "ContactType")
    await store.pull(client, "thritaEHR.Religion")

    summaries = await store.sync_all(client)

    assert [s.terminology_id for s in summaries] == ["ContactType", "thritaEHR.Religion"]
    assert all((s.received, s.added, s.changed) == (0, 0, 0) for s in summaries)
    assert [s.terms for s in summaries] == [14, 5]


async def test_sync_or_info_of_a_terminology_never_pulled(
    client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    with pytest.raises(NoSnapshotError) as caught:
        await store.sync(client, "ICD10")
    assert isinstance(caught.value, maxa.MaxaError) and isinstance(caught.value, LookupError)
    assert caught.value.terminology_id == "ICD10" and "pull" in str(caught.value)
    with pytest.raises(NoSnapshotError):
        await store.info("ICD10")
    with pytest.raises(NoSnapshotError):
        await store.lookup("ICD10", "A00")


async def test_pull_unknown_version_or_terminology_keeps_the_file_unchanged(
    client: maxa.MaxaClient, store: SnapshotStore
) -> None:
    await store.pull(client, "ICD10")
    with pytest.raises(maxa.NotFoundError, match=r"no version '9' of 'ICD10'.*2016"):
        await store.pull(client, "ICD10", version="9")
    with pytest.raises(maxa.NotFoundError):
        await store.pull(client, "NoSuchTerminology")
    assert [i.key for i in await store.snapshots()] == ["icd10"]


async def test_snapshot_survives_reopening(
    gateway: FakeGateway, client: maxa.MaxaClient, snapshot_path: Path
) -> None:
    async with SnapshotStore.open(snapshot_path) as store:
        await store.pull(client, "thritaEHR.Religion")
        before = await store.info("thritaEHR.Religion")
    wal = await asyncio.to_thread(os.path.exists, f"{snapshot_path}-wal")
    assert not wal  # checkpointed on close: one file to copy

    store = await SnapshotStore.open(snapshot_path, create=False)
    try:
        assert await store.info("THRITAEHR.RELIGION") == before
        assert await store.lookup("thritaEHR.Religion", "1") == "اسلام"
        assert gateway.stats.requests_by_operation.get("Terminology") is None
    finally:
        await store.aclose()
    assert store.closed


async def test_drop_removes_one_terminology(client: maxa.MaxaClient, store: SnapshotStore) -> None:
    await store.pull(client, "ContactType")
    await store.pull(client, "ICD10")
    assert await store.drop("contacttype") is True
    assert await store.drop("contacttype") is False
    assert [i.key for i in await store.snapshots()] == ["icd10"]
    with pytest.raises(NoSnapshotError):
        await store.lookup("ContactType", "1")
