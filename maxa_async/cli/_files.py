"""Input rows of ``maxa validate`` (CSV or JSONL, streamed) and its resumable results file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Literal

import attrs

from ..models import CodedText
from ._errors import UsageProblem

__all__ = [
    "RESULT_FIELDS",
    "TERM_FIELDS",
    "Columns",
    "InputRow",
    "ResultRow",
    "ResultWriter",
    "count_input_rows",
    "file_format",
    "read_rows",
    "scan_results",
    "write_terms",
]

Format = Literal["csv", "jsonl"]
Status = Literal["valid", "invalid", "error"]

TERM_FIELDS = ("terminology", "code", "value")
RESULT_FIELDS = ("row", "line", "terminology", "code", "value", "status", "message")

_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def file_format(path: str, given: str | None, what: str) -> Format:
    """``given`` (csv/jsonl), else the extension (.csv, .jsonl, .ndjson)."""
    if given is not None:
        return "csv" if given == "csv" else "jsonl"
    found = _EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise UsageProblem(
            f"{what} {path!r}: cannot tell the format from the extension; "
            "name it .csv or .jsonl, or pass the format option"
        )
    return found


@attrs.frozen
class Columns:
    """Which CSV columns or JSON keys hold the terminology id, the code and the value."""

    terminology: str = "terminology"
    code: str = "code"
    value: str = "value"

    def names(self) -> tuple[str, str, str]:
        return (self.terminology, self.code, self.value)


@attrs.frozen
class InputRow:
    """One data row. ``problem`` says why it could not be read (it is then an error row)."""

    row: int  # 1-based among data rows (what resuming counts)
    line: int  # line of the file where the row starts
    terminology: str
    code: str
    value: str
    problem: str | None = None


@attrs.frozen
class ResultRow:
    row: int
    line: int
    terminology: str
    code: str
    value: str
    status: Status
    message: str

    def as_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


def _open_text(path: Path) -> IO[str]:
    try:
        # Undecodable bytes become U+FFFD: that row fails validation, the run goes on.
        return path.open(encoding="utf-8-sig", errors="replace", newline="")
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None


def read_rows(path: Path, fmt: Format, columns: Columns) -> Iterator[InputRow]:
    """Stream the data rows of ``path``; blank lines are not rows."""
    if fmt == "csv":
        return _read_csv(path, columns)
    return _read_jsonl(path, columns)


def _read_csv(path: Path, columns: Columns) -> Iterator[InputRow]:
    with _open_text(path) as file:
        reader = csv.reader(file)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise UsageProblem(f"{path}: unreadable CSV header: {exc}") from None
        if header is None:
            return
        names = [name.strip() for name in header]
        indexes: dict[str, int] = {}
        for wanted in columns.names():
            if wanted not in names:
                raise UsageProblem(
                    f"{path}: no column {wanted!r} in the header (found: {', '.join(names)}); "
                    "name the columns with --terminology-column, --code-column, --value-column"
                )
            indexes[wanted] = names.index(wanted)
        number = 0
        last_line = reader.line_num
        while True:
            start = last_line + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last_line = reader.line_num
                number += 1
                yield InputRow(number, start, "", "", "", f"unreadable CSV: {exc}")
                continue
            last_line = reader.line_num
            if not any(field.strip() for field in record):
                continue
            number += 1
            fields = {name: record[i] if i < len(record) else None for name, i in indexes.items()}
            absent = [name for name, value in fields.items() if value is None]
            problem = f"missing column {absent[0]!r}" if absent else None
            terminology, code, value = (fields[name] or "" for name in columns.names())
            yield InputRow(number, start, terminology, code, value, problem)


def _read_jsonl(path: Path, columns: Columns) -> Iterator[InputRow]:
    with _open_text(path) as file:
        number = 0
        for line_number, raw in enumerate(file, start=1):
            text = raw.strip()
            if not text:
                continue
            number += 1
            try:
                data = json.loads(text)
            except ValueError as exc:
                yield InputRow(number, line_number, "", "", "", f"not valid JSON: {exc}")
                continue
            if not isinstance(data, dict):
                yield InputRow(
                    number, line_number, "", "", "", "expected a JSON object on this line"
                )
                continue
            fields: dict[str, str] = {}
            problem = None
            for name in columns.names():
                value = data.get(name)
                if value is None:
                    problem = problem or f"missing key {name!r}"
                    fields[name] = ""
                elif isinstance(value, str):
                    fields[name] = value
                elif isinstance(value, int) and not isinstance(value, bool):
                    fields[name] = str(value)  # codes are often written as numbers
                else:
                    problem = problem or f"{name!r} must be a string"
                    fields[name] = json.dumps(value, ensure_ascii=False)
            terminology, code, value = (fields[name] for name in columns.names())
            yield InputRow(number, line_number, terminology, code, value, problem)


def count_input_rows(path: Path, fmt: Format) -> int | None:
    """A quick count of non-blank lines (minus the CSV header), for the progress bar only."""
    try:
        with path.open("rb") as file:
            count = sum(1 for line in file if line.strip())
    except OSError:
        return None
    if fmt == "csv":
        count = max(count - 1, 0)
    return count


# ----------------------------------------------------------------------------- results file


@attrs.frozen
class ExistingResults:
    rows: int
    statuses: Counter[str]


def scan_results(path: Path, fmt: Format) -> ExistingResults:
    """Count the rows already written to ``path``, dropping a last line cut short by a kill.

    The file must have been written by ``maxa validate`` (same columns) or be empty.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ExistingResults(0, Counter())
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        return ExistingResults(0, Counter())
    _truncate_partial_line(path)
    statuses: Counter[str] = Counter()
    rows = 0
    expected_row = 1
    with path.open(encoding="utf-8", errors="replace", newline="") as file:
        if fmt == "csv":
            reader = csv.reader(file)
            header = next(reader, None)
            if header is not None and tuple(header) != RESULT_FIELDS:
                raise _not_results(path)
            for record in reader:
                if not record:
                    continue
                if len(record) != len(RESULT_FIELDS) or record[0] != str(expected_row):
                    raise _not_results(path)
                statuses[record[5]] += 1
                rows += 1
                expected_row += 1
        else:
            for raw in file:
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except ValueError:
                    raise _not_results(path) from None
                if not isinstance(data, dict) or data.get("row") != expected_row:
                    raise _not_results(path)
                statuses[str(data.get("status"))] += 1
                rows += 1
                expected_row += 1
    return ExistingResults(rows, statuses)


def _not_results(path: Path) -> UsageProblem:
    return UsageProblem(
        f"{path} exists but is not a results file of maxa validate (columns "
        f"{', '.join(RESULT_FIELDS)}, rows numbered from 1); "
        "pick another --out or pass --restart to overwrite it"
    )


def _truncate_partial_line(path: Path) -> None:
    with path.open("rb+") as file:
        file.seek(0, io.SEEK_END)
        size = file.tell()
        file.seek(max(size - 1, 0))
        if file.read(1) == b"\n":
            return
        # Walk back to the last newline; everything after it is half a row.
        position = size
        chunk = 4096
        while position > 0:
            start = max(position - chunk, 0)
            file.seek(start)
            block = file.read(position - start)
            newline = block.rfind(b"\n")
            if newline != -1:
                file.truncate(start + newline + 1)
                return
            position = start
        file.truncate(0)


class ResultWriter:
    """Appends result rows, flushing at least every ``flush_every`` seconds."""

    def __init__(
        self, path: Path | None, fmt: Format, *, append: bool, flush_every: float = 0.5
    ) -> None:
        self._fmt = fmt
        self._flush_every = flush_every
        self._last_flush = time.monotonic()
        if path is None:
            self._file: IO[str] = sys.stdout
            self._owned = False
            needs_header = True
        else:
            try:
                mode = "a" if append else "w"
                self._file = path.open(mode, encoding="utf-8", newline="")
            except OSError as exc:
                raise UsageProblem(f"cannot write {path}: {exc.strerror or exc}") from None
            self._owned = True
            needs_header = not append or path.stat().st_size == 0
        self._csv = csv.writer(self._file, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None and needs_header:
            self._csv.writerow(RESULT_FIELDS)

    def write(self, result: ResultRow) -> None:
        if self._csv is not None:
            # Spelled out: attrs.astuple costs more than the rest of the row (offline runs).
            self._csv.writerow(
                (
                    result.row,
                    result.line,
                    result.terminology,
                    result.code,
                    result.value,
                    result.status,
                    result.message,
                )
            )
        else:
            self._file.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
        now = time.monotonic()
        if now - self._last_flush >= self._flush_every:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._file.close()


def write_terms(path: Path, fmt: Format, terms: Iterable[CodedText]) -> int:
    """Write ``terms`` to ``path`` (CSV or JSONL) through a temporary file, so a failed or
    interrupted download never leaves half a file behind. Returns the number written."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise UsageProblem(f"cannot write in {directory}: {exc.strerror or exc}") from None
    count = 0
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            if fmt == "csv":
                writer = csv.writer(file, lineterminator="\n")
                writer.writerow(TERM_FIELDS)
                for term in terms:
                    writer.writerow((term.terminology_id, term.coded_string, term.value))
                    count += 1
            else:
                for term in terms:
                    record = dict(
                        zip(
                            TERM_FIELDS,
                            (term.terminology_id, term.coded_string, term.value),
                            strict=True,
                        )
                    )
                    file.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a terms list is not secret
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return count
