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


#: A row (a CSV record, a JSON line) longer than this many characters is an error row; what
#: follows is read on, never held in memory past this size.
MAX_ROW_CHARS = 1 << 20

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
            _csv_header(path, _csv_records(file), columns)


def read_rows(
    path: Path, fmt: Format, columns: Columns, encoding: str = DEFAULT_ENCODING
) -> Iterator[InputRow]:
    """Stream the data rows of ``path``; blank lines are not rows."""
    codec = check_encoding_name(encoding)
    if fmt == "csv":
        return _read_csv(path, columns, codec, encoding)
    return _read_jsonl(path, columns, codec, encoding)


@attrs.frozen
class _Record:
    """The lines of one CSV record as Python's csv module frames them."""

    line: int  # where it starts
    lines: list[str]  # empty when the record is longer than MAX_ROW_CHARS
    too_long: bool = False
    unterminated: bool = False  # the file ends inside a quoted value


def _quoted_after(line: str, quoted: bool) -> bool:
    """Whether a CSV record is still inside a quoted value at the end of ``line``.

    The rules of Python's csv module (default dialect, not strict): a quote opens a quoted
    value only as a field's first character; inside one, a doubled quote is a quote and the
    next single one closes it; anywhere else a quote is an ordinary character.
    """
    position = 0
    while True:
        if quoted:
            close = line.find('"', position)
            if close == -1:
                return True
            if line.startswith('"', close + 1):
                position = close + 2
                continue
            quoted = False
            position = close + 1
        elif line.startswith('"', position):  # at a field's start
            quoted = True
            position += 1
            continue
        # The rest of this field is unquoted: the next field starts after the next comma.
        comma = line.find(",", position)
        if comma == -1:
            return False
        position = comma + 1


def _csv_records(file: IO[str]) -> Iterator[_Record]:
    """Frame ``file`` into records, so that a quoted value spanning lines is one record
    and a record too long to hold is skipped whole (the csv module would resume inside it)."""
    lines: list[str] = []
    size = 0
    start = 0
    quoted = False
    too_long = False
    for number, line in enumerate(file, start=1):
        if not quoted:
            if '"' not in line:  # the common case: one line, one record
                if len(line) > MAX_ROW_CHARS:
                    yield _Record(number, [], too_long=True)
                else:
                    yield _Record(number, [line])
                continue
            start = number
        quoted = _quoted_after(line, quoted)
        if not too_long:
            size += len(line)
            if size > MAX_ROW_CHARS:
                too_long = True
                lines = []
            else:
                lines.append(line)
        if not quoted:
            yield _Record(start, lines, too_long=too_long)
            lines, size, too_long = [], 0, False
    if quoted:
        yield _Record(start, lines, too_long=too_long, unterminated=True)


def _csv_header(path: Path, records: Iterator[_Record], columns: Columns) -> dict[str, int] | None:
    """The index of each wanted column, or None for an empty file."""
    record = next(records, None)
    if record is None:
        return None
    if record.too_long or record.unterminated:
        raise UsageProblem(f"{path}: unreadable CSV header (a quoted name never ends)")
    try:
        header = next(csv.reader(record.lines), [])
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


def _record_problem(record: _Record, encoding: str) -> str | None:
    if record.too_long:
        return f"row longer than {MAX_ROW_CHARS:,} characters (a quoted value left open?)"
    if record.unterminated:
        return f"a quoted value that starts on line {record.line} never ends"
    if any(_undecodable(line) for line in record.lines):
        return _encoding_hint(encoding)
    return None


def _read_csv(path: Path, columns: Columns, codec: str, encoding: str) -> Iterator[InputRow]:
    with _open_text(path, codec) as file:
        records = _csv_records(file)
        indexes = _csv_header(path, records, columns)
        if indexes is None:
            return
        number = 0
        for record in records:
            problem = _record_problem(record, encoding)
            if problem is not None:
                number += 1
                yield InputRow(number, record.line, "", "", "", problem)
                continue
            try:
                fields = next(csv.reader(record.lines), [])
            except csv.Error as exc:
                number += 1
                yield InputRow(number, record.line, "", "", "", f"unreadable CSV: {exc}")
                continue
            if not any(field.strip() for field in fields):
                continue
            number += 1
            found = {name: fields[i] if i < len(fields) else None for name, i in indexes.items()}
            absent = [name for name, value in found.items() if value is None]
            problem = f"missing column {absent[0]!r}" if absent else None
            terminology, code, value = (found[name] or "" for name in columns.names())
            yield InputRow(number, record.line, terminology, code, value, problem)


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
        file = path.open("rb")
    except FileNotFoundError:
        return ExistingResults(0, Counter())
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    with file:
        if fmt == "csv":
            found, whole = _scan_csv_results(path, file)
        else:
            found, whole = _scan_jsonl_results(path, file)
        size = file.seek(0, os.SEEK_END)
    if whole < size:
        # Half a row at the end: written by a run that was killed. A rerun writes it again.
        with path.open("rb+") as damaged:
            damaged.truncate(whole)
    return found


def _scan_csv_results(path: Path, file: IO[bytes]) -> tuple[ExistingResults, int]:
    """The rows, and the size of the file up to the end of its last whole row."""
    statuses: Counter[str] = Counter()
    header: list[str] | None = None
    expected_row = 1
    whole = 0  # offset after the last whole record
    offset = 0
    lines: list[str] = []
    quoted = False
    for raw in file:
        offset += len(raw)
        line = raw.decode("utf-8", errors="replace")
        lines.append(line)
        quoted = _quoted_after(line, quoted)
        if quoted or not raw.endswith(b"\n"):
            continue  # the record goes on (or the file ends inside it)
        try:
            record = next(csv.reader(lines), [])
        except csv.Error:
            raise _not_results(path) from None
        lines = []
        whole = offset
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
    tail = "".join(lines).encode("utf-8", errors="replace")
    if header is None:
        ours = (",".join(RESULT_FIELDS) + "\n").encode()
    else:
        ours = f"{expected_row},".encode()
    _check_tail(path, tail, ours)
    return ExistingResults(expected_row - 1, statuses), whole


def _scan_jsonl_results(path: Path, file: IO[bytes]) -> tuple[ExistingResults, int]:
    statuses: Counter[str] = Counter()
    expected_row = 1
    whole = 0
    tail = b""
    for raw in file:
        if not raw.endswith(b"\n"):
            tail = raw
            break
        whole += len(raw)
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
    return ExistingResults(expected_row - 1, statuses), whole


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
    (even on SIGKILL), and the refusal needs no timeout. A file created here and left empty
    (the run stopped before its header, e.g. on rejected credentials) is removed again.
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
        finally:
            if not existed:
                _remove_if_empty(path, handle)
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
