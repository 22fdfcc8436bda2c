"""Printing: rich tables for people, JSON for machines, progress that degrades without a TTY."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = ["Output", "ProgressReporter", "ensure_utf8_streams"]

# Piped output has no terminal width; wide enough that drug names are never wrapped.
_PIPE_WIDTH = 240


def ensure_utf8_streams() -> None:
    """Persian values must print whatever the locale says (a CI runner may say ASCII)."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        reconfigure = getattr(stream, "reconfigure", None)
        if encoding != "utf8" and reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")


def _console(file: TextIO) -> Console:
    width = None if file.isatty() else int(os.environ.get("COLUMNS", "0") or 0) or _PIPE_WIDTH
    return Console(file=file, width=width, markup=False, highlight=False, emoji=False)


def _cell(value: object) -> Text:
    # Text, not markup: "[MEGACORT]" in a drug name is data, not a style tag.
    if value is None:
        return Text("")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    return Text(str(value))


class Output:
    """Where a command prints: ``stdout`` for results, ``stderr`` for progress and notes."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.out = _console(sys.stdout)
        self.err = _console(sys.stderr)

    def json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[object]],
        *,
        title: str | None = None,
        caption: str | None = None,
    ) -> None:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(value) for value in row))
        self.out.print(table)
        if caption:
            self.line(caption)

    def pairs(
        self, rows: Iterable[tuple[str, object]], *, title: str | None = None, err: bool = False
    ) -> None:
        """A two-column key/value table (on stderr with ``err``)."""
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for key, value in rows:
            table.add_row(_cell(key), _cell(value))
        (self.err if err else self.out).print(table)

    def line(self, text: str) -> None:
        """A plain line on stdout (for lines that scripts grep)."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """A plain line on stderr."""
        self.err.print(Text(text))


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s")


class ProgressReporter:
    """A rich progress bar (rate, ETA) on a terminal; on a pipe, a plain line now and then."""

    def __init__(
        self,
        output: Output,
        description: str,
        total: int | None,
        *,
        unit: str = "rows",
        plain_every: float = 2.0,
    ) -> None:
        self._output = output
        self._description = description
        self._total = total
        self._unit = unit
        self._plain_every = plain_every
        self._interactive = output.err.is_terminal
        self._progress: Progress | None = None
        self._task_id: Any = None
        self._done = 0
        self._started = time.monotonic()
        self._last_plain = self._started

    def __enter__(self) -> ProgressReporter:
        if self._interactive:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(self._unit),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._output.err,
                transient=False,
            )
            self._progress.start()
            self._task_id = self._progress.add_task(self._description, total=self._total)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._done:
            self._plain_line()

    def advance(self, count: int = 1) -> None:
        self._done += count
        if self._progress is not None:
            self._progress.update(self._task_id, completed=self._done)
            return
        now = time.monotonic()
        if now - self._last_plain >= self._plain_every:
            self._last_plain = now
            self._plain_line()

    def _plain_line(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self._done / elapsed
        total = f"/{self._total:,}" if self._total is not None else ""
        eta = ""
        if self._total and rate > 0 and self._done < self._total:
            eta = f", ETA {(self._total - self._done) / rate:.0f}s"
        self._output.note(
            f"{self._description}: {self._done:,}{total} {self._unit} "
            f"({rate:,.0f}/s, {elapsed:.1f}s{eta})"
        )
