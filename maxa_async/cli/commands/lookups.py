"""``maxa terminologies|versions|lookup|search|terms``: read what the gateway knows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click

from ...client import MaxaClient
from ...jalali import JalaliDateTime
from ...models import CodedText, latest_version
from .._errors import ExitCode, UsageProblem
from .._files import file_format, write_terms
from .._options import JalaliDate, current_options, global_options
from .._output import Output
from .._session import client_call

__all__ = ["lookup", "search", "terminologies", "terms", "versions"]

_EARLIEST = "1300/01/01"

#: ``maxa terms`` prints at most this many rows as a table; ``--out`` writes them all.
_TABLE_LIMIT = 1000


def _date_text(moment: JalaliDateTime) -> str:
    text = str(moment)
    return text.removesuffix(" 00:00:00")


def _term_rows(terms: Sequence[CodedText]) -> list[tuple[str, str, str]]:
    return [(t.terminology_id, t.coded_string, t.value) for t in terms]


def _terms_json(terms: Sequence[CodedText]) -> list[dict[str, str]]:
    return [
        {"terminology": t.terminology_id, "code": t.coded_string, "value": t.value} for t in terms
    ]


@click.command()
@click.option(
    "--since",
    type=JalaliDate(),
    default=_EARLIEST,
    show_default=True,
    help="only those defined since this Jalali date",
)
@global_options
def terminologies(since: JalaliDateTime) -> int:
    """List terminology ids (CtsTerminologies)."""

    async def body(client: MaxaClient, output: Output) -> int:
        ids = await client.cts_terminologies(since=since)
        if output.json_mode:
            output.json(ids)
        else:
            output.table(
                ["#", "terminology"],
                ((i, name) for i, name in enumerate(ids, start=1)),
                caption=f"{len(ids)} terminologies defined since {_date_text(since)}",
            )
        return ExitCode.OK

    return client_call(current_options(), body)


@click.command()
@click.argument("terminology")
@global_options
def versions(terminology: str) -> int:
    """List the versions of TERMINOLOGY (TerminologyVersions)."""

    async def body(client: MaxaClient, output: Output) -> int:
        found = await client.terminology_versions(terminology)
        if output.json_mode:
            output.json(
                [
                    {
                        "id": v.id,
                        "terminology": v.terminology_id,
                        "version": v.version,
                        "version_id": v.version_id,
                        "is_last": v.is_last,
                    }
                    for v in found
                ]
            )
        else:
            output.table(
                ["id", "terminology", "version", "version id", "latest"],
                ((v.id, v.terminology_id, v.version, v.version_id, v.is_last) for v in found),
                title=f"versions of {terminology}",
            )
        return ExitCode.OK

    return client_call(current_options(), body)


@click.command()
@click.argument("terminology")
@click.argument("code")
@click.option("--version", "version", default=None, help="a version (default: the latest)")
@global_options
def lookup(terminology: str, code: str, version: str | None) -> int:
    """Print the value of CODE in TERMINOLOGY (Terminology, or TerminologyValueByVersion)."""

    async def body(client: MaxaClient, output: Output) -> int:
        if version is None:
            value = await client.terminology(terminology, code)
        else:
            value = await client.terminology_value_by_version(terminology, code, version=version)
        payload = {
            "terminology": terminology.strip(),
            "code": code.strip(),
            "version": version or "latest",
            "value": value,
        }
        if output.json_mode:
            output.json(payload)
        else:
            output.pairs(list(payload.items()))
        return ExitCode.OK

    return client_call(current_options(), body)


@click.command()
@click.argument("terminology")
@click.option("--since", type=JalaliDate(), required=True, help="Jalali date, e.g. 1390/10/10")
@global_options
def search(terminology: str, since: JalaliDateTime) -> int:
    """List the terms of TERMINOLOGY created since a date (SearchTerminology)."""

    async def body(client: MaxaClient, output: Output) -> int:
        terms = await client.search_terminology(terminology, since=since)
        if output.json_mode:
            output.json(_terms_json(terms))
        else:
            output.table(
                ["terminology", "code", "value"],
                _term_rows(terms),
                caption=f"{len(terms)} terms created since {_date_text(since)}",
            )
        return ExitCode.OK

    return client_call(current_options(), body)


@click.command()
@click.argument("terminology")
@click.option("--version", "version", default=None, help="a version (default: the latest)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="write every term to this .csv or .jsonl file",
)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="of --out")
@global_options
def terms(terminology: str, version: str | None, out: Path | None, fmt: str | None) -> int:
    """Fetch a whole version of TERMINOLOGY (TerminologiesTermByVersion)."""
    out_format = file_format(str(out), fmt, "--out") if out is not None else None

    async def body(client: MaxaClient, output: Output) -> int:
        chosen = version
        if chosen is None:
            listed = await client.terminology_versions(terminology)
            latest = latest_version(listed)
            if latest is None:
                raise UsageProblem(f"{terminology} has no versions")
            chosen = latest.version
        started = time.monotonic()
        found = await client.terminologies_term_by_version(terminology, version=chosen)
        elapsed = time.monotonic() - started
        if out is not None and out_format is not None:
            count = write_terms(out, out_format, found)
            summary = {
                "terminology": terminology.strip(),
                "version": chosen,
                "terms": count,
                "out": str(out),
                "elapsed_s": round(elapsed, 3),
            }
            if output.json_mode:
                output.json(summary)
            else:
                output.line(
                    f"wrote {count:,} terms of {terminology.strip()} version {chosen} "
                    f"to {out} ({elapsed:.1f}s)"
                )
        elif output.json_mode:
            output.json(_terms_json(found))
        else:
            shown = found[:_TABLE_LIMIT]
            caption = f"{len(found):,} terms of version {chosen}"
            if len(found) > len(shown):
                caption += f"; the first {len(shown):,} shown, use --out FILE for all"
            output.table(["terminology", "code", "value"], _term_rows(shown), caption=caption)
        return ExitCode.OK

    return client_call(current_options(), body)
