"""$validate-code over HTTP against ``maxa serve --fhir`` (issue 18).

    .venv/bin/python benchmarks/bench_fhir.py                  # ~1 minute
    .venv/bin/python benchmarks/bench_fhir.py --seconds 3      # shorter rounds

Processes and cores (Linux, 2+ CPUs; without them nothing is pinned and the table says so):
  server          ``maxa serve --fhir`` (or the trivial aiohttp server), alone on the
                  first CPU
  load generator  this process, on the last CPU: plain asyncio streams, HTTP/1.1
                  keep-alive, ``--connections`` connections each with one request in
                  flight, cycling over eRx codes with their right display (code+display
                  validation, as tx-benchmark's round 0)
  fake gateway    ``python -m maxa_async.testing`` in its own process, on the last CPU too
                  (only online and hybrid misses reach it)

Rows:
  aiohttp ceiling  a trivial aiohttp.web handler answering a fixed Parameters body: what one
                   core of this machine serves through aiohttp to this load generator
  offline          ``maxa serve --fhir --offline``: the snapshot only
  hybrid           ``maxa serve --fhir --hybrid``: every code is in the snapshot, so the
                   gateway is never asked (the steady state of a synced snapshot)
  online           ``maxa serve --fhir``: every request is a ValidateCts to the fake gateway

Each round is bounded by ``--requests`` and by ``--seconds``, after a short warm-up; every
answer is read whole and checked to say ``"valueBoolean":true``. Target: offline >= 2,000
req/s on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import credentials, gateway_process, gateway_stats, table

import maxa_async as maxa
from maxa_async.snapshot import SnapshotStore

ERX = "urn:maxa-async:CodeSystem:eRx"
TRIVIAL_BODY = (
    b'{"resourceType":"Parameters","parameter":[{"name":"result","valueBoolean":true},'
    b'{"name":"display","valueString":"ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"}]}'
)


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin_to(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextmanager
def ready_process(args: Sequence[str], *, cpu: int | None, env: dict[str, str]) -> Iterator[Any]:
    """Start a process that prints one JSON ready line; stop it after the block."""
    process = subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=pin_to(cpu),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{args} did not start")
        yield json.loads(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------ the trivial server


def run_trivial_server() -> None:
    """``--trivial-server``: a one-route aiohttp.web app answering a fixed body."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            body=TRIVIAL_BODY, headers={"Content-Type": "application/fhir+json; charset=utf-8"}
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/CodeSystem/$validate-code", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(json.dumps({"base_url": f"http://127.0.0.1:{port}"}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# ------------------------------------------------------------------ the load generator


def request_lines(terms: Sequence[maxa.CodedText], host: str) -> list[bytes]:
    lines = []
    for term in terms:
        query = (
            f"system={quote(ERX, safe='')}&code={quote(term.coded_string, safe='')}"
            f"&display={quote(term.value, safe='')}"
        )
        lines.append(
            f"GET /CodeSystem/$validate-code?{query} HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: application/fhir+json\r\n\r\n".encode()
        )
    return lines


async def load(
    base_url: str,
    requests: list[bytes],
    *,
    connections: int,
    total: int,
    seconds: float,
) -> tuple[int, float, int]:
    """Send until ``total`` answers or ``seconds``: (answers, elapsed, not-true answers)."""
    host_port = base_url.removeprefix("http://")
    host, port = host_port.rsplit(":", 1)
    done = 0
    failed = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def connection(offset: int) -> None:
        nonlocal done, failed
        reader, writer = await asyncio.open_connection(host, int(port))
        index = offset
        try:
            while done < total and time.perf_counter() < deadline:
                writer.write(requests[index % len(requests)])
                index += connections
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                done += 1
                if not head.startswith(b"HTTP/1.1 200") or b'"valueBoolean":true' not in body:
                    failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(connections)))
    return done, time.perf_counter() - started, failed


def measure(
    base_url: str, requests: list[bytes], args: argparse.Namespace, info: dict[str, Any]
) -> tuple[int, float, int]:
    """A warm-up, then the round; the gateway's counters cover the round only."""
    warm = min(len(requests), 2000)
    asyncio.run(load(base_url, requests, connections=args.connections, total=warm, seconds=5))
    asyncio.run(gateway_stats(info, reset=True))
    return asyncio.run(
        load(
            base_url,
            requests,
            connections=args.connections,
            total=args.requests,
            seconds=args.seconds,
        )
    )


# ------------------------------------------------------------------ the run


async def pull(info: dict[str, Any], path: str) -> list[maxa.CodedText]:
    async with (
        maxa.MaxaClient(credentials(info), base_url=info["base_url"]) as client,
        SnapshotStore.open(path) as store,
    ):
        await store.pull(client, "eRx")
        index = await store.index("eRx")
        return index.terms()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivial-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=100_000, help="most answers per round")
    parser.add_argument("--seconds", type=float, default=8.0, help="longest round, seconds")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    parser.add_argument(
        "--modes", default="ceiling,offline,hybrid,online", help="rows to measure (comma list)"
    )
    args = parser.parse_args()
    if args.trivial_server:
        run_trivial_server()
        return
    available = cpus()
    pinned = len(available) >= 2
    server_cpu = available[0] if pinned else None
    load_cpu = available[-1] if pinned else None
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    rows = []
    # gateway_process(pin=True) puts the gateway on the last CPU and this process on the
    # first; this process then moves to the last CPU too, leaving the first to the server
    with tempfile.TemporaryDirectory() as folder, gateway_process(pin=pinned) as info:
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})
        snapshot = str(Path(folder) / "bench.db")
        terms = asyncio.run(pull(info, snapshot))[:5000]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAXA_")}
        creds = credentials(info)
        env.update(
            MAXA_BASE_URL=info["base_url"],
            MAXA_CLIENT_ID=creds.client_id,
            MAXA_CLIENT_SECRET=creds.client_secret,
            MAXA_USERNAME=creds.username,
            MAXA_PASSWORD=creds.password,
            MAXA_PID=creds.pid,
        )
        serve = [sys.executable, "-m", "maxa_async.cli", "serve", "--fhir", "--port", "0"]
        commands = {
            "ceiling": [sys.executable, __file__, "--trivial-server"],
            "offline": [*serve, "--offline", "--snapshot", snapshot],
            "hybrid": [*serve, "--hybrid", "--snapshot", snapshot, "--concurrency", "64"],
            "online": [*serve, "--concurrency", "64"],
        }
        labels = {
            "ceiling": "aiohttp ceiling (trivial handler)",
            "offline": "maxa serve --fhir --offline",
            "hybrid": "maxa serve --fhir --hybrid",
            "online": "maxa serve --fhir (online, fake gateway)",
        }
        for mode in modes:
            with ready_process(commands[mode], cpu=server_cpu, env=env) as ready:
                base_url = ready["base_url"]
                lines = request_lines(terms, base_url.removeprefix("http://"))
                answers, elapsed, failed = measure(base_url, lines, args, info)
                reached = asyncio.run(gateway_stats(info))["requests"]
            rows.append(
                (
                    labels[mode],
                    f"{answers:,}",
                    f"{elapsed:.2f}",
                    f"{answers / elapsed:,.0f}",
                    failed,
                    f"{reached:,}",
                )
            )
            print(f"{labels[mode]}: {answers / elapsed:,.0f} req/s", file=sys.stderr, flush=True)
    print(
        f"python {sys.version.split()[0]}, {len(available)} CPUs; "
        + (
            f"server on CPU {server_cpu}, load generator and fake gateway on CPU {load_cpu}"
            if pinned
            else "not pinned"
        )
        + f"; {args.connections} connections, rounds <= {args.requests:,} requests "
        f"and <= {args.seconds:g} s"
    )
    print(table(["server", "answers", "seconds", "req/s", "not valid", "gateway requests"], rows))


if __name__ == "__main__":
    main()
