"""Rate limits of every shape (issue 14): how much of what the gateway admits each client gets.

    .venv/bin/python benchmarks/bench_ratelimit.py --quick              # a subset, ~4 min
    .venv/bin/python benchmarks/bench_ratelimit.py --rates 300          # every row at R = 300
    .venv/bin/python benchmarks/bench_ratelimit.py --only bucket-R/10   # one shape

Rows are limiter shape x header style at R req/s. For each row and each client side a
fresh fake gateway runs in its own process (``python -m maxa_async.testing``) and the
client runs in another process of its own for a fixed time, then stops:

  ours     MaxaClient defaults, max_concurrency 64, validate_many over an endless stream
  naive    plain aiohttp, 64 workers; a worker answered 429 sleeps Retry-After (else 1 s)
           and retries
  before   the same code as ours on the library of commit 09c5ecf (before issue 14)

"% adm." is the gateway's 200 answers over the most the shape admits over the run
(``GatewayConfig.make_rate_limiter().capacity(start, start + duration)`` on the
gateway's wall clock; for the concurrency cap, in-flight cap / latency x run time;
for ``nodes-4``, four buckets of R/4 behind a random balancer, the sum of theirs).
Each run starts at a boundary of the shape's window (the fake's fixed windows are
aligned to the wall clock) and lasts whole windows, so the capacity is what the shape
admits over the run, not a partial window at either end that only an unpaced burst
could use. The gateway answers once before the run (it generates its drug lists on
first use) and its counts are zeroed; the client is built, and its token granted, inside
the run. "429" is the share of the
gateway's answers that were limiter refusals; "err" counts failed outcomes (ours,
before) or answers neither 200 nor 429 (naive).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    credentials,
    erx_terms,
    gateway_process,
    gateway_stats,
    make_items,
    warm_up,
)
from bench_client import VALIDATE_PATH, raw_body, raw_headers, raw_token

import maxa_async as maxa

BEFORE_COMMIT = "09c5ecf"
CONCURRENCY = 64
ITEM_COUNT = 20_000
SIDES = ("ours", "naive", "before")
#: The concurrency-cap row: at most this many in flight, each held this long.
CAP_LIMIT = 16
CAP_LATENCY = 0.020


@attrs.frozen
class Shape:
    """A limiter of the fake gateway at rate R: its knobs and its run-time multiplier."""

    name: str
    limiter: str | None
    window: float = 1.0
    #: Token-bucket burst as a share of R (None: a burst of ``burst_requests``).
    burst_share: float | None = None
    burst_requests: float | None = None
    #: Windows longer than a second need longer runs to hold several of them.
    time_factor: float = 1.0
    #: Gateway nodes behind a random balancer, each limiting R/nodes.
    nodes: int = 1

    def knobs(self, rate: float) -> dict[str, Any]:
        if self.limiter is None:
            return {"concurrency_limit": CAP_LIMIT, "latency": CAP_LATENCY}
        knobs: dict[str, Any] = {
            "rps_limit": rate,
            "rate_limiter": self.limiter,
            "rate_window": self.window,
        }
        if self.burst_share is not None:
            knobs["rate_burst"] = max(1.0, rate * self.burst_share)
        elif self.burst_requests is not None:
            knobs["rate_burst"] = self.burst_requests
        if self.nodes > 1:
            knobs["rate_nodes"] = self.nodes
        return knobs

    def capacity(
        self, rate: float, start: float, end: float, stats: dict[str, Any] | None = None
    ) -> float:
        """The most successes this shape admits in ``[start, end)`` (wall clock). For the
        concurrency cap, at full occupancy: ``CAP_LIMIT`` places, each held as long as the
        gateway's ``stats`` say its requests held one (the configured latency plus the
        gateway's own time), or the configured latency alone without them."""
        if self.limiter is None:
            hold = CAP_LATENCY
            if stats is not None and stats.get("cap_holds"):
                hold = max(CAP_LATENCY, stats["cap_hold_seconds"] / stats["cap_holds"])
            return CAP_LIMIT / hold * (end - start)
        # Imported here: the 'before' client processes load an older maxa_async without it.
        from maxa_async.testing import GatewayConfig

        config = GatewayConfig.from_dict(self.knobs(rate))
        limiter = config.make_rate_limiter()
        assert limiter is not None
        capacity = limiter.capacity(start, end)
        assert capacity is not None
        return capacity


@attrs.frozen
class HeaderStyle:
    name: str
    knobs: dict[str, Any]


SHAPES = (
    Shape("fixed-1s", "fixed"),
    Shape("fixed-10s", "fixed", window=10.0, time_factor=2.0),
    Shape("sliding-log", "sliding-log"),
    Shape("sliding-counter", "sliding-counter"),
    Shape("bucket-b1", "token-bucket", burst_requests=1.0),
    Shape("bucket-R/100", "token-bucket", burst_share=0.01),
    Shape("bucket-R/10", "token-bucket", burst_share=0.1),
    Shape("bucket-R", "token-bucket", burst_share=1.0),
    Shape("leaky", "leaky-bucket"),
    Shape("nodes-4", "token-bucket", burst_share=0.1, nodes=4),
    Shape(f"cap-{CAP_LIMIT}", None),
)
RETRY_AFTER = HeaderStyle("Retry-After", {"retry_after": True, "rate_headers": "none"})
NO_RETRY_AFTER = HeaderStyle("none", {"retry_after": False, "rate_headers": "none"})
# Spring and IETF budget headers come on top of the (default) rounded-up Retry-After.
SPRING = HeaderStyle("spring+RA", {"retry_after": True, "rate_headers": "spring"})
IETF = HeaderStyle("ietf+RA", {"retry_after": True, "rate_headers": "ietf"})
KONG = HeaderStyle("kong+RA", {"retry_after": True, "rate_headers": "kong"})
#: The shapes that also run with the budget-header families.
HEADER_FAMILY_SHAPES = ("fixed-1s", "bucket-R/10")
QUICK_SHAPES = ("fixed-1s", "bucket-b1", "bucket-R/10", f"cap-{CAP_LIMIT}")


@attrs.frozen
class Row:
    rate: int
    shape: Shape
    style: HeaderStyle

    def gateway_options(self) -> list[str]:
        options = []
        for name, value in {**self.shape.knobs(self.rate), **self.style.knobs}.items():
            option = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                options.append(option if value else "--no-" + option[2:])
            else:
                options += [option, str(value)]
        return options


def plan_rows(rates: Sequence[int], shapes: Sequence[Shape]) -> list[Row]:
    rows = []
    for rate in rates:
        for shape in shapes:
            if shape.limiter is None:
                # Cap refusals carry no Retry-After or budget headers: one style is the row.
                rows.append(Row(rate, shape, RETRY_AFTER))
                continue
            styles = [RETRY_AFTER, NO_RETRY_AFTER]
            if shape.name in HEADER_FAMILY_SHAPES:
                styles += [SPRING, IETF, KONG]
            rows.extend(Row(rate, shape, style) for style in styles)
    return rows


# -- the measured sides, each run in a process of its own ---------------------------------------


def load_items(path: str) -> Iterator[maxa.CodedText]:
    """An endless stream over the saved terms (a share of them with a wrong value)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    terms = [maxa.CodedText(value=v, terminology_id=t, coded_string=c) for v, t, c in raw]
    return itertools.cycle(make_items(terms, len(terms), seed=14))


async def start_of_window(window: float) -> float:
    """Sleep until the next multiple of ``window`` on the wall clock; return it."""
    start = (time.time() // window + 1) * window
    await asyncio.sleep(start - time.time())
    return start


async def run_ours(
    info: dict[str, Any], items_path: str, duration: float, window: float
) -> dict[str, Any]:
    items = load_items(items_path)
    outcomes = errors = 0
    error_kinds: dict[str, int] = {}
    start = await start_of_window(window)
    client = maxa.MaxaClient(
        credentials(info), base_url=info["base_url"], max_concurrency=CONCURRENCY
    )
    async with client:
        try:
            async with asyncio.timeout_at(
                asyncio.get_running_loop().time() + start + duration - time.time()
            ):
                async for outcome in client.validate_many(items):
                    outcomes += 1
                    if outcome.error is not None:
                        errors += 1
                        kind = type(outcome.error).__name__
                        error_kinds[kind] = error_kinds.get(kind, 0) + 1
        except TimeoutError:
            pass
        end = time.time()
        state = client.limiter.state()
    return {
        "start": start,
        "end": end,
        "outcomes": outcomes,
        "errors": errors,
        "error_kinds": error_kinds,
        "limiter": state,
        "library": str(Path(maxa.__file__).parent),
    }


def retry_after_seconds(value: str | None) -> float:
    """The naive reading: Retry-After as seconds or an HTTP-date; 1 s without one."""
    if value is None:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value)
        return max(0.0, moment.timestamp() - time.time())


async def run_naive(
    info: dict[str, Any], items_path: str, duration: float, window: float
) -> dict[str, Any]:
    items = load_items(items_path)
    start = await start_of_window(window)
    token = await raw_token(info)
    headers = raw_headers(info, token)
    url = info["base_url"] + VALIDATE_PATH
    counts = {"ok": 0, "limited": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for item in items:
                body = raw_body(item)
                while True:
                    try:
                        async with session.post(url, data=body, headers=headers) as response:
                            await response.read()
                            status = response.status
                            retry_after = response.headers.get("Retry-After")
                    except aiohttp.ClientError:
                        counts["errors"] += 1
                        break
                    if status == 429:
                        counts["limited"] += 1
                        await asyncio.sleep(retry_after_seconds(retry_after))
                        continue
                    counts["ok" if status == 200 else "errors"] += 1
                    break

        try:
            async with asyncio.timeout(duration - (time.time() - start)):
                await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        except TimeoutError:
            pass
        end = time.time()
    return {"start": start, "end": end, **counts}


def worker_main(args: argparse.Namespace) -> None:
    info = json.loads(args.info)
    run = run_naive if args.worker == "naive" else run_ours
    result = asyncio.run(run(info, args.items, args.duration, args.window))
    print(json.dumps(result), flush=True)


# -- the driver ---------------------------------------------------------------------------------


@attrs.frozen
class Measured:
    share: float  # gateway 200 answers over capacity
    limited_share: float
    errors: int
    detail: dict[str, Any]
    admitted_rate: float  # what the shape admitted per second in this run (its capacity)


def measure(
    row: Row, side: str, items_path: str, duration: float, before_dir: str | None, pin: bool
) -> Measured | str:
    """One side of one row: a fresh gateway, the client process, the gateway's counts."""
    env = dict(os.environ)
    if side == "before":
        assert before_dir is not None
        env["PYTHONPATH"] = before_dir + os.pathsep + env.get("PYTHONPATH", "")
    with gateway_process(*row.gateway_options(), pin=pin) as info:
        asyncio.run(warm_up(info))
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "naive" if side == "naive" else "ours",
            "--info",
            json.dumps(info),
            "--items",
            items_path,
            "--duration",
            str(duration),
            "--window",
            str(row.shape.window),
        ]
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=duration + 60
            )
        except subprocess.TimeoutExpired:
            return "timeout"
        if done.returncode != 0 or not done.stdout.strip():
            sys.stderr.write(done.stderr[-2000:])
            return "crashed"
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        stats = asyncio.run(gateway_stats(info))
    if side == "before" and not result["library"].startswith(before_dir or "\0"):
        raise RuntimeError(f"'before' imported {result['library']}, not {before_dir}")
    successes = int(stats["responses_by_status"].get("200", 0))
    capacity = row.shape.capacity(row.rate, result["start"], result["start"] + duration, stats)
    answered = max(1, int(stats["requests"]))
    errors = int(result["errors"])
    return Measured(
        successes / capacity, stats["rate_limited"] / answered, errors, result, capacity / duration
    )


def extract_before(tmp: str) -> str:
    """The library as of ``BEFORE_COMMIT``, unpacked into ``tmp``."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", BEFORE_COMMIT, "maxa_async"],
        check=True,
        capture_output=True,
    ).stdout
    Path(tmp).mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return tmp


def save_items(path: Path) -> None:
    """The eRx terms of an unlimited fake gateway, saved for the client processes."""

    async def fetch() -> list[maxa.CodedText]:
        with gateway_process() as info:
            return await erx_terms(info)

    terms = asyncio.run(fetch())[:ITEM_COUNT]
    rows = [[t.value, t.terminology_id, t.coded_string] for t in terms]
    path.write_text(json.dumps(rows), encoding="utf-8")


def as_json(measured: Measured | str | None) -> object:
    return attrs.asdict(measured) if isinstance(measured, Measured) else measured


def cell(measured: Measured | str | None, what: str) -> str:
    if measured is None:
        return "-"
    if isinstance(measured, str):
        return measured
    if what == "share":
        return f"{measured.share:.0%}"
    if what == "429":
        return f"{measured.limited_share:.1%}"
    return str(measured.errors)


def summary(name: str, results: Sequence[Measured | str | None]) -> str:
    done = [m for m in results if isinstance(m, Measured)]
    failed = sum(isinstance(m, str) for m in results)
    if not done:
        return f"{name}: no rows"
    shares = [m.share for m in done]
    return (
        f"{name}: rows at or above 90%: {sum(s >= 0.9 for s in shares)}/{len(done)}; "
        f"median row {statistics.median(shares):.0%}; min {min(shares):.0%}; "
        f"max 429 share {max(m.limited_share for m in done):.1%}; "
        f"errors {sum(m.errors for m in done)}"
        + (f"; {failed} runs timed out or crashed" if failed else "")
    )


def driver_main(args: argparse.Namespace) -> None:
    rates = [300] if args.quick else [int(r) for r in args.rates.split(",")]
    duration = 5.0 if args.quick else args.duration
    shapes = [s for s in SHAPES if not args.quick or s.name in QUICK_SHAPES]
    if args.only:
        shapes = [s for s in shapes if s.name == args.only]
    sides = [
        s
        for s in SIDES
        if not (s == "before" and args.no_before) and not (s == "naive" and args.no_naive)
    ]
    rows = plan_rows(rates, shapes)
    command = shlex.join(["python", "benchmarks/bench_ratelimit.py", *sys.argv[1:]])
    print(f"    {command}", flush=True)
    print(f"{len(rows)} rows x {len(sides)} sides, {duration:g} s per run", file=sys.stderr)

    results: dict[str, list[Measured | str | None]] = {side: [] for side in SIDES}
    table_rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmp:
        items_path = Path(tmp) / "items.json"
        save_items(items_path)
        before_dir = None
        if "before" in sides:
            before_dir = extract_before(str(Path(tmp) / "before"))
        for row in rows:
            run_time = duration * row.shape.time_factor
            measured: dict[str, Measured | str | None] = dict.fromkeys(SIDES)
            for side in sides:
                measured[side] = measure(row, side, str(items_path), run_time, before_dir, args.pin)
                results[side].append(measured[side])
            ours = measured["ours"]
            pace = ours.detail["limiter"].get("pace") if isinstance(ours, Measured) else None
            admitted = (
                ours.admitted_rate
                if isinstance(ours, Measured)
                else row.shape.capacity(row.rate, 0.0, run_time) / run_time
            )
            table_rows.append(
                [
                    row.rate,
                    row.shape.name,
                    row.style.name,
                    f"{admitted:,.0f}",
                    f"{run_time:g}",
                    cell(ours, "share"),
                    cell(ours, "429"),
                    cell(ours, "errors"),
                    "-" if pace is None else f"{pace:,.0f}",
                    cell(measured["naive"], "share"),
                    cell(measured["naive"], "429"),
                    cell(measured["before"], "share"),
                    cell(measured["before"], "429"),
                    cell(measured["before"], "errors"),
                ]
            )
            print("  " + " | ".join(str(c) for c in table_rows[-1]), file=sys.stderr, flush=True)

    headers = [
        "R",
        "shape",
        "headers",
        "admits/s",
        "s",
        "ours % adm.",
        "ours 429",
        "ours err",
        "ours pace",
        "naive % adm.",
        "naive 429",
        "before % adm.",
        "before 429",
        "before err",
    ]
    if args.json:
        raw = [
            {
                "rate": row.rate,
                "shape": row.shape.name,
                "headers": row.style.name,
                **{side: as_json(results[side][i]) for side in sides},
            }
            for i, row in enumerate(rows)
        ]
        Path(args.json).write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print()
    print(markdown(headers, table_rows))
    print()
    for side in sides:
        print(summary(side, results[side]))


def markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="R = 300, 5 s runs, 4 shapes")
    parser.add_argument("--rates", default="300,2000", help="comma-separated R values")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per run")
    parser.add_argument("--only", choices=[s.name for s in SHAPES], help="one shape")
    parser.add_argument("--no-before", action="store_true", help=f"skip the {BEFORE_COMMIT} side")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive side")
    parser.add_argument("--pin", action="store_true", help="gateway and clients on separate CPUs")
    parser.add_argument("--json", metavar="PATH", help="also write every run's raw figures here")
    parser.add_argument("--worker", choices=["ours", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    parser.add_argument("--items", help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
    else:
        driver_main(args)


if __name__ == "__main__":
    main()
