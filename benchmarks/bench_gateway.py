"""How fast is the fake gateway? Raw aiohttp load on ``python -m maxa_async.testing``.

Starts the fake in its own process (so it has a core of its own), takes one token,
then drives ValidateCts with plain aiohttp (not our client) at a fixed concurrency
for a bounded number of requests, and prints requests/second and latency. Stops by
itself: the fake process is terminated at the end, or on any failure.

    .venv/bin/python benchmarks/bench_gateway.py [--requests 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp

OPERATIONS = "/api/client/apim/v1/maksaservice/gwmaksa/"


def start_gateway() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the fake gateway did not start")
    return process, json.loads(line)


def stop_gateway(process: subprocess.Popen[str]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


async def get_token(session: aiohttp.ClientSession, info: dict[str, Any]) -> str:
    form = {"grant_type": "password", "username": info["username"], "password": info["password"]}
    headers = {"Authorization": aiohttp.encode_basic_auth(info["client_id"], info["client_secret"])}
    async with session.post(info["base_url"] + "/oauth/token", data=form, headers=headers) as r:
        r.raise_for_status()
        token: str = (await r.json())["access_token"]
        return token


async def fetch_erx_sample(
    session: aiohttp.ClientSession, info: dict[str, Any], headers: dict[str, str], count: int
) -> list[dict[str, str]]:
    body = json.dumps({"terminologyId": "eRx", "version": "10000"})
    url = info["base_url"] + OPERATIONS + "TerminologiesTermByVersion"
    async with session.post(url, data=body, headers=headers) as r:
        items: list[dict[str, str]] = (await r.json())["result"]["data"]
    step = max(1, len(items) // count)
    return items[::step][:count]


def validate_bodies(terms: Sequence[dict[str, str]]) -> list[bytes]:
    """Mostly valid lines, every tenth with a wrong value (answered "false")."""
    bodies = []
    for index, term in enumerate(terms):
        coded = dict(term)
        if index % 10 == 9:
            coded["valueField"] += " X"
        bodies.append(json.dumps({"DoCodedText": coded}, ensure_ascii=False).encode())
    return bodies


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    bodies: Sequence[bytes],
    total: int,
    concurrency: int,
) -> tuple[float, list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            async with session.post(url, data=bodies[index % len(bodies)], headers=headers) as r:
                await r.read()
                statuses[r.status] += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies, statuses


def row(name: str, total: int, concurrency: int, seconds: float, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return (
        f"{name:<28} {total:>9,} {concurrency:>6} {seconds:>8.2f} "
        f"{total / seconds:>10,.0f} {p50:>8.2f} {p99:>8.2f}"
    )


async def run(total: int, concurrency: int) -> None:
    process, info = start_gateway()
    try:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            token = await get_token(session, info)
            headers = {
                "Authorization": f"Bearer {token}",
                "pid": info["pid"],
                "Content-Type": "application/json",
            }
            terms = await fetch_erx_sample(session, info, headers, 2_000)
            bodies = validate_bodies(terms)
            url = info["base_url"] + OPERATIONS + "ValidateCts"
            await drive(session, url, headers, bodies, 500, concurrency)  # warm up
            async with session.post(info["base_url"] + "/__stats/reset") as r:
                r.raise_for_status()
            seconds, latencies, statuses = await drive(
                session, url, headers, bodies, total, concurrency
            )
            async with session.get(info["base_url"] + "/__stats") as r:
                stats = await r.json()
        print(
            f"{'scenario':<28} {'requests':>9} {'conc.':>6} {'seconds':>8} "
            f"{'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
        )
        print(row("ValidateCts (raw aiohttp)", total, concurrency, seconds, latencies))
        print(
            f"\nstatuses seen: {dict(statuses)}; the fake counted "
            f"{stats['requests_by_operation'].get('ValidateCts', 0)} ValidateCts, "
            f"peak in flight {stats['peak_in_flight']}"
        )
        if statuses.get(200, 0) != total:
            raise SystemExit("some requests did not succeed")
    finally:
        code = stop_gateway(process)
        print(f"fake gateway exited with {code}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    asyncio.run(run(args.requests, args.concurrency))


if __name__ == "__main__":
    main()
