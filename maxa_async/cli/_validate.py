"""``maxa validate``: stream a file through ``validate_many``, write one result per row.

The rows are answered by the gateway (online), a local snapshot (``--offline``) or both
(``--hybrid``): a :class:`Validator` says which; reading, writing and resuming are the same.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import types
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import attrs

from ..client import MaxaClient, ValidationOutcome
from ..errors import AuthenticationError, ForbiddenError, HttpsRequiredError
from ..models import CodedText
from ..snapshot import HybridValidator, NoSnapshotError, SnapshotStore
from ._errors import ExitCode, no_snapshot_message
from ._files import (
    DEFAULT_ENCODING,
    Columns,
    Format,
    InputRow,
    ResultRow,
    ResultWriter,
    check_input,
    count_input_rows,
    lock_results,
    read_rows,
    scan_results,
)
from ._output import Output, ProgressReporter
from ._settings import Mode

__all__ = [
    "ValidateJob",
    "ValidateReport",
    "Validator",
    "hybrid_validator",
    "offline_validator",
    "online_validator",
    "print_report",
    "run_validate",
]

# Stands in for a row that could not be read, so outcomes stay aligned with input rows.
# The client refuses it before sending anything (blank terminology id).
_PLACEHOLDER = CodedText(value="", terminology_id="", coded_string="")

# Errors that would fail every row alike: stop the run instead of recording them.
_FATAL = (AuthenticationError, ForbiddenError, HttpsRequiredError)

_INVALID_MESSAGE = "the value is not the one registered for this code (or the code is unknown)"

_ANSWERED_BY: Mapping[Mode, str] = types.MappingProxyType(
    {
        "online": "the gateway (ValidateCts)",
        "offline": "the snapshot only (--offline)",
        "hybrid": "the snapshot, the gateway on a miss (--hybrid)",
    }
)

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
    encoding: str = DEFAULT_ENCODING
    escape_formulas: bool = True  # CSV results only


@attrs.frozen
class Validator:
    """What answers the rows: ``validate_many`` yields one outcome per item, in order."""

    mode: Mode
    validate_many: Callable[[Iterator[CodedText]], AsyncIterator[ValidationOutcome]]
    #: awaited before anything is written (the online path checks the credentials)
    preflight: Callable[[], Awaitable[object]] | None = None
    #: counts for the summary, read when the run ends (the hybrid's offline/online split)
    counts: Callable[[], Mapping[str, int]] | None = None
    snapshot: str | None = None  # the snapshot file, offline and hybrid


def online_validator(client: MaxaClient, window: int) -> Validator:
    """ValidateCts for every row; bad credentials or a blocked IP would turn every row into
    an error row (and a rerun would skip them all), so they are checked first."""

    def validate_many(items: Iterator[CodedText]) -> AsyncIterator[ValidationOutcome]:
        return client.validate_many(items, window=window)

    return Validator("online", validate_many, preflight=client.tokens.get)


def offline_validator(store: SnapshotStore) -> Validator:
    """The snapshot only: no network, no credentials."""
    return Validator("offline", store.validate_many, snapshot=store.path)


def hybrid_validator(hybrid: HybridValidator) -> Validator:
    """The snapshot first, the gateway for what it lacks. No preflight: with the gateway
    down the rows the snapshot answers still get answered (the others become error rows);
    rejected credentials stop the run at the first row that needed the gateway."""
    return Validator(
        "hybrid",
        hybrid.validate_many,
        counts=lambda: hybrid.stats.as_dict(),
        snapshot=hybrid.store.path,
    )


@attrs.define
class ValidateReport:
    statuses: Counter[str] = attrs.field(factory=Counter)  # every row in the results
    resumed_rows: int = 0  # rows found in --out before this run
    this_run: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    problems: list[ResultRow] = attrs.field(factory=list)  # the first few not-valid rows
    mode: Mode = "online"
    snapshot: str | None = None
    counts: dict[str, int] | None = None  # --hybrid: HybridStats

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
            "mode": self.mode,
            "snapshot": self.snapshot,
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
            "hybrid": self.counts,
        }


def _result(row: InputRow, outcome: ValidationOutcome) -> ResultRow:
    if row.problem is not None:
        status, message = "error", row.problem
    elif isinstance(outcome.error, NoSnapshotError):
        status, message = "error", no_snapshot_message(outcome.error)
    elif outcome.error is not None:
        status, message = "error", str(outcome.error)
    elif outcome.valid:
        status, message = "valid", ""
    else:
        status, message = "invalid", _INVALID_MESSAGE
    if status == "error":
        # It may echo what no encoder takes (a lone surrogate from a JSON "\ud800"
        # escape): written backslash-escaped, so that the row is written and the run goes
        # on. Valid and invalid rows passed the checks: nothing to escape there.
        row = attrs.evolve(
            row,
            terminology=_writable(row.terminology),
            code=_writable(row.code),
            value=_writable(row.value),
        )
    return ResultRow(
        row=row.row,
        line=row.line,
        terminology=row.terminology,
        code=row.code,
        value=row.value,
        status=status,  # type: ignore[arg-type]
        message=message,
    )


def _writable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) backslash-escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def run_validate(validator: Validator, job: ValidateJob, output: Output) -> ValidateReport:
    check_input(job.source, job.source_format, job.columns, job.encoding)
    if job.out is None:
        return await _run_validate(validator, job, output)
    with lock_results(job.out) as locked:
        if not locked:
            output.note(
                f"warning: cannot lock {job.out} on this file system; "
                "do not start a second run on the same --out"
            )
        return await _run_validate(validator, job, output)


async def _run_validate(validator: Validator, job: ValidateJob, output: Output) -> ValidateReport:
    report = ValidateReport(mode=validator.mode, snapshot=validator.snapshot)
    append = False
    if job.out is not None and not job.restart:
        existing = scan_results(job.out, job.out_format)
        report.resumed_rows = existing.rows
        report.statuses.update(existing.statuses)
        append = existing.rows > 0
        if existing.rows:
            output.note(f"resuming: {existing.rows:,} rows already in {job.out}")

    rows: Iterator[InputRow] = read_rows(job.source, job.source_format, job.columns, job.encoding)
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

    if validator.preflight is not None:
        await validator.preflight()  # before anything is written
    writer = ResultWriter(
        job.out, job.out_format, append=append, escape_formulas=job.escape_formulas
    )
    started = time.monotonic()
    outcomes = validator.validate_many(items())
    try:
        with ProgressReporter(output, "validating", total) as progress:
            async for outcome in outcomes:
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
        # Stopped early (a fatal error, an interruption): end the requests still in flight
        # now, while the client is open, rather than when the loop shuts down.
        aclose = getattr(outcomes, "aclose", None)
        if aclose is not None:
            await aclose()
        if validator.counts is not None:
            report.counts = dict(validator.counts())
    return report


def print_report(report: ValidateReport, job: ValidateJob, output: Output) -> None:
    if output.json_mode and job.out is not None:
        output.json(report.as_dict(job))
        return
    lines: list[tuple[str, object]] = [
        ("input", str(job.source)),
        ("results", str(job.out) if job.out is not None else "stdout"),
        ("answered by", _ANSWERED_BY[report.mode]),
        ("rows", f"{report.total:,}"),
        ("valid", f"{report.statuses['valid']:,}"),
        ("invalid", f"{report.statuses['invalid']:,}"),
        ("errors", f"{report.statuses['error']:,}"),
    ]
    if report.resumed_rows:
        lines.append(("resumed after row", f"{report.resumed_rows:,}"))
    rate = report.this_run / report.elapsed if report.elapsed else 0.0
    lines.append(("this run", f"{report.this_run:,} rows in {report.elapsed:.1f}s ({rate:,.0f}/s)"))
    if report.snapshot is not None:
        lines.append(("snapshot", report.snapshot))
    if report.counts is not None:
        counts = report.counts
        lines.append(
            (
                "offline answers",
                f"{counts['offline_hits']:,} ({counts['offline_valid']:,} valid, "
                f"{counts['offline_invalid']:,} invalid)",
            )
        )
        lines.append(
            (
                "gateway calls",
                f"{counts['online_calls']:,} (codes not in the snapshot: "
                f"{counts['code_misses']:,}, terminologies not pulled: "
                f"{counts['terminology_misses']:,}, stale rechecks: "
                f"{counts['stale_rechecks']:,}; failed: {counts['online_errors']:,})",
            )
        )
    if report.interrupted:
        lines.append(("interrupted", "rerun the same command to continue"))
    lines.append(("exit code", int(report.exit_code)))
    # Without --out the results own stdout; the summary goes to stderr.
    to_stderr = job.out is None
    output.pairs(lines, title="maxa validate", err=to_stderr)
    for row in report.problems:
        text = f"  line {row.line} (row {row.row}): {row.status}: {row.message}"
        output.note(text) if to_stderr else output.line(text)
