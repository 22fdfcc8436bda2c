"""Offline snapshots against the online path, in the same run (issue 7).

    .venv/bin/python benchmarks/bench_snapshot.py            # ~30 s
    .venv/bin/python benchmarks/bench_snapshot.py --quick    # smaller counts

The fake gateway runs in its own process (``python -m maxa_async.testing --port 0``).
Measured:
  pull      TerminologyVersions + TerminologiesTermByVersion of the 50,000-code eRx into
            a fresh SQLite file: seconds (fetch and write) and file size
  offline   SnapshotStore.validate_many_sync and validate_many over 1,000,000 items
            (eRx codes, 8% with a wrong value): items/second
  online    MaxaClient.validate_many over 10,000 distinct items, max_concurrency 64
  hybrid    HybridValidator over 100,000 items, 1% of them codes the snapshot lacks
Targets: offline >= 300,000 items/s and >= 100x online.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import credentials, gateway_process, gateway_stats, make_items, table

import maxa_async as maxa
from maxa_async.snapshot import HybridValidator, SnapshotStore


def _client(info: dict[str, Any]) -> maxa.MaxaClient:
    return maxa.MaxaClient(credentials(info), base_url=info["base_url"], max_concurrency=64)


def _count_sync(outcomes: Iterable[maxa.ValidationOutcome]) -> tuple[int, int]:
    valid = errors = 0
    for outcome in outcomes:
        if outcome.valid:
            valid += 1
        elif outcome.error is not None:
            errors += 1
    return valid, errors


async def _count_async(outcomes: AsyncIterator[maxa.ValidationOutcome]) -> tuple[int, int]:
    valid = errors = 0
    async for outcome in outcomes:
        if outcome.valid:
            valid += 1
        elif outcome.error is not None:
            errors += 1
    return valid, errors


def _best(runs: int, measure: Callable[[], tuple[float, tuple[int, int]]]) -> tuple[float, int]:
    """The fastest of ``runs`` (seconds, valid count); the valid count must not vary."""
    timings = []
    valids = set()
    for _ in range(runs):
        gc.collect()
        seconds, (valid, errors) = measure()
        assert errors == 0, f"{errors} outcomes ended in errors"
        timings.append(seconds)
        valids.add(valid)
    assert len(valids) == 1, valids
    return min(timings), valids.pop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--offline-items", type=int, default=1_000_000)
    parser.add_argument("--online-items", type=int, default=10_000)
    parser.add_argument("--hybrid-items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="offline repetitions (best kept)")
    args = parser.parse_args()
    if args.quick:
        args.offline_items, args.online_items, args.hybrid_items = 200_000, 2_000, 20_000
        args.runs = 1

    with gateway_process() as info, tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "maxa.db")
        async with _client(info) as client:
            # ---------------------------------------------------------------- pull
            async with SnapshotStore.open(path) as store:
                pulled = await store.pull(client, "eRx")
            size = await asyncio.to_thread(os.path.getsize, path)
            print(
                f"\n[pull] eRx version {pulled.version}: {pulled.terms:,} terms in "
                f"{pulled.seconds:.2f} s (fetch {pulled.fetch_seconds:.2f} s, write "
                f"{pulled.seconds - pulled.fetch_seconds:.2f} s); file {size / 1e6:.1f} MB "
                f"({size / pulled.terms:.0f} bytes/term)"
            )

            async with SnapshotStore.open(path) as store:
                index = await store.index("eRx")
                terms = index.terms()
                offline_items = make_items(terms, args.offline_items, seed=1)
                online_items = make_items(terms, args.online_items, seed=2)

                # ------------------------------------------------------------ offline
                def sync_run() -> tuple[float, tuple[int, int]]:
                    started = time.perf_counter()
                    counts = _count_sync(store.validate_many_sync(offline_items))
                    return time.perf_counter() - started, counts

                sync_seconds, sync_valid = _best(args.runs, sync_run)

                async_timings = []
                async_valid = set()
                for _ in range(args.runs):
                    gc.collect()
                    started = time.perf_counter()
                    valid, errors = await _count_async(store.validate_many(offline_items))
                    async_timings.append(time.perf_counter() - started)
                    assert errors == 0
                    async_valid.add(valid)
                async_seconds = min(async_timings)
                assert async_valid == {sync_valid}

                # ------------------------------------------------------------ online
                await client.terminology("eRx", "60002")  # token and pool warm
                await gateway_stats(info, reset=True)
                started = time.perf_counter()
                online_valid, online_errors = await _count_async(client.validate_many(online_items))
                online_seconds = time.perf_counter() - started
                sent = (await gateway_stats(info))["requests_by_operation"].get("ValidateCts", 0)
                assert online_errors == 0, f"{online_errors} online outcomes ended in errors"
                offline_check = _count_sync(store.validate_many_sync(online_items))
                assert offline_check == (online_valid, 0), "offline and online answers differ"

                # ------------------------------------------------------------ hybrid
                old = await client.terminologies_term_by_version("eRx", version="1000")
                gone = [t for t in old if t.coded_string not in index]  # dropped in 10000
                hybrid_items = make_items(terms, args.hybrid_items, seed=3)
                misses = max(1, args.hybrid_items // 100)
                for i in range(misses):
                    hybrid_items[i * 100] = gone[i % len(gone)]
                hybrid = HybridValidator(store, client)
                gc.collect()
                started = time.perf_counter()
                await _count_async(hybrid.validate_many(hybrid_items))
                hybrid_seconds = time.perf_counter() - started
                stats = hybrid.stats
                assert stats.online_calls == stats.code_misses == misses, stats

    online_rate = args.online_items / online_seconds
    rows = [
        ["offline validate_many_sync", args.offline_items, sync_seconds],
        ["offline validate_many (async)", args.offline_items, async_seconds],
        [f"hybrid ({misses:,} misses online)", args.hybrid_items, hybrid_seconds],
        ["online validate_many (c=64)", args.online_items, online_seconds],
    ]
    print(
        f"\n[validate] eRx {pulled.terms:,} codes; offline/hybrid items 8% wrong values; "
        f"online: {sent:,} ValidateCts requests"
    )
    print(
        table(
            ["path", "items", "seconds", "items/s", "x online"],
            [
                [
                    name,
                    f"{count:,}",
                    f"{seconds:.3f}",
                    f"{count / seconds:,.0f}",
                    f"{count / seconds / online_rate:,.0f}x",
                ]
                for name, count, seconds in rows
            ],
        )
    )
    hot = args.offline_items / sync_seconds
    verdicts = [
        (">= 300,000 items/s offline (sync)", hot >= 300_000),
        (">= 300,000 items/s offline (async)", args.offline_items / async_seconds >= 300_000),
        (">= 100x online", hot / online_rate >= 100),
    ]
    print()
    for name, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if not all(ok for _, ok in verdicts):
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
