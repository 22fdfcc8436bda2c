"""One fleet member for the multi-process tests: its own MaxaClient, validating in a loop.

    python tests/fleet/worker.py --gateway JSON --redis-url URL --duration S
        [--concurrency N] [--lease-seconds L] [--refresh-fraction F]
        [--hang-on-refresh] [--rate-limit R]

Builds its client outside any event loop, prints ``READY``, then reads the start time
(wall-clock epoch) from stdin, so a fleet starts together however slow its start-up was.
Prints ``HOLDING`` when ``--hang-on-refresh`` makes it
stop inside a refresh grant (it holds the fleet's lease and never returns: the test kills
it), and, at the end, one JSON line: calls, errors by type, success counts per 0.5 s
since the start, the client's stats, the fleet's stats and the fleet's warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import sys
import time
from typing import Any

import maxa_async as maxa
from maxa_async.fleet import Fleet
from maxa_async.oauth import TokenRequest

BUCKET = 0.5


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True, help="the fake gateway's ready line")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lease-seconds", type=float, default=None)
    parser.add_argument("--refresh-fraction", type=float, default=0.75)
    parser.add_argument("--hang-on-refresh", action="store_true")
    parser.add_argument("--rate-limit", type=float, default=None)
    parser.add_argument("--name", default="w")
    return parser.parse_args()


def _client(args: argparse.Namespace, info: dict[str, Any]) -> maxa.MaxaClient:
    creds = maxa.Credentials(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        username=info["username"],
        password=info["password"],
        pid=info["pid"],
    )
    options: dict[str, Any] = {
        "base_url": info["base_url"],
        "max_concurrency": args.concurrency,
        "refresh_fraction": args.refresh_fraction,
    }
    if args.redis_url and args.lease_seconds is not None:
        fleet = Fleet(
            args.redis_url,
            credentials=creds,
            rate_limit=args.rate_limit,
            lease_seconds=args.lease_seconds,
        )
        options.update(token_store=fleet.token_store, rate_gate=fleet.rate_gate)
    elif args.redis_url:
        options.update(redis_url=args.redis_url, fleet_rate_limit=args.rate_limit)
    return maxa.MaxaClient(creds, **options)


def _hang_on_refresh(client: maxa.MaxaClient) -> None:
    """Make the refresh grant never return, as if the process froze mid-refresh."""
    tokens: Any = client.tokens
    send = tokens._send

    async def hanging(request: TokenRequest) -> Any:
        if request.grant_type == "refresh_token":
            print("HOLDING", flush=True)
            await asyncio.Event().wait()
        return await send(request)

    tokens._send = hanging


async def _run(
    args: argparse.Namespace, client: maxa.MaxaClient, start_at: float
) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop = start_at + args.duration
    errors: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[int] = collections.Counter()
    calls = 0
    max_latency = 0.0

    async def loop(lane: int) -> None:
        nonlocal calls, max_latency
        n = 0
        while time.time() < stop:
            n += 1
            item = maxa.CodedText(
                value=f"{args.name}-{lane}-{n}", terminology_id="ContactType", coded_string="1"
            )
            started = time.time()
            calls += 1
            try:
                await client.validate_cts(item)
            except maxa.MaxaError as exc:
                errors[f"{type(exc).__name__}:{exc.status}"] += 1
                continue
            now = time.time()
            max_latency = max(max_latency, now - started)
            buckets[int((now - start_at) / BUCKET)] += 1

    async with client:
        await asyncio.gather(*(loop(lane) for lane in range(args.concurrency)))
        store: Any = client.tokens.store
        fleet: Fleet | None = getattr(store, "fleet", None)
        report = {
            "calls": calls,
            "ok": sum(buckets.values()),
            "errors": dict(errors),
            "max_latency": max_latency,
            "buckets": [buckets.get(i, 0) for i in range(int(args.duration / BUCKET) + 2)],
            "stats": client.stats.as_dict(),
            "fleet": fleet.stats() if fleet is not None else None,
        }
    return report


def main() -> None:
    args = _arguments()
    warnings = _Warnings()
    logging.getLogger("maxa_async.fleet").addHandler(warnings)
    client = _client(args, json.loads(args.gateway))
    if args.hang_on_refresh:
        _hang_on_refresh(client)
    print("READY", flush=True)
    start_at = float(sys.stdin.readline())
    report = asyncio.run(_run(args, client, start_at))
    report["fleet_warnings"] = warnings.messages
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
