"""CSV records framed before they are parsed: a quoted value may span lines, and a record
too long to hold (a quoted value left open, a 10 MB cell) is skipped whole.

Python's csv module, given a file, stops at its field-size limit in the middle of such a
value and resumes on the next line as if a new record started there: extra error rows,
and every row number after them shifted. Framing first keeps one record one row.
"""

from __future__ import annotations

import collections
import csv
import sys
from collections.abc import Iterable, Iterator
from typing import Final, Literal

__all__ = [
    "MAX_ROW_CHARS",
    "Damage",
    "RecordParser",
    "csv_records",
    "quoted_after",
]

#: A row (a CSV record, a JSON line) longer than this many characters is an error row;
#: what follows is read on, and never held in memory past this size.
MAX_ROW_CHARS: Final = 1 << 20

#: Why a record cannot be parsed: longer than the limit, or the file ends inside a quote.
Damage = Literal["too long", "never ends"] | None

# Each field of a record within MAX_ROW_CHARS fits (plus the ' of a formula escape, in a
# results file); the module's default of 128 KiB would refuse a value the row limit allows.
_FIELD_LIMIT: Final = 2 * MAX_ROW_CHARS


def quoted_after(line: str, quoted: bool) -> bool:
    """Whether a CSV record is still inside a quoted value at the end of ``line``
    (``quoted``: whether it was at its start).

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


def csv_records(
    lines: Iterable[str], *, limit: int = MAX_ROW_CHARS
) -> Iterator[tuple[int, list[str], Damage]]:
    """(the line it starts on, its lines, its damage) for each record of ``lines`` (a file
    opened with ``newline=""``). A record too long has no lines; one that never ends has
    those read up to the end of the file."""
    held: list[str] = []
    size = 0
    start = 0
    quoted = False
    too_long = False
    for number, line in enumerate(lines, start=1):
        if not quoted:
            if '"' not in line:  # the common case: one line, one record
                if len(line) > limit:
                    yield number, [], "too long"
                else:
                    yield number, [line], None
                continue
            start = number
        quoted = quoted_after(line, quoted)
        if not too_long:
            size += len(line)
            if size > limit:
                too_long = True
                held = []
            else:
                held.append(line)
        if not quoted:
            yield start, held, "too long" if too_long else None
            held, size, too_long = [], 0, False
    if quoted:
        yield start, held, "too long" if too_long else "never ends"


class _Feed:
    """Hands the lines of one record at a time to a long-lived csv.reader."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: collections.deque[str] = collections.deque()

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.lines:
            return self.lines.popleft()
        raise StopIteration


class RecordParser:
    """Parses framed records with one csv.reader (a reader per record costs more than the
    rest of the row)."""

    def __init__(self) -> None:
        if csv.field_size_limit() < _FIELD_LIMIT:
            csv.field_size_limit(min(_FIELD_LIMIT, sys.maxsize))
        self._feed = _Feed()
        self._reader = csv.reader(self._feed)

    def parse(self, lines: list[str]) -> list[str]:
        """The fields of the record made of ``lines``; raises csv.Error."""
        self._feed.lines.extend(lines)
        try:
            return next(self._reader, [])
        finally:
            self._feed.lines.clear()
