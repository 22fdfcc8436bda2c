"""Soak: 200,000 validations through ``validate_many`` against a sick fake gateway.

The fake runs in its own process (``python -m maxa_async.testing --port 0
--error-rate 0.03 --drop-rate 0.01 --token-ttl 5``): 3% of MAXA requests answer a 5xx,
1% have their connection dropped, and the token dies every 5 seconds (refresh-ahead
and 401 replays all along). Every item's right answer is known: valid items are the
fake's own eRx terms (fetched with TerminologiesTermByVersion), invalid ones the same
terms with a changed value.

Checked: zero lost outcomes (one per item, in input order), every outcome correct (no
error after retries, ``valid`` as expected). Sampled at the end of each quarter and
printed: open file descriptors and sockets of this process, the connector's open
connections, RSS and (with ``--tracemalloc``) Python heap; then first quarter vs last.
Exits 1 if an outcome is lost or wrong, or if sockets or memory grew from the first
quarter to the last beyond the slack. Bounded: ``--count`` items, ``--max-seconds``
wall time; the fake process is always terminated. Not part of the test suite.

    .venv/bin/python benchmarks/soak.py                 # 200,000 items
    .venv/bin/python benchmarks/soak.py --count 20000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import credentials, gateway_process, gateway_stats

import maxa_async as maxa

#: Growth from the first quarter's sample to the last that still counts as flat.
RSS_SLACK_MB = 32.0
HEAP_SLACK_MB = 8.0
SOCKET_SLACK = 8


def items(terms: Sequence[maxa.CodedText], count: int) -> Iterator[tuple[maxa.CodedText, bool]]:
    """Item i: term i (cycling); every fifth one with a changed value, so invalid."""
    for i in range(count):
        term = terms[(i * 7919) % len(terms)]  # a stride, so neighbours differ
        if i % 5 == 0:
            yield (
                maxa.CodedText(term.value + " [changed]", term.terminology_id, term.coded_string),
                False,
            )
        else:
            yield term, True


def sample(client: maxa.MaxaClient, done: int, started: float) -> dict[str, Any]:
    gc.collect()
    fds = os.listdir("/proc/self/fd")
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                sockets += 1
    rss_kb = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    session = client._transport.session  # the pool: how many connections it holds
    connector = session.connector if session is not None else None
    connections = 0
    if connector is not None:
        connections = sum(len(v) for v in getattr(connector, "_conns", {}).values())
        connections += len(getattr(connector, "_acquired", ()))
    heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    return {
        "done": done,
        "seconds": round(time.monotonic() - started, 1),
        "fds": len(fds),
        "sockets": sockets,
        "pool_connections": connections,
        "rss_mb": round(rss_kb / 1024, 1),
        "heap_mb": None if heap is None else round(heap / 2**20, 2),
    }


async def soak(args: argparse.Namespace) -> int:
    knobs = [
        "--error-rate", str(args.error_rate),
        "--drop-rate", str(args.drop_rate),
        "--token-ttl", str(args.token_ttl),
        "--seed", "20260101",
    ]  # fmt: skip
    with gateway_process(*knobs) as info:
        creds = credentials(info)
        policy = maxa.RetryPolicy(attempts=args.attempts, deadline=60.0, max_delay=0.5)
        async with maxa.MaxaClient(
            creds,
            base_url=info["base_url"],
            max_concurrency=args.concurrency,
            retry=policy,
            timeout=10.0,
        ) as client:
            terms = await client.terminologies_term_by_version("eRx", version="10000")
            print(f"gateway {info['base_url']}: eRx 10000 has {len(terms):,} terms", flush=True)
            # items in flight and their answers: a queue, so memory stays flat
            expected: collections.deque[tuple[maxa.CodedText, bool]] = collections.deque()

            def source() -> Iterator[maxa.CodedText]:
                for item, valid in items(terms, args.count):
                    expected.append((item, valid))
                    yield item

            if args.tracemalloc:
                tracemalloc.start()
            quarters = {args.count * q // 4 for q in (1, 2, 3, 4)}
            samples: list[dict[str, Any]] = []
            lost_or_wrong: list[str] = []
            started = time.monotonic()
            done = 0
            deadline = started + args.max_seconds
            async for outcome in client.validate_many(source()):
                item, valid = expected.popleft()
                done += 1
                if outcome.item is not item:
                    lost_or_wrong.append(f"#{done}: out of order")
                elif outcome.error is not None:
                    lost_or_wrong.append(
                        f"#{done}: {type(outcome.error).__name__}: {outcome.error}"
                    )
                elif outcome.valid is not valid:
                    lost_or_wrong.append(f"#{done}: valid={outcome.valid}, expected {valid}")
                if done in quarters:
                    samples.append(sample(client, done, started))
                    print("quarter", len(samples), json.dumps(samples[-1]), flush=True)
                if time.monotonic() > deadline:
                    print(f"stopped at --max-seconds after {done:,} items", flush=True)
                    break
            elapsed = time.monotonic() - started
            if args.tracemalloc:
                tracemalloc.stop()
            stats = client.stats.as_dict()
        fake = await gateway_stats(info)

    lost = args.count - done
    print()
    print(f"items {args.count:,}  outcomes {done:,}  lost {lost:,}  wrong {len(lost_or_wrong):,}")
    print(f"elapsed {elapsed:.1f} s, {done / elapsed:,.0f} validations/s")
    print(
        "client: requests {requests_total:,}, retries {retries}, 401 replays "
        "{replays_after_401:,}, password grants {password_grants}, refresh grants "
        "{refresh_grants}, failed grants {failed_grants}".format(**stats)
    )
    print(
        "fake gateway: requests {requests:,}, dropped {dropped:,}, statuses {statuses}".format(
            requests=fake.get("requests", 0),
            dropped=fake.get("dropped", 0),
            statuses=fake.get("responses_by_status", {}),
        )
    )
    for problem in lost_or_wrong[:10]:
        print("  ", problem)
    ok = lost == 0 and not lost_or_wrong
    if len(samples) == 4:
        first, last = samples[0], samples[-1]
        print()
        print(f"{'':>18} {'first quarter':>14} {'last quarter':>14}")
        for key in ("fds", "sockets", "pool_connections", "rss_mb", "heap_mb"):
            print(f"{key:>18} {first[key]!s:>14} {last[key]!s:>14}")
        flat = (
            last["sockets"] <= first["sockets"] + SOCKET_SLACK
            and last["rss_mb"] <= first["rss_mb"] + RSS_SLACK_MB
            and (last["heap_mb"] is None or last["heap_mb"] <= first["heap_mb"] + HEAP_SLACK_MB)
        )
        print("sockets and memory flat:", "yes" if flat else "NO")
        ok = ok and flat
    else:
        ok = False
    print("SOAK", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--error-rate", type=float, default=0.03)
    parser.add_argument("--drop-rate", type=float, default=0.01)
    parser.add_argument("--token-ttl", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap")
    args = parser.parse_args(argv)
    if args.count < 4:
        parser.error("--count must be at least 4")
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
