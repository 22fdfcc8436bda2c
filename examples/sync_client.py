"""MAXA from blocking code: a Django-style view and a Celery-style task sharing one client.

``maxa_async.sync.MaxaClient`` has the async client's methods, returning plain values. One
is made per process (here at start-up, in a Django project in ``settings.py`` or an
``AppConfig.ready``); every thread that serves a request uses it, so they share one
token, one connection pool and one rate limiter.

    export MAXA_CLIENT_ID=... MAXA_CLIENT_SECRET=... MAXA_USERNAME=... \\
           MAXA_PASSWORD=... MAXA_PID=...            # and MAXA_BASE_URL for another gateway
    python examples/sync_client.py 60002 60281 --csv lines.csv

Each code is looked up by the view, called from a pool of threads as a WSGI server calls
its views; the CSV (``terminology``, ``code``, ``value`` columns) is checked by the task.
Exit status: 0 all found and valid, 1 some not found or invalid, 3 no credentials.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import maxa_async as maxa
from maxa_async.sync import MaxaClient

client: MaxaClient | None = None  # one per process, made at start-up


def drug_view(request_args: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A blocking view: ``GET /drug?code=60002`` -> (HTTP status, JSON body)."""
    assert client is not None
    code = request_args.get("code", "")
    try:
        return 200, {"code": code, "name": client.terminology("eRx", code)}
    except maxa.InvalidInputError as exc:
        return 400, {"error": f"{exc.field}: bad value"}
    except maxa.NotFoundError:
        return 404, {"code": code, "error": "no such eRx code"}


def read_lines(path: str) -> Iterator[maxa.CodedText]:
    with open(path, encoding="utf-8-sig", newline="") as file:
        for row in csv.DictReader(file):
            yield maxa.CodedText(
                value=row.get("value") or "",
                terminology_id=row.get("terminology") or "",
                coded_string=row.get("code") or "",
            )


def validate_file_task(path: str) -> Counter[str]:
    """A Celery-style task: check every line of a CSV, streamed (memory stays flat)."""
    assert client is not None
    counts: Counter[str] = Counter()
    for outcome in client.validate_many(read_lines(path)):
        if outcome.error is not None:
            counts["error"] += 1
        else:
            counts["valid" if outcome.valid else "invalid"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    global client
    parser = argparse.ArgumentParser(description="Look up eRx codes; check a CSV.")
    parser.add_argument("codes", nargs="*", help="eRx codes to look up")
    parser.add_argument("--csv", help="CSV with terminology, code and value columns")
    args = parser.parse_args(argv)
    try:
        client = MaxaClient.from_env()
    except maxa.InvalidInputError as exc:
        print(f"sync_client: {exc}", file=sys.stderr)
        return 3
    with client:
        with ThreadPoolExecutor(max_workers=8) as server:  # a WSGI server's threads
            answers = list(server.map(drug_view, [{"code": code} for code in args.codes]))
        for status, body in answers:
            print(status, body.get("code", ""), body.get("name") or body.get("error"))
        counts: Counter[str] = Counter()
        if args.csv:
            counts = validate_file_task(args.csv)
            print(f"{counts['valid']} valid, {counts['invalid']} invalid, {counts['error']} errors")
    failed = any(status != 200 for status, _ in answers) or counts["invalid"] or counts["error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
