"""``maxa snapshot pull|sync|info``: whole terminology versions in a local SQLite file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from ..snapshot import (
    LATEST,
    SCHEMA_VERSION,
    PullSummary,
    SnapshotInfo,
    SnapshotStore,
    SyncSummary,
)
from ._errors import ExitCode, UsageProblem
from ._output import Output
from ._session import connect
from ._settings import GlobalOptions, resolve_settings

__all__ = [
    "format_age",
    "format_size",
    "open_existing",
    "run_info",
    "run_pull",
    "run_sync",
    "snapshot_path",
]


def snapshot_path(options: GlobalOptions) -> Path:
    """``--snapshot``, else ``MAXA_SNAPSHOT`` (environment, then ``.env``), else the default."""
    return Path(resolve_settings(options).snapshot)


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _require_file(path: Path) -> None:
    if not _exists(path):
        raise UsageProblem(
            f"no snapshot file at {path}; pull a terminology into it first "
            "(maxa snapshot pull TERMINOLOGY), or name another file with --snapshot PATH "
            "or MAXA_SNAPSHOT"
        )


@contextlib.asynccontextmanager
async def open_existing(path: Path, *, writable: bool = False) -> AsyncIterator[SnapshotStore]:
    """The snapshot file at ``path``, which must exist: read-only (info, validate
    --offline and --hybrid never write to it), or ``writable`` (sync)."""
    _require_file(path)  # one stat: a clearer line than the store's own error
    async with SnapshotStore.open(path, create=False, read_only=not writable) as store:
        yield store


def format_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def format_age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h 5m``, ``4d 2h``: how long ago the snapshot was synced."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _remove_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.unlink(f"{path}{suffix}")


# ---------------------------------------------------------------------------- pull


def _pull_json(summary: PullSummary, path: Path, size: int, base_url: str) -> dict[str, Any]:
    return {
        "snapshot": str(path),
        "terminology": summary.terminology_id,
        "version": summary.version,
        "version_id": summary.version_id,
        "previous_version": summary.previous_version,
        "terms": summary.terms,
        "added": summary.added,
        "changed": summary.changed,
        "removed": summary.removed,
        "unchanged": summary.unchanged,
        "skipped": summary.skipped,
        "seconds": round(summary.seconds, 3),
        "fetch_seconds": round(summary.fetch_seconds, 3),
        "file_size": size,
        "base_url": base_url,
    }


async def run_pull(
    options: GlobalOptions, path: Path, terminology: str, version: str | None, output: Output
) -> int:
    """Fetch a whole version into the file (created if missing), replacing the old one."""
    created = not _exists(path)
    pulled = False
    try:
        async with connect(options) as connection:
            client = connection.client
            async with SnapshotStore.open(path) as store:
                if output.err.is_terminal:  # piped, an error stays the only line on stderr
                    wanted = version or "the latest version"
                    output.note(f"pulling {wanted} of {terminology} from {client.base_url} ...")
                summary = await store.pull(client, terminology, version=version or LATEST)
                pulled = True
                size = store.file_size()
    finally:
        if created and not pulled:
            _remove_file(path)  # a first pull that failed leaves no empty file behind
    if output.json_mode:
        output.json(_pull_json(summary, path, size, client.base_url))
        return ExitCode.OK
    output.line(
        f"pulled {summary.terminology_id} version {summary.version}: {summary.terms:,} terms "
        f"in {summary.seconds:.1f}s into {path} ({format_size(size)})"
    )
    if summary.previous_version is not None:
        output.line(
            f"replaced version {summary.previous_version}: {summary.added:,} added, "
            f"{summary.changed:,} changed, {summary.removed:,} removed, "
            f"{summary.unchanged:,} unchanged"
        )
    if summary.skipped:
        output.note(f"{summary.skipped:,} terms with a blank code were skipped")
    return ExitCode.OK


# ---------------------------------------------------------------------------- sync


def _sync_json(summary: SyncSummary) -> dict[str, Any]:
    return {
        "terminology": summary.terminology_id,
        "version": summary.version,
        "previous_version": summary.previous_version,
        "repulled": summary.repulled,
        "since": str(summary.since) if summary.since is not None else None,
        "received": summary.received,
        "added": summary.added,
        "changed": summary.changed,
        "unchanged": summary.unchanged,
        "removed": summary.removed,
        "terms": summary.terms,
        "seconds": round(summary.seconds, 3),
    }


async def run_sync(
    options: GlobalOptions, path: Path, terminologies: Sequence[str], output: Output
) -> int:
    """Bring the named terminologies (or every one in the file) up to date."""
    async with open_existing(path, writable=True) as store, connect(options) as connection:
        client = connection.client
        named = {name.strip().lower() for name in terminologies}
        for info in await store.snapshots():
            if named and info.key not in named:
                continue
            if info.base_url and info.base_url != client.base_url:
                output.note(
                    f"note: {info.terminology_id} was pulled from {info.base_url}; "
                    f"syncing from {client.base_url}"
                )
        if terminologies:
            summaries = [await store.sync(client, name) for name in terminologies]
        else:
            summaries = await store.sync_all(client)
            if not summaries:
                raise UsageProblem(
                    f"{path} holds no snapshot yet; pull one first: maxa snapshot pull TERMINOLOGY"
                )
    if output.json_mode:
        output.json({"snapshot": str(path), "synced": [_sync_json(s) for s in summaries]})
        return ExitCode.OK
    rows = []
    for s in summaries:
        version = s.version if not s.repulled else f"{s.version} (was {s.previous_version})"
        since = "" if s.since is None else str(s.since)
        rows.append(
            (
                s.terminology_id,
                version,
                s.repulled,
                since,
                f"{s.added:,}",
                f"{s.changed:,}",
                f"{s.unchanged:,}",
                f"{s.removed:,}",
                f"{s.terms:,}",
                f"{s.seconds:.1f}",
            )
        )
    output.table(
        [
            "terminology",
            "version",
            "repulled",
            "since",
            "added",
            "changed",
            "unchanged",
            "removed",
            "terms",
            "seconds",
        ],
        rows,
        title=f"synced {path}",
    )
    return ExitCode.OK


# ---------------------------------------------------------------------------- info


def _info_json(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "terminology": info.terminology_id,
        "version": info.version,
        "version_id": info.version_id,
        "terms": info.term_count,
        "pulled_at": info.pulled_at.isoformat(),
        "synced_at": info.synced_at.isoformat(),
        "synced_at_jalali": str(info.synced_at_jalali),
        "age_s": round(info.age(), 1),
        "base_url": info.base_url,
    }


async def run_info(path: Path, output: Output) -> int:
    """What the file holds; no gateway, no credentials."""
    async with open_existing(path) as store:
        infos = await store.snapshots()
        size = store.file_size()
    if output.json_mode:
        output.json(
            {
                "snapshot": str(path),
                "schema_version": SCHEMA_VERSION,
                "file_size": size,
                "snapshots": [_info_json(info) for info in infos],
            }
        )
        return ExitCode.OK
    caption = (
        f"{path}: {len(infos)} terminolog{'y' if len(infos) == 1 else 'ies'}, "
        f"{format_size(size)}, schema version {SCHEMA_VERSION}"
    )
    if not infos:
        caption += "; pull one with: maxa snapshot pull TERMINOLOGY"
    output.table(
        ["terminology", "version", "terms", "synced (Tehran)", "age", "gateway"],
        (
            (
                info.terminology_id,
                info.version,
                f"{info.term_count:,}",
                str(info.synced_at_jalali),
                format_age(info.age()),
                info.base_url,
            )
            for info in infos
        ),
        caption=caption,
    )
    return ExitCode.OK
