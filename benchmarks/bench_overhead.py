"""The client's own cost per call, with the network taken out.

The transport is replaced by an in-memory one that answers every ValidateCts at once
(one event-loop turn, like a socket read), so what is left is our hot path: building the
request, the limiter, the token, coalescing, parsing the envelope, validate_many's window.
Two baselines, the least any asyncio client pays: a pool of 64 workers (the shape of
validate_many and of bench_client's raw baseline), and gather() under a Semaphore (the
shape of gather(validate_cts)).

    .venv/bin/python benchmarks/bench_overhead.py [--items 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

import maxa_async as maxa

BODY = (
    b'{"result":{"data":"true","status":{"statusCode":200}},'
    b'"status":{"statusCode":200,"message":"OK"}}'
)
HEADERS = CIMultiDictProxy(CIMultiDict({"requestId": "bench"}))


async def in_memory(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    operation: str,
    attempt_limit: float | None = None,
    task: asyncio.Task[Any] | None = None,
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    await asyncio.sleep(0)
    return 200, HEADERS, BODY


def make_client() -> maxa.MaxaClient:
    creds = maxa.Credentials(client_id="c", client_secret="s", username="u", password="p", pid="x")
    client = maxa.MaxaClient(creds, base_url="http://127.0.0.1:9", max_concurrency=64)
    client._transport.request = in_memory  # type: ignore[method-assign]
    client._tokens._use(
        maxa.Token(
            access_token="t",
            refresh_token="r",
            token_type="bearer",
            scope=None,
            expires_at=time.time() + 900,
            lifetime=900,
        )
    )
    return client


async def run(count: int, profile: bool) -> None:
    items = [
        maxa.CodedText(value=f"value {i}", terminology_id="eRx", coded_string=str(i))
        for i in range(count)
    ]
    rows = []

    source = iter(items)

    async def worker() -> None:
        for _ in source:
            await in_memory("POST", "/", {}, b"", operation="x")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(64)))
    workers = (time.perf_counter() - started) / count * 1e6
    rows.append(["baseline: 64 workers, no client", f"{workers:.1f}", "-"])

    semaphore = asyncio.Semaphore(64)

    async def bare(_: maxa.CodedText) -> object:
        async with semaphore:
            return await in_memory("POST", "/", {}, b"", operation="x")

    started = time.perf_counter()
    await asyncio.gather(*(bare(item) for item in items))
    base = (time.perf_counter() - started) / count * 1e6
    rows.append(["baseline: gather + Semaphore(64), no client", f"{base:.1f}", "-"])

    client = make_client()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    async for _ in client.validate_many(items):
        pass
    many = (time.perf_counter() - started) / count * 1e6
    if profiler:
        profiler.disable()
    rows.append(["ours: validate_many", f"{many:.1f}", f"{many - workers:+.1f} (vs workers)"])

    client = make_client()
    started = time.perf_counter()
    await asyncio.gather(*(client.validate_cts(item) for item in items))
    gathered = (time.perf_counter() - started) / count * 1e6
    rows.append(
        ["ours: gather(validate_cts)", f"{gathered:.1f}", f"{gathered - base:+.1f} (vs gather)"]
    )

    print(f"\n{count:,} ValidateCts through an in-memory transport, concurrency 64")
    print(table(["path", "us per call", "vs baseline"], rows))
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--profile", action="store_true", help="cProfile validate_many")
    args = parser.parse_args()
    asyncio.run(run(args.items, args.profile))


if __name__ == "__main__":
    main()
