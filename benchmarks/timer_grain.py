"""How evenly asyncio can space sends: timers at a fixed interval, and the gaps between
the moments they fired.

    python benchmarks/timer_grain.py [--rate 300]

A gateway limiter with no burst (a leaky bucket, a token bucket holding one request)
refuses any send that comes sooner than 1/R after the one before. The event loop wakes
from epoll at millisecond grain, so a schedule whose interval is not a whole number of
milliseconds fires some pairs a millisecond closer than planned. For each pace (a share
of R), this prints the share of gaps under 1/R (each one a refusal at such a limiter,
before any network jitter) and the gaps' histogram in whole milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import time


async def gaps(interval: float, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    done = loop.create_future()
    start = loop.time() + 0.01

    def fire(index: int) -> None:
        fired.append(time.monotonic())
        if index == count - 1:
            done.set_result(None)

    for index in range(count):
        loop.call_at(start + index * interval, fire, index)
    await done
    return [later - earlier for earlier, later in itertools.pairwise(fired)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="the limiter's R, req/s")
    parser.add_argument("--count", type=int, default=3000, help="timers per pace")
    args = parser.parse_args()
    floor = 1.0 / args.rate
    print(f"R = {args.rate:g}/s: a gap under {floor * 1e3:.2f} ms is refused")
    print(f"{'pace':>6} {'interval':>9} {'gaps < 1/R':>11}  gaps by whole ms")
    for share in (0.95, 0.9, 0.87, 0.83, 0.8, 0.75):
        interval = floor / share
        measured = asyncio.run(gaps(interval, args.count))
        short = sum(gap < floor for gap in measured) / len(measured)
        histogram = sorted(collections.Counter(round(gap * 1e3) for gap in measured).items())
        shown = ", ".join(f"{ms}: {n}" for ms, n in histogram[:6])
        print(f"{share:>6.0%} {interval * 1e3:>7.2f}ms {short:>11.1%}  {shown}")


if __name__ == "__main__":
    main()
