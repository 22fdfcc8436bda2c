"""``maxa demo``: a realistic bulk validation against an in-process fake gateway.

The batch looks like a month of a pharmacy chain's prescription lines: eRx codes whose
popularity follows a Zipf law (a few drugs on most lines, hence many duplicates), and a
share of invalid lines of the kinds seen in the field: values from the previous eRx
version, discontinued codes, and typing mistakes.
"""

from __future__ import annotations

import collections
import itertools
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ..client import MaxaClient
from ..models import CodedText, latest_version
from ._errors import UsageProblem
from ._output import Output, ProgressReporter

__all__ = ["DemoOptions", "DemoReport", "generate_batch", "run_demo"]

_TERMINOLOGY = "eRx"
_ZIPF_EXPONENT = 1.07


@attrs.frozen
class DemoOptions:
    items: int = 30_000
    concurrency: int = 64
    seed: int = 0
    invalid_share: float = 0.08


@attrs.frozen
class Line:
    item: CodedText
    expected: bool  # what the gateway should answer
    kind: str  # "current", "stale", "discontinued", "typo"


@attrs.define
class DemoReport:
    items: int = 0
    valid: int = 0
    invalid: int = 0
    errors: int = 0
    mismatches: int = 0  # answers that differ from what the batch planted: a bug
    planted: collections.Counter[str] = attrs.field(factory=collections.Counter)
    setup_s: float = 0.0
    elapsed_s: float = 0.0
    client: dict[str, Any] = attrs.field(factory=dict)
    gateway: dict[str, Any] = attrs.field(factory=dict)
    gateway_knobs: dict[str, Any] = attrs.field(factory=dict)
    concurrency_limit: int = 0
    admitted: int = 0  # the gateway's 200 answers while validating

    @property
    def throughput(self) -> float:
        return self.items / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def admitted_rate(self) -> float:
        """Requests per second the gateway answered 200 while validating."""
        return self.admitted / self.elapsed_s if self.elapsed_s else 0.0

    def share_of_limit(self) -> float | None:
        """How close the run came to the fake's requests/second limit (None: no limit)."""
        limit = self.gateway_knobs.get("rps_limit")
        return self.admitted_rate / limit if limit else None


def _typo(value: str, rng: random.Random) -> str:
    """A plausible slip: a strength off by a digit, a dropped letter, or swapped letters."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    choice = rng.random()
    if digits and choice < 0.4:
        i = rng.choice(digits)
        return value[: i + 1] + "0" + value[i + 1 :]
    letters = [i for i, ch in enumerate(value[:-1]) if ch.isalpha() and value[i + 1].isalpha()]
    if letters and choice < 0.7:
        i = rng.choice(letters)
        if value[i] != value[i + 1]:
            return value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    if letters:
        i = rng.choice(letters)
        return value[:i] + value[i + 1 :]
    return value + " X"


def generate_batch(
    latest: Sequence[CodedText],
    previous: Sequence[CodedText],
    count: int,
    *,
    seed: int,
    invalid_share: float,
) -> Iterator[Line]:
    """``count`` lines drawn from ``latest`` (Zipf popularity), ``invalid_share`` of them
    wrong: stale values and discontinued codes from ``previous``, or typos."""
    rng = random.Random(f"maxa-demo:{seed}")
    current = {term.coded_string: term.value for term in latest}
    stale = [
        t for t in previous if t.coded_string in current and current[t.coded_string] != t.value
    ]
    gone = [t for t in previous if t.coded_string not in current]
    popular = list(latest)
    rng.shuffle(popular)  # popularity is unrelated to the code number
    weights = list(
        itertools.accumulate(1.0 / (rank + 1) ** _ZIPF_EXPONENT for rank in range(len(popular)))
    )
    for _ in range(count):
        term = rng.choices(popular, cum_weights=weights)[0]
        if rng.random() >= invalid_share:
            yield Line(term, True, "current")
            continue
        kind = rng.random()
        if kind < 0.35 and stale:
            yield Line(rng.choice(stale), False, "stale")
        elif kind < 0.55 and gone:
            yield Line(rng.choice(gone), False, "discontinued")
        else:
            wrong = _typo(term.value, rng)
            yield Line(attrs.evolve(term, value=wrong), wrong == term.value, "typo")


async def run_demo(client: MaxaClient, options: DemoOptions, output: Output) -> DemoReport:
    report = DemoReport()
    started = time.monotonic()
    versions = await client.terminology_versions(_TERMINOLOGY)
    newest = latest_version(versions)
    if newest is None:
        raise UsageProblem(f"{_TERMINOLOGY} has no versions")
    latest = await client.terminologies_term_by_version(_TERMINOLOGY, version=newest.version)
    previous: list[CodedText] = []
    older = [v for v in versions if v.version_id < newest.version_id]
    if older:
        previous = await client.terminologies_term_by_version(
            _TERMINOLOGY, version=max(older, key=lambda v: v.version_id).version
        )
    report.setup_s = time.monotonic() - started
    output.note(
        f"fetched {len(latest):,} {_TERMINOLOGY} terms (version {newest.version}) and "
        f"{len(previous):,} of the previous version in {report.setup_s:.1f}s; "
        f"validating {options.items:,} prescription lines"
    )

    expected: collections.deque[Line] = collections.deque()

    def items() -> Iterator[CodedText]:
        for line in generate_batch(
            latest,
            previous,
            options.items,
            seed=options.seed,
            invalid_share=options.invalid_share,
        ):
            expected.append(line)
            report.planted[line.kind] += 1
            yield line.item

    started = time.monotonic()
    answered_before = client.stats.responses[200]
    with ProgressReporter(output, "validating", options.items, unit="lines") as progress:
        pending = 0
        async for outcome in client.validate_many(items()):
            line = expected.popleft()
            report.items += 1
            if outcome.error is not None:
                report.errors += 1
            elif outcome.valid:
                report.valid += 1
            else:
                report.invalid += 1
            if outcome.error is None and outcome.valid != line.expected:
                report.mismatches += 1
            pending += 1
            if pending == 100:
                progress.advance(pending)
                pending = 0
        progress.advance(pending)
    report.elapsed_s = time.monotonic() - started
    report.admitted = client.stats.responses[200] - answered_before
    report.client = client.stats.as_dict()
    report.concurrency_limit = client.limiter.limit
    return report


def _counter_total(counts: dict[str, int]) -> int:
    return sum(counts.values())


def print_demo(report: DemoReport, output: Output) -> None:
    client = report.client
    gateway = report.gateway
    share = report.share_of_limit()
    retries = _counter_total(client.get("retries", {}))
    latency = client.get("latency", {})
    summary: dict[str, Any] = {
        "items": report.items,
        "valid": report.valid,
        "invalid": report.invalid,
        "errors": report.errors,
        "mismatches": report.mismatches,
        "planted": dict(report.planted),
        "elapsed_s": round(report.elapsed_s, 3),
        "setup_s": round(report.setup_s, 3),
        "validations_per_s": round(report.throughput, 1),
        "http_requests": {
            "client_sent": client.get("requests_total", 0),
            "gateway_received": gateway.get("requests", 0),
            "coalesced_duplicates": client.get("coalesced", 0),
        },
        "tokens": {
            "client_password_grants": client.get("password_grants", 0),
            "client_refresh_grants": client.get("refresh_grants", 0),
            "gateway_password_grants": gateway.get("password_grants", 0),
            "gateway_refresh_grants": gateway.get("refresh_grants", 0),
        },
        "rate_limited_429": {
            "client_seen": client.get("rate_limited", 0),
            "gateway_sent": gateway.get("rate_limited", 0),
            "cooldowns": client.get("cooldowns", 0),
        },
        "retries": {"total": retries, "by_cause": client.get("retries", {})},
        "latency_ms": {key: round(value * 1000, 2) for key, value in latency.items()},
        "final_concurrency_limit": report.concurrency_limit,
        "admitted_per_s": round(report.admitted_rate, 1),
        "share_of_rate_limit": share if share is None else round(share, 3),
        "gateway_knobs": report.gateway_knobs,
    }
    if output.json_mode:
        output.json(summary)
        return
    causes = ", ".join(f"{cause}: {n}" for cause, n in sorted(client.get("retries", {}).items()))
    planted = report.planted
    knobs = report.gateway_knobs
    rows: list[tuple[str, object]] = [
        ("prescription lines", f"{report.items:,}"),
        ("valid", f"{report.valid:,}"),
        (
            "invalid",
            f"{report.invalid:,} (planted: {planted['stale']:,} stale values, "
            f"{planted['discontinued']:,} discontinued codes, {planted['typo']:,} typos)",
        ),
        ("errors", f"{report.errors:,}"),
        ("wrong answers", f"{report.mismatches:,}"),
        ("elapsed", f"{report.elapsed_s:.2f}s (+{report.setup_s:.2f}s fetching eRx)"),
        ("validations/second", f"{report.throughput:,.0f}"),
        (
            "HTTP requests",
            f"{summary['http_requests']['client_sent']:,} sent by the client, "
            f"{summary['http_requests']['gateway_received']:,} received by the gateway; "
            f"{summary['http_requests']['coalesced_duplicates']:,} duplicate lines shared "
            "an in-flight request",
        ),
        (
            "token grants",
            f"client: {client.get('password_grants', 0)} password, "
            f"{client.get('refresh_grants', 0)} refresh; gateway: "
            f"{gateway.get('password_grants', 0)} password, "
            f"{gateway.get('refresh_grants', 0)} refresh "
            f"(token lifetime {knobs.get('token_ttl', '?')}s)",
        ),
        (
            "429s",
            f"{client.get('rate_limited', 0)} seen by the client, "
            f"{gateway.get('rate_limited', 0)} sent by the gateway "
            f"(limit {knobs.get('rps_limit') or 'none'} req/s); "
            f"{client.get('cooldowns', 0)} shared cool-downs",
        ),
        ("retries", f"{retries}" + (f" ({causes})" if causes else "")),
        (
            "latency",
            ", ".join(f"{key} {value * 1000:.1f} ms" for key, value in latency.items()) or "-",
        ),
        ("concurrency", f"{report.concurrency_limit} at the end (adaptive)"),
        (
            "rate limit",
            f"{report.admitted_rate:,.0f} requests/s answered 200 while validating"
            + ("" if share is None else f": {share:.0%} of the fake's {knobs['rps_limit']:g}/s"),
        ),
    ]
    output.pairs(rows, title="maxa demo: bulk validation against the fake gateway")
    output.line(f"throughput: {report.throughput:.0f} validations/s")
