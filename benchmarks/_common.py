"""Shared pieces of the benchmarks: a fake gateway in its own process, items, a table."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp

import maxa_async as maxa


@contextlib.contextmanager
def gateway_process(*knobs: str, pin: bool = False) -> Iterator[dict[str, Any]]:
    """``python -m maxa_async.testing --port 0 KNOBS`` in its own process (its own core).

    ``pin``: the gateway on the last CPU and this process on the first (Linux, 2+ CPUs),
    so neither steals the other's core: steadier client CPU figures on a noisy machine.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = pin and len(cpus) >= 2
    proc = subprocess.Popen(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0", *knobs],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[-1]})) if pin else None,
    )
    if pin:
        os.sched_setaffinity(0, {cpus[0]})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake gateway did not start")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def credentials(info: dict[str, Any]) -> maxa.Credentials:
    return maxa.Credentials(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        username=info["username"],
        password=info["password"],
        pid=info["pid"],
    )


async def set_config(info: dict[str, Any], **knobs: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(info["base_url"] + "/__config", json=knobs) as response,
    ):
        response.raise_for_status()


async def gateway_stats(info: dict[str, Any], *, reset: bool = False) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(info["base_url"] + "/__stats") as response:
            stats: dict[str, Any] = await response.json()
        if reset:
            async with session.post(info["base_url"] + "/__stats/reset") as response:
                response.raise_for_status()
    return stats


async def warm_up(info: dict[str, Any]) -> None:
    """Have a fresh gateway generate its eRx lists now (it does on first use, which takes
    a good part of a second), then zero its counts: a timed run then measures the client,
    not the gateway's cold start."""
    async with maxa.MaxaClient(credentials(info), base_url=info["base_url"]) as client:
        await client.terminology_versions("eRx")
    await gateway_stats(info, reset=True)


async def erx_terms(info: dict[str, Any]) -> list[maxa.CodedText]:
    async with maxa.MaxaClient(credentials(info), base_url=info["base_url"]) as client:
        versions = await client.terminology_versions("eRx")
        latest = next(v for v in versions if v.is_last)
        return await client.terminologies_term_by_version("eRx", version=latest.version)


def make_items(
    terms: Sequence[maxa.CodedText],
    count: int,
    *,
    invalid_share: float = 0.08,
    distinct: int | None = None,
    zipf: float | None = None,
    seed: int = 1,
) -> list[maxa.CodedText]:
    """``count`` items over ``terms``: distinct in order, or Zipf-drawn from ``distinct``
    codes; ``invalid_share`` of them carry a wrong value."""
    rng = random.Random(seed)
    pool = list(terms[:distinct]) if distinct else list(terms)
    if zipf:
        weights = [1.0 / (rank + 1) ** zipf for rank in range(len(pool))]
        chosen = rng.choices(pool, weights=weights, k=count)
    else:
        chosen = [pool[i % len(pool)] for i in range(count)]
    items = []
    for term in chosen:
        if rng.random() < invalid_share:
            term = maxa.CodedText(
                value=term.value + " X",
                terminology_id=term.terminology_id,
                coded_string=term.coded_string,
            )
        items.append(term)
    return items


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
