"""Validate a CSV of prescription lines with ``MaxaClient.validate_many``.

The input has a header row with ``terminology``, ``code`` and ``value`` columns. The
file is streamed: ``validate_many`` pulls rows as it has room, answers in input order,
and keeps memory flat however long the file is. Results go to ``--out`` (CSV: the
input columns plus ``status`` and ``message``).

    export MAXA_CLIENT_ID=... MAXA_CLIENT_SECRET=... MAXA_USERNAME=... \\
           MAXA_PASSWORD=... MAXA_PID=...            # and MAXA_BASE_URL for another gateway
    python examples/bulk_validate.py lines.csv --out results.csv

    python examples/bulk_validate.py lines.csv --emulator   # against a local fake gateway

Exit status: 0 every line valid, 1 some invalid, 2 some could not be checked.
(``maxa validate`` does the same with progress bars, JSONL and resuming.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import TextIO

import maxa_async as maxa


def read_lines(file: TextIO) -> Iterator[maxa.CodedText]:
    for row in csv.DictReader(file):
        yield maxa.CodedText(
            value=row.get("value") or "",
            terminology_id=row.get("terminology") or "",
            coded_string=row.get("code") or "",
        )


@contextlib.asynccontextmanager
async def open_client(emulator: bool, concurrency: int) -> AsyncIterator[maxa.MaxaClient]:
    if emulator:
        from maxa_async.testing import FakeGateway

        async with (
            FakeGateway() as gateway,
            maxa.MaxaClient(
                gateway.credentials, base_url=gateway.base_url, max_concurrency=concurrency
            ) as client,
        ):
            yield client
        return
    base_url = os.environ.get("MAXA_BASE_URL", maxa.DEFAULT_BASE_URL)
    async with maxa.MaxaClient(
        maxa.Credentials.from_env(), base_url=base_url, max_concurrency=concurrency
    ) as client:
        yield client


async def validate_file(
    source: TextIO, results: TextIO, *, emulator: bool, concurrency: int
) -> Counter[str]:
    counts: Counter[str] = Counter()
    writer = csv.writer(results, lineterminator="\n")
    writer.writerow(["terminology", "code", "value", "status", "message"])
    async with open_client(emulator, concurrency) as client:
        async for outcome in client.validate_many(read_lines(source)):
            item: maxa.CodedText = outcome.item
            if outcome.error is not None:
                status, message = "error", str(outcome.error)
            elif outcome.valid:
                status, message = "valid", ""
            else:
                status, message = "invalid", "not the registered value of this code"
            counts[status] += 1
            writer.writerow([item.terminology_id, item.coded_string, item.value, status, message])
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate a CSV of prescription lines.")
    parser.add_argument("input", help="CSV with terminology, code and value columns")
    parser.add_argument("--out", help="results CSV (default: stdout)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--emulator", action="store_true", help="use an in-process fake gateway")
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(open(args.input, encoding="utf-8-sig", newline=""))
            results = (
                stack.enter_context(open(args.out, "w", encoding="utf-8", newline=""))
                if args.out
                else sys.stdout
            )
            counts = asyncio.run(
                validate_file(source, results, emulator=args.emulator, concurrency=args.concurrency)
            )
    except (OSError, maxa.MaxaError) as exc:  # unreadable file, bad credentials, ...
        print(f"bulk_validate: {exc}", file=sys.stderr)
        return 3
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(
        f"{total} lines: {counts['valid']} valid, {counts['invalid']} invalid, "
        f"{counts['error']} errors in {elapsed:.1f}s ({total / elapsed:.0f} lines/s)",
        file=sys.stderr,
    )
    if counts["error"]:
        return 2
    return 1 if counts["invalid"] else 0


if __name__ == "__main__":
    sys.exit(main())
