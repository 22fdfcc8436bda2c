"""``maxa validate FILE``: one result row per input row, online, --offline or --hybrid."""

from __future__ import annotations

from pathlib import Path

import click

from ...bulk import default_window
from ...snapshot import HybridValidator
from .._errors import EXIT_CODES_HELP, UsageProblem
from .._files import DEFAULT_ENCODING, Columns, check_encoding_name, file_format
from .._options import (
    Duration,
    answer_mode,
    concurrency_option,
    current_options,
    global_options,
    snapshot_option,
)
from .._output import Output
from .._session import connect, require_gateway_credentials, run_async
from .._snapshot import open_existing, snapshot_path
from .._validate import (
    ValidateJob,
    hybrid_validator,
    offline_validator,
    online_validator,
    print_report,
    run_validate,
)

__all__ = ["validate"]


@click.command(epilog=EXIT_CODES_HELP)
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
@concurrency_option(32)
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
    options = current_options()
    output = Output(json_mode=options.json)
    mode = answer_mode(options, offline=offline, hybrid=hybrid, max_age=max_age)
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
        window=default_window(concurrency),
        encoding=encoding,
        escape_formulas=escape_formulas,
    )

    async def main() -> int:
        if mode == "offline":
            async with open_existing(snapshot_path(options)) as store:
                report = await run_validate(offline_validator(store), job, output)
        elif mode == "hybrid":
            require_gateway_credentials(
                options,
                why="--hybrid asks the gateway about what the snapshot lacks",
                hint="; --offline needs no credentials",
            )
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
