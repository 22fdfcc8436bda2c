"""Throughput of MaxaClient against a raw aiohttp baseline, on the same fake gateway, in
the same run, alternating. Prints one table per scenario with the ratios.

    .venv/bin/python benchmarks/bench_client.py            # all scenarios (~2-3 min)
    .venv/bin/python benchmarks/bench_client.py --quick    # smaller counts

Scenarios (issues 4 and 5):
  plain      20,000 ValidateCts at concurrency 64, no limits, no faults: ours / raw
  ratelimit  gateway capped at R req/s with 429 + Retry-After: ours vs a naive
             fixed-concurrency client that sleeps each worker on its own 429
  zipf       100,000 items drawn Zipf-like from 5,000 codes: ours (coalescing +
             cache) vs raw, items/second
  latency    50 ms per request: ours vs Little's law (concurrency / latency)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    credentials,
    erx_terms,
    gateway_process,
    gateway_stats,
    make_items,
    set_config,
    table,
)

import maxa_async as maxa

if TYPE_CHECKING:  # bench_ratelimit imports this file under an older library too
    from maxa_async.events import ResponseEvent

VALIDATE_PATH = "/api/client/apim/v1/maksaservice/gwmaksa/ValidateCts"


async def raw_token(info: dict[str, Any]) -> str:
    auth = aiohttp.encode_basic_auth(info["client_id"], info["client_secret"])
    form = {"grant_type": "password", "username": info["username"], "password": info["password"]}
    async with aiohttp.ClientSession() as session:
        url = info["base_url"] + "/oauth/token"
        async with session.post(url, data=form, headers={"Authorization": auth}) as r:
            return str((await r.json())["access_token"])


def raw_headers(info: dict[str, Any], token: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "pid": info["pid"],
        "Authorization": f"Bearer {token}",
    }


def raw_body(item: maxa.CodedText) -> bytes:
    """The ValidateCts body as a bare client writes it by hand."""
    return orjson.dumps(
        {
            "DoCodedText": {
                "valueField": item.value,
                "terminology_idField": item.terminology_id,
                "coded_stringField": item.coded_string,
            }
        }
    )


async def raw_validate(
    info: dict[str, Any],
    token: str,
    items: Sequence[maxa.CodedText],
    concurrency: int,
    *,
    naive_429: bool = False,
) -> tuple[float, int, int]:
    """The baseline: one session, a worker pool, a fixed token, no retries (except, with
    ``naive_429``, each worker sleeping out its own Retry-After). Returns
    (seconds, valid count, 429s seen)."""
    headers = raw_headers(info, token)
    url = info["base_url"] + VALIDATE_PATH
    source = iter(items)
    valid = 0
    limited = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal valid, limited
            for item in source:
                body = raw_body(item)
                while True:
                    async with session.post(url, data=body, headers=headers) as response:
                        payload = orjson.loads(await response.read())
                        if response.status == 429 and naive_429:
                            limited += 1
                            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                            continue
                        if payload["result"]["data"] == "true":
                            valid += 1
                        break

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, valid, limited


async def raw_gather(
    info: dict[str, Any], token: str, items: Sequence[maxa.CodedText], concurrency: int
) -> tuple[float, int]:
    """The baseline for gather(validate_cts): one task per item, a Semaphore for the
    concurrency, one session, a fixed token, no retries."""
    headers = raw_headers(info, token)
    url = info["base_url"] + VALIDATE_PATH
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(item: maxa.CodedText) -> bool:
            body = raw_body(item)
            async with semaphore, session.post(url, data=body, headers=headers) as response:
                payload = orjson.loads(await response.read())
                return bool(payload["result"]["data"] == "true")

        started = time.perf_counter()
        results = await asyncio.gather(*(one(item) for item in items))
        return time.perf_counter() - started, sum(results)


async def ours_validate(
    info: dict[str, Any],
    items: Sequence[maxa.CodedText],
    concurrency: int,
    otel: str | None = None,
    **options: Any,
) -> tuple[float, int, maxa.MaxaClient]:
    client = maxa.MaxaClient(
        credentials(info), base_url=info["base_url"], max_concurrency=concurrency, **options
    )
    if otel is not None:
        _instrument(client, otel)
    async with client:
        await client.terminology("thritaEHR.Religion", "1")  # token outside the timing
        started = time.perf_counter()
        valid = 0
        errors = 0
        async for outcome in client.validate_many(items):
            if outcome.valid:
                valid += 1
            elif outcome.error is not None:
                errors += 1
        elapsed = time.perf_counter() - started
    if errors:
        print(f"  !! {errors} outcomes ended in errors", file=sys.stderr)
    return elapsed, valid, client


async def ours_gather(
    info: dict[str, Any], items: Sequence[maxa.CodedText], concurrency: int
) -> tuple[float, int]:
    async with maxa.MaxaClient(
        credentials(info), base_url=info["base_url"], max_concurrency=concurrency
    ) as client:
        await client.terminology("thritaEHR.Religion", "1")
        started = time.perf_counter()
        results = await asyncio.gather(*(client.validate_cts(item) for item in items))
        return time.perf_counter() - started, sum(results)


async def plain(info: dict[str, Any], terms: list[maxa.CodedText], count: int, rounds: int) -> None:
    """Alternating rounds; per round the ratio of rates (wall clock) and of client CPU
    seconds per request (the process's own CPU time, steadier on a noisy machine)."""
    items = make_items(terms, count)
    token = await raw_token(info)
    names = ("raw", "many", "raw_gather", "gather")
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}

    async def timed(name: str, run: Any) -> int:
        gc.collect()  # each run starts from the same heap, not the last run's garbage
        started = time.process_time()
        seconds, valid = await run()
        cpu[name].append((time.process_time() - started) / count * 1e6)
        rates[name].append(count / seconds)
        return int(valid)

    runs = {
        "raw": lambda: _first_two(raw_validate(info, token, items, 64)),
        "many": lambda: _first_two(ours_validate(info, items, 64)),
        "raw_gather": lambda: raw_gather(info, token, items, 64),
        "gather": lambda: ours_gather(info, items, 64),
    }
    expected: int | None = None
    for round_ in range(rounds):
        # ABBA: every other round runs ours before raw, so neither side always runs
        # first (after the other's garbage, or at the same point of a noisy neighbour).
        order = names if round_ % 2 == 0 else ("many", "raw", "gather", "raw_gather")
        for name in order:
            valid = await timed(name, runs[name])
            expected = valid if expected is None else expected
            assert valid == expected, (name, valid, expected)

    # Each of ours against the raw client of the same shape (worker pool or gather).
    baseline = {"raw": "raw", "many": "raw", "raw_gather": "raw_gather", "gather": "raw_gather"}

    def ratio(name: str) -> float:
        base = rates[baseline[name]]
        return statistics.median(o / r for o, r in zip(rates[name], base, strict=True))

    def cpu_ratio(name: str) -> float:
        base = cpu[baseline[name]]
        return statistics.median(r / o for o, r in zip(cpu[name], base, strict=True))

    rows = [
        [
            label,
            f"{statistics.median(rates[name]):,.0f}",
            f"{ratio(name):.2f}",
            f"{statistics.median(cpu[name]):.0f}",
            f"{cpu_ratio(name):.2f}",
        ]
        for label, name in (
            ("raw aiohttp (fixed token, worker pool)", "raw"),
            ("ours: validate_many", "many"),
            ("raw aiohttp (fixed token, gather + Semaphore)", "raw_gather"),
            ("ours: gather(validate_cts)", "gather"),
        )
    ]
    print(
        f"\n[plain] {count:,} ValidateCts, concurrency 64, {rounds} rounds in ABBA order "
        "(medians; ratios per round)"
    )
    print(table(["client", "req/s", "ours/raw", "client CPU us/req", "raw CPU / ours"], rows))


def _instrument(client: maxa.MaxaClient, kind: str) -> None:
    """OpenTelemetry on the client. ``noop``: the API's no-op providers; ``api``: the
    global providers with no SDK installed (the API's placeholders); ``sdk``: the SDK
    exporting every span to memory (and a metric reader that is never read); ``floor``:
    not ours, the least any instrumentation pays with that SDK: one span with the same
    static attributes and one histogram record per call, from a bare hook."""
    from opentelemetry import metrics, trace

    import maxa_async.otel

    if kind == "noop":
        maxa_async.otel.instrument(
            client,
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=metrics.NoOpMeterProvider(),
        )
        return
    if kind == "api":
        maxa_async.otel.instrument(client)
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    # Not shut down at exit: a provider left to atexit lives (with every span it kept)
    # for the whole process, and the runs after it would pay for scanning that heap.
    tracing = TracerProvider(shutdown_on_exit=False)
    tracing.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    if kind == "sdk":
        maxa_async.otel.instrument(client, tracer_provider=tracing, meter_provider=meters)
        return
    tracer = tracing.get_tracer("floor")
    duration = meters.get_meter("floor").create_histogram("duration")
    static = {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": 1,
        "url.full": "http://127.0.0.1:1/gwmaksa/ValidateCts",
        "maxa.operation": "ValidateCts",
        "maxa.attempts": 1,
        "http.response.status_code": 200,
        "maxa.request_id": "-",
        "maxa.terminology_id": "eRx",
    }
    by_status = {"maxa.operation": "ValidateCts", "http.response.status_code": 200}

    def bare(event: ResponseEvent) -> None:
        duration.record(event.elapsed, by_status)
        tracer.start_span("MAXA ValidateCts", kind=trace.SpanKind.CLIENT, attributes=static).end()

    client._hooks = attrs.evolve(client._hooks, on_response=bare)


async def otel(info: dict[str, Any], terms: list[maxa.CodedText], count: int, rounds: int) -> None:
    """validate_many plain, with OpenTelemetry's no-op providers, with the global
    placeholders (no SDK), with the SDK's in-memory exporter, and the SDK's floor (see
    _instrument), in rotating order; each as a ratio to plain in the same round, of rates
    (wall clock) and of the client process's CPU seconds per call (steadier when the
    machine is shared)."""
    items = make_items(terms, count)
    kinds: tuple[str | None, ...] = (None, "noop", "api", "sdk", "floor")
    rates: dict[str | None, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str | None, list[float]] = {kind: [] for kind in kinds}  # us per call
    for round_ in range(rounds):
        shift = round_ % len(kinds)
        order = kinds[shift:] + kinds[:shift]
        for kind in order:
            gc.collect()  # each run starts from the same heap, not the last run's garbage
            started = time.process_time()
            seconds, _, _ = await ours_validate(info, items, 64, otel=kind)
            cpu[kind].append((time.process_time() - started) / count * 1e6)
            rates[kind].append(count / seconds)

    def ratio(kind: str | None) -> float:
        return statistics.median(o / p for o, p in zip(rates[kind], rates[None], strict=True))

    def cpu_ratio(kind: str | None) -> float:
        return statistics.median(p / o for o, p in zip(cpu[kind], cpu[None], strict=True))

    rows = [
        [
            label,
            f"{statistics.median(rates[kind]):,.0f}",
            f"{ratio(kind):.2f}",
            f"{statistics.median(cpu[kind]):.0f}",
            f"{cpu_ratio(kind):.2f}",
        ]
        for label, kind in (
            ("validate_many", None),
            ("validate_many + otel, no-op providers", "noop"),
            ("validate_many + otel, global providers, no SDK", "api"),
            ("validate_many + otel, SDK, in-memory exporter", "sdk"),
            ("SDK floor: a bare span + a histogram record per call", "floor"),
        )
    ]
    print(f"\n[otel] {count:,} ValidateCts, concurrency 64, {rounds} rounds in rotating order")
    print(table(["client", "req/s", "/ plain", "client CPU us/req", "plain CPU / this"], rows))


async def _first_two(run: Any) -> tuple[float, int]:
    result = await run
    return result[0], result[1]


async def ratelimit(
    info: dict[str, Any], terms: list[maxa.CodedText], count: int, rps: int
) -> None:
    items = make_items(terms, count, seed=2)
    token = await raw_token(info)
    await set_config(info, rps_limit=rps, retry_after=True)
    rows = []
    try:
        await gateway_stats(info, reset=True)
        seconds, _, _limited = await raw_validate(info, token, items, 64, naive_429=True)
        stats = await gateway_stats(info, reset=True)
        total = stats["requests_by_operation"].get("ValidateCts", 0)
        rows.append(
            [
                "naive fixed-concurrency (per-worker sleep)",
                f"{count / seconds:,.0f}",
                f"{count / seconds / rps:.0%}",
                f"{stats['rate_limited'] / total:.1%}",
                0,
            ]
        )
        await asyncio.sleep(1.1)  # a fresh window of the gateway's, as the naive run had
        await gateway_stats(info, reset=True)
        seconds, _, client = await ours_validate(info, items, 64)
        stats = await gateway_stats(info, reset=True)
        total = stats["requests_by_operation"].get("ValidateCts", 0)
        rows.append(
            [
                "ours (adaptive + shared cooldown)",
                f"{count / seconds:,.0f}",
                f"{count / seconds / rps:.0%}",
                f"{stats['rate_limited'] / total:.1%}",
                client.stats.failures,
            ]
        )
    finally:
        await set_config(info, rps_limit=None)
    print(
        f"\n[ratelimit] {count:,} ValidateCts, gateway limited to R = {rps} req/s (429 + "
        "Retry-After, fixed 1 s windows), concurrency 64"
    )
    print(table(["client", "items/s", "of R", "429 share", "errors"], rows))


async def zipf(info: dict[str, Any], terms: list[maxa.CodedText], count: int) -> None:
    items = make_items(terms, count, distinct=5000, zipf=1.1, seed=3)
    token = await raw_token(info)
    seconds, raw_valid, _ = await raw_validate(info, token, items, 64)
    raw = count / seconds
    seconds, valid, client = await ours_validate(
        info, items, 64, cache=maxa.ResponseCache(maxsize=20_000, ttl=600)
    )
    assert valid == raw_valid, (valid, raw_valid)
    ours = count / seconds
    sent = sum(client.stats.requests.values())
    print(f"\n[zipf] {count:,} items drawn Zipf(1.1) from 5,000 codes, concurrency 64")
    print(
        table(
            ["client", "items/s", "requests sent", "ours/raw"],
            [
                ["raw aiohttp", f"{raw:,.0f}", f"{count:,}", "1.00"],
                ["ours: coalescing + cache", f"{ours:,.0f}", f"{sent:,}", f"{ours / raw:.1f}"],
            ],
        )
    )


async def latency(info: dict[str, Any], terms: list[maxa.CodedText], count: int) -> None:
    items = make_items(terms, count, seed=4)
    await set_config(info, latency=0.05)
    try:
        seconds, _, client = await ours_validate(info, items, 64)
    finally:
        await set_config(info, latency=0.0)
    observed = statistics.median(client.stats._latencies)
    predicted = 64 / observed
    print(f"\n[latency] {count:,} ValidateCts, gateway adds 50 ms per request, max_concurrency 64")
    print(
        table(
            [
                "client",
                "items/s",
                "median latency",
                "Little's law (64 / latency)",
                "of prediction",
                "final limit",
            ],
            [
                [
                    "ours",
                    f"{count / seconds:,.0f}",
                    f"{observed * 1000:.1f} ms",
                    f"{predicted:,.0f}",
                    f"{count / seconds / predicted:.0%}",
                    client.limiter.limit,
                ]
            ],
        )
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--only", choices=["plain", "ratelimit", "zipf", "latency", "otel"])
    parser.add_argument("--rps", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of plain (ABBA order)")
    parser.add_argument(
        "--pin", action="store_true", help="gateway and client each on their own CPU (Linux)"
    )
    args = parser.parse_args()
    scale = 0.25 if args.quick else 1.0
    with gateway_process(pin=args.pin) as info:
        terms = await erx_terms(info)
        if args.only in (None, "plain"):
            await plain(info, terms, int(20_000 * scale), rounds=args.rounds)
        if args.only in (None, "ratelimit"):
            await ratelimit(info, terms, int(15_000 * scale), args.rps)
        if args.only in (None, "zipf"):
            await zipf(info, terms, int(100_000 * scale))
        if args.only in (None, "latency"):
            await latency(info, terms, int(5_000 * scale))
        if args.only == "otel":  # needs the otel extra and opentelemetry-sdk
            await otel(info, terms, int(20_000 * scale), rounds=args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
