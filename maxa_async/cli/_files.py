"""Input rows of ``maxa validate`` (CSV or JSONL, streamed) and its resumable results file."""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import os
import re
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Literal

import attrs

from ..models import CodedText
from ._errors import UsageProblem
from ._records import MAX_ROW_CHARS, Damage, RecordParser, csv_records

__all__ = [
    "MAX_ROW_CHARS",
    "RESULT_FIELDS",
    "TERM_FIELDS",
    "Columns",
    "InputRow",
    "ResultRow",
    "ResultWriter",
    "check_encoding_name",
    "check_input",
    "count_input_rows",
    "escape_formula",
    "file_format",
    "lock_results",
    "read_rows",
    "scan_results",
    "write_terms",
]

Format = Literal["csv", "jsonl"]
Status = Literal["valid", "invalid", "error"]

TERM_FIELDS = ("terminology", "code", "value")
RESULT_FIELDS = ("row", "line", "terminology", "code", "value", "status", "message")

_EXTENSIONS: Mapping[str, Format] = types.MappingProxyType(
    {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
)


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


DEFAULT_ENCODING = "utf-8"

# Undecodable input bytes are read as these lone surrogates (errors="surrogateescape"):
# a row holding one is an encoding error row, not a value that fails validation.
_UNDECODABLE = re.compile("[\udc80-\udcff]")

# How much of the input is checked before anything is written: a file that is wholly in
# another encoding is refused at once instead of becoming a results file of error rows.
_ENCODING_PROBE_BYTES = 64 * 1024


def check_encoding_name(encoding: str) -> str:
    """The codec to read input with: ``encoding``, with utf-8 accepting a byte order mark."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise UsageProblem(
            f"--encoding {encoding!r}: unknown encoding (e.g. utf-8, cp1256, utf-16)"
        ) from None
    return "utf-8-sig" if name == "utf-8" else name


def _encoding_hint(encoding: str) -> str:
    return (
        f"not valid {encoding}; if the file was saved in another encoding, name it with "
        "--encoding (e.g. --encoding cp1256 for Windows Arabic/Persian)"
    )


def _open_text(path: Path, encoding: str) -> IO[str]:
    try:
        return path.open(encoding=encoding, errors="surrogateescape", newline="")
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None


def _undecodable(text: str) -> bool:
    return not text.isascii() and _UNDECODABLE.search(text) is not None


def check_input(path: Path, fmt: Format, columns: Columns, encoding: str) -> None:
    """Refuse, before anything is written, a file whose start does not decode with
    ``encoding`` or (CSV) whose header lacks a column."""
    codec = check_encoding_name(encoding)
    try:
        with path.open("rb") as file:
            head = file.read(_ENCODING_PROBE_BYTES)
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        # final=False: a character cut at the end of the probe is not an error
        codecs.getincrementaldecoder(codec)("strict").decode(head, final=False)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise UsageProblem(
            f"{path}: line {line}: byte 0x{head[exc.start]:02x} is {_encoding_hint(encoding)}"
        ) from None
    if fmt == "csv":
        with _open_text(path, codec) as file:
            _csv_header(path, csv_records(file), columns)


def read_rows(
    path: Path, fmt: Format, columns: Columns, encoding: str = DEFAULT_ENCODING
) -> Iterator[InputRow]:
    """Stream the data rows of ``path``; blank lines are not rows."""
    codec = check_encoding_name(encoding)
    if fmt == "csv":
        return _read_csv(path, columns, codec, encoding)
    return _read_jsonl(path, columns, codec, encoding)


def _csv_header(
    path: Path, records: Iterator[tuple[int, list[str], Damage]], columns: Columns
) -> dict[str, int] | None:
    """The index of each wanted column, or None for an empty file."""
    first = next(records, None)
    if first is None:
        return None
    _, lines, damage = first
    if damage is not None:
        raise UsageProblem(f"{path}: unreadable CSV header (a quoted name {damage})")
    try:
        header = RecordParser().parse(lines)
    except csv.Error as exc:
        raise UsageProblem(f"{path}: unreadable CSV header: {exc}") from None
    names = [name.strip() for name in header]
    indexes: dict[str, int] = {}
    for wanted in columns.names():
        if wanted not in names:
            raise UsageProblem(
                f"{path}: no column {wanted!r} in the header (found: {', '.join(names)}); "
                "name the columns with --terminology-column, --code-column, --value-column"
            )
        indexes[wanted] = names.index(wanted)
    return indexes


def _damage_problem(start: int, damage: Damage) -> str:
    if damage == "too long":
        return f"row longer than {MAX_ROW_CHARS:,} characters (a quoted value left open?)"
    return f"a quoted value that starts on line {start} never ends"


def _read_csv(path: Path, columns: Columns, codec: str, encoding: str) -> Iterator[InputRow]:
    with _open_text(path, codec) as file:
        records = csv_records(file)
        indexes = _csv_header(path, records, columns)
        if indexes is None:
            return
        parser = RecordParser()
        wanted = [(name, indexes[name]) for name in columns.names()]
        at_terminology, at_code, at_value = (index for _, index in wanted)
        width = max(index for _, index in wanted) + 1
        number = 0
        for start, lines, damage in records:
            if damage is not None:
                number += 1
                yield InputRow(number, start, "", "", "", _damage_problem(start, damage))
                continue
            try:
                fields = parser.parse(lines)
            except csv.Error as exc:
                number += 1
                yield InputRow(number, start, "", "", "", f"unreadable CSV: {exc}")
                continue
            if not "".join(fields).strip():
                continue  # a blank line
            number += 1
            problem = None
            if len(fields) < width:
                absent = next(name for name, index in wanted if index >= len(fields))
                problem = f"missing column {absent!r}"
                fields = fields + [""] * (width - len(fields))
            terminology, code, value = fields[at_terminology], fields[at_code], fields[at_value]
            if _undecodable(terminology + code + value):  # other columns do not matter
                yield InputRow(number, start, "", "", "", _encoding_hint(encoding))
                continue
            yield InputRow(number, start, terminology, code, value, problem)


def _read_jsonl(path: Path, columns: Columns, codec: str, encoding: str) -> Iterator[InputRow]:
    with _open_text(path, codec) as file:
        number = 0
        for line_number, raw in enumerate(file, start=1):
            text = raw.strip()
            if not text:
                continue
            number += 1
            if len(text) > MAX_ROW_CHARS:
                too_long = f"line longer than {MAX_ROW_CHARS:,} characters"
                yield InputRow(number, line_number, "", "", "", too_long)
                continue
            if _undecodable(text):
                yield InputRow(number, line_number, "", "", "", _encoding_hint(encoding))
                continue
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
            problem: str | None = None
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
    """Count the rows already written to ``path``, dropping a last row cut short by a kill
    (in CSV, possibly inside a quoted value that spans lines).

    The file must have been written by ``maxa validate`` (same columns) or be empty; any
    other file is refused untouched.
    """
    try:
        if fmt == "csv":
            with _open_text(path, "utf-8") as text:
                size = os.fstat(text.fileno()).st_size
                found, tail = _scan_csv_results(path, text)
        else:
            with path.open("rb") as binary:
                size = os.fstat(binary.fileno()).st_size
                found, tail = _scan_jsonl_results(path, binary)
    except FileNotFoundError:
        return ExistingResults(0, Counter())
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    if tail:
        # Half a row at the end: written by a run that was killed. A rerun writes it again.
        with path.open("rb+") as damaged:
            damaged.truncate(size - len(tail))
    return found


def _scan_csv_results(path: Path, file: IO[str]) -> tuple[ExistingResults, bytes]:
    """The rows, and the bytes of a last row cut short."""
    statuses: Counter[str] = Counter()
    header: list[str] | None = None
    expected_row = 1
    tail: list[str] | None = None
    parser = RecordParser()
    for _, lines, damage in csv_records(file, limit=sys.maxsize):
        if tail is not None:
            raise _not_results(path)  # something after a cut row: not a cut at all
        if damage is not None or not lines[-1].endswith("\n"):
            tail = lines  # the file ends inside this row (a quoted value, or its last line)
            continue
        try:
            record = parser.parse(lines)
        except csv.Error:
            raise _not_results(path) from None
        if header is None:
            header = record
            if tuple(header) != RESULT_FIELDS:
                raise _not_results(path)
            continue
        if not record:
            continue
        if len(record) != len(RESULT_FIELDS) or record[0] != str(expected_row):
            raise _not_results(path)
        statuses[record[5]] += 1
        expected_row += 1
    cut = "".join(tail or ()).encode("utf-8", errors="surrogateescape")  # the bytes read
    if header is None:
        ours = (",".join(RESULT_FIELDS) + "\n").encode()
    else:
        ours = f"{expected_row},".encode()
    _check_tail(path, cut, ours)
    return ExistingResults(expected_row - 1, statuses), cut


def _scan_jsonl_results(path: Path, file: IO[bytes]) -> tuple[ExistingResults, bytes]:
    statuses: Counter[str] = Counter()
    expected_row = 1
    tail = b""
    for raw in file:
        if not raw.endswith(b"\n"):
            tail = raw
            break
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            raise _not_results(path) from None
        if not isinstance(data, dict) or data.get("row") != expected_row:
            raise _not_results(path)
        statuses[str(data.get("status"))] += 1
        expected_row += 1
    _check_tail(path, tail, f'{{"row": {expected_row},'.encode())
    return ExistingResults(expected_row - 1, statuses), tail


def _check_tail(path: Path, tail: bytes, ours: bytes) -> None:
    """A cut last row is dropped only if it starts as our next row would: never cut
    someone else's file."""
    if tail.strip() and not (tail.startswith(ours) or ours.startswith(tail)):
        raise _not_results(path)


def _not_results(path: Path) -> UsageProblem:
    return UsageProblem(
        f"{path} exists but is not a results file of maxa validate (columns "
        f"{', '.join(RESULT_FIELDS)}, rows numbered from 1); "
        "pick another --out or pass --restart to overwrite it"
    )


@contextlib.contextmanager
def lock_results(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the results file for a whole run, so that a second run
    on the same ``--out`` is refused at once instead of writing rows twice.

    flock on the file itself: no lock file is left behind, the lock ends with the process
    (even on SIGKILL), and the refusal needs no timeout. A file created here is removed
    again if the run fails before writing to it (rejected credentials, say).
    Yields False where locks are not available (Windows, some network file systems).
    """
    existed = path.exists()
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageProblem(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        locked = _try_lock(handle, path)
        try:
            yield locked
        except BaseException:
            if not existed:
                _remove_if_empty(path, handle)
            raise
    finally:
        os.close(handle)  # releases the lock


def _try_lock(handle: int, path: Path) -> bool:
    if sys.platform == "win32":
        return False
    import fcntl

    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageProblem(
            f"{path} is being written by another maxa validate run (it holds a lock on the "
            "file); wait until that run ends (rerunning then resumes), or pick another --out"
        ) from None
    except OSError:
        return False
    return True


def _remove_if_empty(path: Path, handle: int) -> None:
    with contextlib.suppress(OSError):
        mine = os.fstat(handle)
        if mine.st_size == 0 and os.path.samestat(mine, os.stat(path)):
            os.unlink(path)


_FORMULA_STARTS = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def escape_formula(text: str) -> str:
    """``text`` with a leading ``'`` if a spreadsheet would run it as a formula (it starts
    with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return), the usual CSV-injection
    escape. A plain number such as ``-5`` or ``+1.5`` is left as it is: a spreadsheet reads
    it as that number."""
    if text and text[0] in _FORMULA_STARTS and _PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


class ResultWriter:
    """Appends result rows, flushing at least every ``flush_every`` seconds."""

    def __init__(
        self,
        path: Path | None,
        fmt: Format,
        *,
        append: bool,
        escape_formulas: bool = True,
        flush_every: float = 0.5,
    ) -> None:
        self._fmt = fmt
        # Only CSV is opened by spreadsheets; JSON lines keep the values exactly.
        self._escape = escape_formula if escape_formulas and fmt == "csv" else _unchanged
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
                    self._escape(result.terminology),
                    self._escape(result.code),
                    self._escape(result.value),
                    result.status,
                    self._escape(result.message),
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


def _unchanged(text: str) -> str:
    return text


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
