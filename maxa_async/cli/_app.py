"""The ``maxa`` command: thin click commands over :class:`maxa_async.MaxaClient`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import __version__
from ..client import MaxaClient
from ..errors import InvalidInputError
from ..jalali import JalaliDateTime
from ..models import CodedText, latest_version
from ..snapshot import HybridValidator
from ._demo import DemoOptions, print_demo, run_demo
from ._errors import EXIT_CODES_HELP, ExitCode, UsageProblem, describe, exit_code_for
from ._files import DEFAULT_ENCODING, Columns, check_encoding_name, file_format, write_terms
from ._output import Output, ensure_utf8_streams
from ._session import connect, run_async
from ._settings import DEFAULT_SNAPSHOT, GlobalOptions, resolve_settings
from ._snapshot import open_existing, run_info, run_pull, run_sync, snapshot_path
from ._validate import (
    ValidateJob,
    hybrid_validator,
    offline_validator,
    online_validator,
    print_report,
    run_validate,
)

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

_debug = bool(os.environ.get("MAXA_DEBUG"))

_EARLIEST = "1300/01/01"


# ---------------------------------------------------------------------------- global options


def _options() -> GlobalOptions:
    ctx = click.get_current_context()
    options: GlobalOptions = ctx.find_root().ensure_object(GlobalOptions)
    return options


def _enable_debug() -> None:
    global _debug
    _debug = True
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        setattr(ctx.find_root().ensure_object(GlobalOptions), name, value)
        if name == "debug":
            _enable_debug()

    return callback


_VALUE_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--client-id", "client_id", "OAuth2 client id [MAXA_CLIENT_ID]"),
    ("--client-secret", "client_secret", "client secret [MAXA_CLIENT_SECRET]; prefer the env"),
    ("--username", "username", "DITAS user name [MAXA_USERNAME]"),
    ("--password", "password", "DITAS password [MAXA_PASSWORD]; prefer the environment"),
    ("--pid", "pid", "service id sent as the pid header [MAXA_PID]"),
    ("--base-url", "base_url", "gateway URL [MAXA_BASE_URL; default the DITAS gateway]"),
    (
        "--redis-url",
        "redis_url",
        "fleet mode: share token and rate budget via Redis [MAXA_REDIS_URL]",
    ),
    ("--proxy", "proxy", "an http:// proxy for every request [MAXA_PROXY]"),
    ("--ca-bundle", "ca_bundle", "PEM file of the CAs to trust for the gateway [MAXA_CA_BUNDLE]"),
    ("--env-file", "env_file", "read MAXA_* settings from this file [default: ./.env if any]"),
)
_FLAG_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--emulator", "emulator", "talk to a fake gateway started in this process"),
    ("--json", "json", "print JSON (UTF-8) instead of tables"),
    ("--debug", "debug", "debug logging, and full tracebacks on errors"),
    ("--otel", "otel", "print an OpenTelemetry span per MAXA call to stderr (needs the SDK)"),
)


def global_options(command: F) -> F:
    """Connection and output options, accepted before or after a command's name."""
    for flag, name, text in reversed(_FLAG_OPTIONS):
        command = click.option(
            flag, is_flag=True, default=False, expose_value=False, callback=_store(name), help=text
        )(command)
    for flag, name, text in reversed(_VALUE_OPTIONS):
        command = click.option(
            flag,
            default=None,
            metavar="TEXT" if name != "env_file" else "PATH",
            expose_value=False,
            callback=_store(name),
            help=text,
        )(command)
    return command


def snapshot_option(command: F) -> F:
    """``--snapshot PATH``: the snapshot file (snapshot commands and validate)."""
    return click.option(
        "--snapshot",
        default=None,
        metavar="PATH",
        expose_value=False,
        callback=_store("snapshot"),
        help=f"the snapshot file [MAXA_SNAPSHOT; default: ./{DEFAULT_SNAPSHOT}]",
    )(command)


_DURATION_UNITS: dict[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Duration(click.ParamType[float]):
    """Seconds: ``90``, ``90s``, ``30m``, ``12h`` or ``7d``."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number, scale = float(value), 1.0
        else:
            text = str(value).strip().lower()
            scale = _DURATION_UNITS.get(text[-1:], 1.0)
            if text[-1:] in _DURATION_UNITS:
                text = text[:-1].strip()
            try:
                number = float(text)
            except ValueError:
                self.fail(
                    f"{value!r}: expected seconds, or a number with s, m, h or d (e.g. 12h)",
                    param,
                    ctx,
                )
        if not math.isfinite(number) or number < 0:
            self.fail(f"{value!r}: must be zero or more", param, ctx)
        return number * scale


class JalaliDate(click.ParamType[JalaliDateTime]):
    """A Jalali date, ``1390/10/10`` or ``1390/10/10 10:10:10``; a Gregorian ISO date
    (year 1700 or later, e.g. ``2012-01-01``) is converted."""

    name = "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> JalaliDateTime:
        if isinstance(value, JalaliDateTime):
            return value
        text = str(value).strip()
        try:
            parsed = JalaliDateTime.parse(text)
        except InvalidInputError as exc:
            self.fail(exc.message, param, ctx)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if parsed.year < 1700:
            return parsed
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            self.fail(f"{text!r}: {exc}", param, ctx)
        return JalaliDateTime.from_datetime(moment)


def _date_text(moment: JalaliDateTime) -> str:
    text = str(moment)
    return text.removesuffix(" 00:00:00")


def _term_rows(terms: Sequence[CodedText]) -> list[tuple[str, str, str]]:
    return [(t.terminology_id, t.coded_string, t.value) for t in terms]


def _terms_json(terms: Sequence[CodedText]) -> list[dict[str, str]]:
    return [
        {"terminology": t.terminology_id, "code": t.coded_string, "value": t.value} for t in terms
    ]


def _client_call(body: Callable[[MaxaClient, Output], Any], *, concurrency: int = 4) -> int:
    """Connect (configured gateway or --emulator), run ``body``, return its exit code."""
    options = _options()
    output = Output(json_mode=options.json)

    async def main() -> int:
        async with connect(options, max_concurrency=concurrency) as connection:
            result = await body(connection.client, output)
        return int(result) if isinstance(result, int) else ExitCode.OK

    return run_async(main)


# ---------------------------------------------------------------------------- commands


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="maxa")
@global_options
def cli() -> None:
    """maxa: look codes up in MAXA (Iran's health coding reference) and validate
    prescription files, through the DITAS gateway.

    Credentials come from flags, then MAXA_CLIENT_ID, MAXA_CLIENT_SECRET, MAXA_USERNAME,
    MAXA_PASSWORD, MAXA_PID (and MAXA_BASE_URL) in the environment, then ./.env.
    Try it without any: `maxa demo`, or any command with --emulator.
    """


@cli.command()
@click.option(
    "--items",
    type=click.IntRange(min=1),
    default=30_000,
    show_default=True,
    help="prescription lines to check",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=1000),
    default=64,
    show_default=True,
    help="most requests in flight",
)
@click.option("--seed", default=0, show_default=True, help="seed of the batch and the faults")
@click.option(
    "--rps-limit",
    default=2000.0,
    show_default=True,
    help="the fake gateway's requests/second limit, answered with 429 (0: none)",
)
@click.option(
    "--token-ttl", default=3.0, show_default=True, help="the fake's token lifetime, seconds"
)
@click.option(
    "--error-rate", default=0.002, show_default=True, help="share of requests answered 5xx"
)
@click.option("--drop-rate", default=0.001, show_default=True, help="share of connections dropped")
@click.option("--latency", default=0.0, show_default=True, help="seconds added per request")
@global_options
def demo(
    items: int,
    concurrency: int,
    seed: int,
    rps_limit: float,
    token_ttl: float,
    error_rate: float,
    drop_rate: float,
    latency: float,
) -> int:
    """Bulk-validate a generated batch against a fake gateway started in this process.

    The batch repeats popular drugs (Zipf) and plants 8% invalid lines; the fake gateway
    limits the request rate, expires tokens every few seconds and fails a few requests,
    so the summary shows the client backing off, refreshing and retrying.
    """
    from ..testing import GatewayConfig

    try:
        config = GatewayConfig(
            seed=seed,
            rps_limit=rps_limit or None,
            token_ttl=token_ttl,
            error_rate=error_rate,
            drop_rate=drop_rate,
            latency=latency,
        )
    except (TypeError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None
    options = _options()
    output = Output(json_mode=options.json)

    async def main() -> int:
        async with connect(options, max_concurrency=concurrency, emulator=config) as connection:
            report = await run_demo(
                connection.client,
                DemoOptions(items=items, concurrency=concurrency, seed=seed),
                output,
            )
            if connection.gateway is not None:
                report.gateway = connection.gateway.stats.as_dict()
                report.gateway_knobs = connection.gateway.config.as_dict()
        print_demo(report, output)
        return ExitCode.ERROR if report.mismatches else ExitCode.OK

    return run_async(main)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def emulator(args: tuple[str, ...]) -> int:
    """Run the fake gateway in the foreground: [--host H] [--port N] [knobs...].

    `maxa emulator --help` lists every knob (token lifetime, rate limit, error rates...).
    """
    from ._emulator import run_emulator

    return run_emulator(args)


_FAR_FUTURE = "far future (after the year 9999)"


def _expiry_text(expires_at: float) -> str | None:
    """The local expiry time, or None when the gateway's expires_in is so large (1e12,
    1e300) that no date can say it."""
    try:
        moment = dt.datetime.fromtimestamp(expires_at).astimezone()
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds")


@cli.command()
@click.option("--show", is_flag=True, help="print the access token itself (keep it secret)")
@global_options
def token(show: bool) -> int:
    """Check the credentials: get a token and print its lifetime."""

    options = _options()
    if options.emulator:
        sources = "the in-process fake gateway (--emulator)"
    else:
        found = resolve_settings(options).sources
        sources = ", ".join(f"{name}: {found[name]}" for name in sorted(found)) or "defaults"

    async def body(client: MaxaClient, output: Output) -> int:
        granted = await client.tokens.get()
        expires_at = _expiry_text(granted.expires_at)
        payload: dict[str, Any] = {
            "base_url": client.base_url,
            "token_type": granted.token_type,
            "expires_in": round(granted.lifetime),
            # JSON: null past what a date can say; a table says "far future"
            "expires_at": expires_at if expires_at or output.json_mode else _FAR_FUTURE,
            "scope": granted.scope,
        }
        payload["settings_from"] = sources
        if show:
            payload["access_token"] = granted.access_token
        if output.json_mode:
            output.json(payload)
        else:
            rows = [(key.replace("_", " "), value) for key, value in payload.items()]
            output.pairs(rows, title="token granted")
            if not show:
                output.note("the token itself is not shown; pass --show to print it")
        return ExitCode.OK

    return _client_call(body)


@cli.command()
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

    return _client_call(body)


@cli.command()
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

    return _client_call(body)


@cli.command()
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

    return _client_call(body)


@cli.command()
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

    return _client_call(body)


_TABLE_LIMIT = 1000


@cli.command()
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

    return _client_call(body)


@cli.group(epilog=EXIT_CODES_HELP)
@snapshot_option
@global_options
def snapshot() -> None:
    """Offline snapshots: whole terminology versions in one local SQLite file.

    Pull a terminology once, keep it current with `maxa snapshot sync` (from cron, say),
    and validate against it with `maxa validate FILE --offline` (no network, no
    credentials) or `--hybrid` (the gateway only for codes the snapshot lacks).

    The file is --snapshot PATH, else MAXA_SNAPSHOT (environment or .env), else
    ./maxa-snapshot.db. Several processes may read it while one pulls or syncs.
    """


@snapshot.command("pull")
@click.argument("terminology")
@click.option(
    "--version",
    "version",
    default=None,
    help="a version, as `maxa versions TERMINOLOGY` lists them [default: the latest]",
)
@snapshot_option
@global_options
def snapshot_pull(terminology: str, version: str | None) -> int:
    """Fetch a whole version of TERMINOLOGY into the snapshot file (created if missing).

    TerminologyVersions picks the version, TerminologiesTermByVersion fetches its terms,
    and one transaction replaces the terminology's previous snapshot: a failed or
    interrupted pull leaves the previous one intact. Prints the terms, the version, the
    time taken and the file's size.
    """
    options = _options()
    output = Output(json_mode=options.json)
    path = snapshot_path(options)
    return run_async(lambda: run_pull(options, path, terminology, version, output))


@snapshot.command("sync")
@click.argument("terminologies", nargs=-1, metavar="[TERMINOLOGY]...")
@snapshot_option
@global_options
def snapshot_sync(terminologies: tuple[str, ...]) -> int:
    """Bring the snapshots up to date (every terminology in the file, or those named).

    If TerminologyVersions marks a newer version latest, it is pulled whole (repulled);
    otherwise SearchTerminology returns the terms created since the last sync (minus a
    5-minute margin) and they are written in: counted as added (new codes), changed (new
    value) or unchanged. Codes deleted within a version go unnoticed until the next one.
    """
    options = _options()
    output = Output(json_mode=options.json)
    path = snapshot_path(options)
    return run_async(lambda: run_sync(options, path, terminologies, output))


@snapshot.command("info")
@snapshot_option
@global_options
def snapshot_info() -> int:
    """List the snapshots in the file: terminology, version, terms, last sync, age, gateway.

    Reads the file only: no gateway, no credentials.
    """
    options = _options()
    output = Output(json_mode=options.json)
    path = snapshot_path(options)
    return run_async(lambda: run_info(path, output))


def _require_credentials_for_hybrid(options: GlobalOptions) -> None:
    if options.emulator:
        return
    try:
        resolve_settings(options).require_credentials()
    except UsageProblem as exc:
        raise UsageProblem(
            f"--hybrid asks the gateway about what the snapshot lacks: {exc}; "
            "--offline needs no credentials"
        ) from None


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="results file (.csv or .jsonl); rerunning with the same --out resumes after its "
    "last row [default: results to stdout, summary to stderr]",
)
@click.option("--terminology-column", default="terminology", show_default=True)
@click.option("--code-column", default="code", show_default=True)
@click.option("--value-column", default="value", show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=1000),
    default=32,
    show_default=True,
    help="most requests in flight",
)
@click.option("--input-format", type=click.Choice(["csv", "jsonl"]), help="[default: by extension]")
@click.option(
    "--out-format",
    type=click.Choice(["csv", "jsonl"]),
    help="[default: by --out's extension; to stdout: csv, or jsonl with --json]",
)
@click.option("--limit", type=click.IntRange(min=1), help="stop after this many rows")
@click.option("--restart", is_flag=True, help="overwrite --out instead of resuming")
@click.option(
    "--encoding",
    default=DEFAULT_ENCODING,
    show_default=True,
    help="of FILE, e.g. cp1256 for a file saved by Windows in Arabic/Persian (a UTF-8 byte "
    "order mark is accepted)",
)
@click.option(
    "--escape-formulas/--no-escape-formulas",
    default=True,
    show_default=True,
    help="CSV results: put a ' before a value that starts with =, +, -, @, a tab or a "
    "carriage return, so that a spreadsheet shows it instead of running it (plain numbers "
    "such as -5 are left as they are)",
)
@click.option(
    "--offline",
    is_flag=True,
    help="answer from the snapshot file only: no network, no credentials needed",
)
@click.option(
    "--hybrid",
    is_flag=True,
    help="answer from the snapshot file, asking the gateway only for codes it lacks "
    "and terminologies never pulled",
)
@click.option(
    "--max-age",
    type=Duration(),
    default=None,
    help="with --hybrid: ask the gateway about a value the snapshot calls invalid if the "
    "snapshot was synced longer ago than this (e.g. 12h, 7d) [default: never]",
)
@snapshot_option
@global_options
def validate(
    file: Path,
    out: Path | None,
    terminology_column: str,
    code_column: str,
    value_column: str,
    concurrency: int,
    input_format: str | None,
    out_format: str | None,
    limit: int | None,
    restart: bool,
    encoding: str,
    escape_formulas: bool,
    offline: bool,
    hybrid: bool,
    max_age: float | None,
) -> int:
    """Validate every row of FILE (CSV with a header row, or JSON lines): ValidateCts, or a
    local snapshot (--offline, --hybrid).

    Each row needs a terminology id, a code and a value. One result row per input row:
    row, line, terminology, code, value, status (valid, invalid or error), message.
    Rows that cannot be read (missing column, bad JSON, empty code, non-ASCII
    terminology id) become error rows with their line number; the run goes on.

    With --offline the rows are checked against the snapshot file (`maxa snapshot pull`)
    with the gateway's rules, without network or credentials; a terminology not in the
    file gives error rows. With --hybrid the snapshot answers what it can and the
    gateway is asked about codes it lacks (newer than the snapshot) and terminologies
    never pulled; the summary counts each. Results, resuming and exit codes are the same
    in every mode.

    FILE is read as --encoding (UTF-8 by default): a file whose start does not decode is
    refused before anything is written; a later row that does not decode is an error row.
    In CSV results a value starting with =, +, -, @, a tab or a carriage return gets a
    leading ' so that a spreadsheet shows it instead of running it as a formula (plain
    numbers such as -5 are left alone); --no-escape-formulas writes values exactly, and
    JSON lines results are never changed. Only one run at a time may write an --out file:
    a second one is refused (exit 3) while the first holds its lock.
    """
    options = _options()
    output = Output(json_mode=options.json)
    if offline and hybrid:
        raise UsageProblem("--offline and --hybrid exclude each other; pick one")
    if max_age is not None and not hybrid:
        raise UsageProblem("--max-age applies to --hybrid only")
    if offline and options.emulator:
        raise UsageProblem("--offline asks no gateway; drop --emulator (or use --hybrid)")
    source_format = file_format(str(file), input_format, "input file")
    check_encoding_name(encoding)
    if out is not None and out.resolve() == file.resolve():
        raise UsageProblem("--out must not be the input file")
    if out is not None:
        result_format = file_format(str(out), out_format, "--out")
    else:
        result_format = file_format("", out_format or ("jsonl" if options.json else "csv"), "")
    job = ValidateJob(
        source=file,
        source_format=source_format,
        columns=Columns(terminology_column, code_column, value_column),
        out=out,
        out_format=result_format,
        restart=restart,
        limit=limit,
        window=max(256, 16 * concurrency),
        encoding=encoding,
        escape_formulas=escape_formulas,
    )

    async def main() -> int:
        if offline:
            async with open_existing(snapshot_path(options)) as store:
                report = await run_validate(offline_validator(store), job, output)
        elif hybrid:
            _require_credentials_for_hybrid(options)
            async with (
                open_existing(snapshot_path(options)) as store,
                connect(options, max_concurrency=concurrency) as connection,
            ):
                checker = HybridValidator(
                    store, connection.client, max_age=max_age, window=job.window
                )
                report = await run_validate(hybrid_validator(checker), job, output)
        else:
            async with connect(options, max_concurrency=concurrency) as connection:
                report = await run_validate(
                    online_validator(connection.client, job.window), job, output
                )
        print_report(report, job, output)
        return report.exit_code

    return run_async(main)


from ._serve import serve as _serve_command  # noqa: E402 (it uses the options above)

cli.add_command(_serve_command)

# ---------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """The ``maxa`` console script. Returns the exit code (see ``maxa --help``)."""
    ensure_utf8_streams()
    # A failure is told in one line by the handler below; without this, logging's
    # last-resort handler would print the library's warnings about it too (--debug shows
    # every record through the root logger).
    library = logging.getLogger("maxa_async")
    if not any(isinstance(handler, logging.NullHandler) for handler in library.handlers):
        library.addHandler(logging.NullHandler())
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="maxa", standalone_mode=False
        )
    except click.exceptions.Abort:
        sys.stderr.write("maxa: interrupted\n")
        return ExitCode.INTERRUPTED
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `maxa`: the help, not an error
        sys.stdout.write(exc.format_message() + "\n")
        return ExitCode.OK
    except click.ClickException as exc:
        sys.stderr.write(f"maxa: error: {exc.format_message()}\n")
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            sys.stderr.write(f"try '{exc.ctx.command_path} --help'\n")
        return ExitCode.USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("maxa: interrupted\n")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # UsageProblem, MaxaError and anything unexpected: one line
        if _debug:
            traceback.print_exc()
        sys.stderr.write(f"maxa: {describe(exc, debug=_debug)}\n")
        return exit_code_for(exc)
    return int(result) if isinstance(result, int) else ExitCode.OK
