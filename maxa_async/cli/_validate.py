"""``maxa validate``: stream a file through ``validate_many``, write one result per row."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import attrs

from ..client import MaxaClient, ValidationOutcome
from ..errors import AuthenticationError, ForbiddenError, HttpsRequiredError
from ..models import CodedText
from ._errors import ExitCode
from ._files import (
    Columns,
    Format,
    InputRow,
    ResultRow,
    ResultWriter,
    count_input_rows,
    read_rows,
    scan_results,
)
from ._output import Output, ProgressReporter

__all__ = ["ValidateJob", "ValidateReport", "run_validate"]

# Stands in for a row that could not be read, so outcomes stay aligned with input rows.
# The client refuses it before sending anything (blank terminology id).
_PLACEHOLDER = CodedText(value="", terminology_id="", coded_string="")

# Errors that would fail every row alike: stop the run instead of recording them.
_FATAL = (AuthenticationError, ForbiddenError, HttpsRequiredError)

_INVALID_MESSAGE = "the value is not the one registered for this code (or the code is unknown)"

#: Rows listed (by line) in the summary.
_SHOWN_PROBLEMS = 10


@attrs.frozen
class ValidateJob:
    source: Path
    source_format: Format
    columns: Columns
    out: Path | None
    out_format: Format
    restart: bool
    limit: int | None
    window: int


@attrs.define
class ValidateReport:
    statuses: Counter[str] = attrs.field(factory=Counter)  # every row in the results
    resumed_rows: int = 0  # rows found in --out before this run
    this_run: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    problems: list[ResultRow] = attrs.field(factory=list)  # the first few not-valid rows

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.statuses["error"]:
            return ExitCode.ERROR
        if self.statuses["invalid"]:
            return ExitCode.INVALID
        return ExitCode.OK

    def as_dict(self, job: ValidateJob) -> dict[str, object]:
        return {
            "input": str(job.source),
            "out": str(job.out) if job.out is not None else None,
            "rows": self.total,
            "valid": self.statuses["valid"],
            "invalid": self.statuses["invalid"],
            "error": self.statuses["error"],
            "resumed_after": self.resumed_rows,
            "validated_now": self.this_run,
            "elapsed_s": round(self.elapsed, 3),
            "rows_per_s": round(self.this_run / self.elapsed, 1) if self.elapsed else None,
            "interrupted": self.interrupted,
            "exit_code": int(self.exit_code),
            "first_problems": [row.as_dict() for row in self.problems],
        }


def _result(row: InputRow, outcome: ValidationOutcome) -> ResultRow:
    if row.problem is not None:
        status, message = "error", row.problem
    elif outcome.error is not None:
        status, message = "error", str(outcome.error)
    elif outcome.valid:
        status, message = "valid", ""
    else:
        status, message = "invalid", _INVALID_MESSAGE
    return ResultRow(
        row=row.row,
        line=row.line,
        terminology=row.terminology,
        code=row.code,
        value=row.value,
        status=status,  # type: ignore[arg-type]
        message=message,
    )


async def run_validate(client: MaxaClient, job: ValidateJob, output: Output) -> ValidateReport:
    report = ValidateReport()
    append = False
    if job.out is not None and not job.restart:
        existing = scan_results(job.out, job.out_format)
        report.resumed_rows = existing.rows
        report.statuses.update(existing.statuses)
        append = existing.rows > 0
        if existing.rows:
            output.note(f"resuming: {existing.rows:,} rows already in {job.out}")

    rows: Iterator[InputRow] = read_rows(job.source, job.source_format, job.columns)
    stop = None if job.limit is None else report.resumed_rows + job.limit
    rows = itertools.islice(rows, report.resumed_rows, stop)
    total = count_input_rows(job.source, job.source_format)
    if total is not None:
        total = max(total - report.resumed_rows, 0)
        if job.limit is not None:
            total = min(total, job.limit)

    # Rows read but not yet answered, in input order. validate_many answers in the same
    # order and holds at most `window` items, so this stays small.
    waiting: collections.deque[InputRow] = collections.deque()

    def items() -> Iterator[CodedText]:
        for row in rows:
            waiting.append(row)
            if row.problem is not None:
                yield _PLACEHOLDER
            else:
                yield CodedText(
                    value=row.value, terminology_id=row.terminology, coded_string=row.code
                )

    # Bad credentials or a blocked IP would turn every row into an error row (and a
    # rerun would skip them all): check them before writing anything.
    await client.tokens.get()
    writer = ResultWriter(job.out, job.out_format, append=append)
    started = time.monotonic()
    try:
        with ProgressReporter(output, "validating", total) as progress:
            async for outcome in client.validate_many(items(), window=job.window):
                if isinstance(outcome.error, _FATAL):
                    raise outcome.error  # not this row's fault; the rerun starts from it
                result = _result(waiting.popleft(), outcome)
                writer.write(result)
                report.statuses[result.status] += 1
                report.this_run += 1
                if result.status != "valid" and len(report.problems) < _SHOWN_PROBLEMS:
                    report.problems.append(result)
                progress.advance()
    except asyncio.CancelledError:
        # Ctrl-C or SIGTERM: what was written stays; a rerun continues after it.
        report.interrupted = True
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        writer.close()
        report.elapsed = time.monotonic() - started
    return report


def print_report(report: ValidateReport, job: ValidateJob, output: Output) -> None:
    if output.json_mode and job.out is not None:
        output.json(report.as_dict(job))
        return
    lines: list[tuple[str, object]] = [
        ("input", str(job.source)),
        ("results", str(job.out) if job.out is not None else "stdout"),
        ("rows", f"{report.total:,}"),
        ("valid", f"{report.statuses['valid']:,}"),
        ("invalid", f"{report.statuses['invalid']:,}"),
        ("errors", f"{report.statuses['error']:,}"),
    ]
    if report.resumed_rows:
        lines.append(("resumed after row", f"{report.resumed_rows:,}"))
    rate = report.this_run / report.elapsed if report.elapsed else 0.0
    lines.append(("this run", f"{report.this_run:,} rows in {report.elapsed:.1f}s ({rate:,.0f}/s)"))
    if report.interrupted:
        lines.append(("interrupted", "rerun the same command to continue"))
    lines.append(("exit code", int(report.exit_code)))
    # Without --out the results own stdout; the summary goes to stderr.
    to_stderr = job.out is None
    output.pairs(lines, title="maxa validate", err=to_stderr)
    for row in report.problems:
        text = f"  line {row.line} (row {row.row}): {row.status}: {row.message}"
        output.note(text) if to_stderr else output.line(text)
