"""Fleet mode benchmark: N processes against a gateway limited to R requests/second.

    python benchmarks/bench_fleet.py [--rate 400] [--processes 8] [--duration 10]
        [--limiter fixed|token-bucket] [--burst B]

Each scenario starts N worker processes (this file with ``--worker``), each with its own
MaxaClient validating as fast as it may, against the fake gateway run in its own process
with ``--rps-limit R`` (by default fixed one-second windows; ``--limiter token-bucket``: a
bucket of rate R and burst B, R/10 unless given; 429 + Retry-After beyond it):

* fleet (Redis): every client on one redis-server (started here on a free port) with
  ``fleet_rate_limit = headroom * R``: one GCRA budget and one 429 cooldown for all.
* fleet, no fleet_rate_limit: the same Redis (one token, a shared cooldown for long
  Retry-Afters) and a shared pace the fleet learns from the gateway's answers (each
  client's own pacer leaves the 429s to it).
* no Redis, adaptive: each client on its own (its pacer, its own cooldown).
* no Redis, R/N each: each client capped at ``headroom * R / N`` (a static split).

Prints the gateway's combined figures per scenario: 429 share of all requests and
throughput (200 answers per second) against R. Targets for the fleet: 429 share <= 5%,
throughput >= 85% of R; for the learned pace: 429 share <= 3%, throughput >= 90% of R.
Stops by itself (about 3 x (duration + start-up) seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import maxa_async as maxa


def _worker(config: dict[str, Any]) -> None:
    info = config["gateway"]
    creds = maxa.Credentials(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        username=info["username"],
        password=info["password"],
        pid=info["pid"],
    )
    options: dict[str, Any] = {"base_url": info["base_url"], "max_concurrency": config["lanes"]}
    if config["redis_url"]:
        options.update(redis_url=config["redis_url"], fleet_rate_limit=config["fleet_rate"])
    if config.get("learned"):
        options.pop("fleet_rate_limit", None)  # the fleet learns its shared pace
    if config["own_rate"]:
        options["rate_limit"] = config["own_rate"]
    client = maxa.MaxaClient(creds, **options)
    print("READY", flush=True)
    start_at = float(sys.stdin.readline())

    async def run() -> dict[str, Any]:
        ok = failed = 0
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop = start_at + config["duration"]

        async def lane(n: int) -> None:
            nonlocal ok, failed
            i = 0
            while time.time() < stop:
                i += 1
                item = maxa.CodedText(
                    value=f"{config['name']}-{n}-{i}",
                    terminology_id="ContactType",
                    coded_string="1",
                )
                try:
                    await client.validate_cts(item)
                    ok += 1
                except maxa.MaxaError:
                    failed += 1

        async with client:
            await asyncio.gather(*(lane(n) for n in range(config["lanes"])))
            stats = client.stats.as_dict()
        return {"ok": ok, "failed": failed, "rate_limited": stats["rate_limited"]}

    print(json.dumps(asyncio.run(run())), flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def _gateway(rate: float, latency: float, limiter: str, burst: float) -> Iterator[dict[str, Any]]:
    args = [sys.executable, "-m", "maxa_async.testing", "--port", "0", "--no-generated"]
    args += ["--rps-limit", str(rate), "--latency", str(latency), "--rate-limiter", limiter]
    if limiter == "token-bucket":
        args += ["--rate-burst", str(burst)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _gateway_call(info: dict[str, Any], path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(info["base_url"] + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else {}


def _scenario(
    info: dict[str, Any],
    args: argparse.Namespace,
    *,
    redis_url: str | None,
    own_rate: float,
    learned: bool = False,
) -> dict[str, Any]:
    procs = []
    for n in range(args.processes):
        config = {
            "gateway": info,
            "redis_url": redis_url or "",
            "fleet_rate": args.rate * args.headroom,
            "own_rate": own_rate,
            "learned": learned,
            "lanes": args.concurrency,
            "duration": args.duration,
            "name": f"p{n}",
        }
        command = [sys.executable, __file__, "--worker", json.dumps(config)]
        procs.append(
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "READY":
                raise RuntimeError("a worker did not start")
        _gateway_call(info, "/__stats/reset", "POST")
        start_at = time.time() + 0.5
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at}\n")
            proc.stdin.flush()
        # What the gateway saw during the window (calls queued at its end go out after).
        time.sleep(max(0.0, start_at + args.duration - time.time()))
        stats = _gateway_call(info, "/__stats")
        reports = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    requests = stats["requests"]
    limited = stats["rate_limited"]
    answered = stats["responses_by_status"].get("200", 0)
    return {
        "requests": requests,
        "share_429": limited / requests if requests else 0.0,
        "throughput": answered / args.duration,
        "failed_calls": sum(r["failed"] for r in reports),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=400.0, help="gateway limit R, req/s")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="lanes per process")
    parser.add_argument("--headroom", type=float, default=0.95, help="fleet budget / R")
    parser.add_argument("--latency", type=float, default=0.005, help="gateway latency, s")
    parser.add_argument("--limiter", choices=["fixed", "token-bucket"], default="fixed")
    parser.add_argument("--burst", type=float, default=None, help="token bucket burst (R/10)")
    parser.add_argument(
        "--only", default="", help="run only the scenarios whose name starts with this"
    )
    args = parser.parse_args()
    burst = args.burst if args.burst is not None else args.rate / 10

    rows = []
    with (
        _redis_server() as redis_url,
        _gateway(args.rate, args.latency, args.limiter, burst) as info,
    ):
        scenarios: list[tuple[str, str | None, float]] = [
            ("fleet (Redis)", redis_url, 0.0),
            ("fleet, no fleet_rate_limit", redis_url, 0.0),
            ("no Redis, adaptive", None, 0.0),
            (
                f"no Redis, R/{args.processes} each",
                None,
                args.rate * args.headroom / args.processes,
            ),
        ]
        if redis_url is None:
            print("redis-server not found: the fleet scenario is skipped", file=sys.stderr)
            scenarios = scenarios[2:]
        scenarios = [s for s in scenarios if s[0].startswith(args.only)]
        for name, url, own_rate in scenarios:
            learned = name.startswith("fleet, no")
            result = _scenario(info, args, redis_url=url, own_rate=own_rate, learned=learned)
            rows.append((name, result))
            time.sleep(1.0)  # let the gateway's window and any cooldown pass

    shape = "fixed 1 s windows" if args.limiter == "fixed" else f"token bucket, burst {burst:g}"
    print(
        f"\n{args.processes} processes x {args.concurrency} lanes, gateway limit R = "
        f"{args.rate:.0f} req/s ({shape}), {args.duration:.0f} s per scenario, fleet budget "
        f"{args.headroom:.0%} of R"
    )
    header = f"{'scenario':<28} {'requests':>9} {'429 share':>10} {'throughput':>11} {'% of R':>7}"
    print(header)
    print("-" * len(header))
    for name, r in rows:
        print(
            f"{name:<28} {r['requests']:>9} {r['share_429']:>9.1%} "
            f"{r['throughput']:>8.0f}/s {r['throughput'] / args.rate:>7.0%}"
            + (f"  ({r['failed_calls']} calls failed)" if r["failed_calls"] else "")
        )
    fleet = dict(rows).get("fleet (Redis)")
    if fleet is not None:
        ok = fleet["share_429"] <= 0.05 and fleet["throughput"] >= 0.85 * args.rate
        verdict = "met" if ok else "MISSED"
        print(f"\nfleet targets (429 share <= 5%, throughput >= 85% of R): {verdict}")
    learned = dict(rows).get("fleet, no fleet_rate_limit")
    if learned is not None:
        ok = learned["share_429"] <= 0.03 and learned["throughput"] >= 0.90 * args.rate
        verdict = "met" if ok else "MISSED"
        print(f"learned pace targets (429 share <= 3%, throughput >= 90% of R): {verdict}")


if __name__ == "__main__":
    main()
