"""``--debug`` and ``MAXA_DEBUG``: a traceback before the one-line error, for one run only."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from maxa_async.cli import main

from .conftest import clean_environ, run_maxa


def test_maxa_debug_in_the_environment_shows_the_traceback(tmp_path: Path) -> None:
    result = run_maxa("versions", "eRx", env=clean_environ() | {"MAXA_DEBUG": "1"}, cwd=tmp_path)
    assert result.returncode == 3
    assert "Traceback" in result.stderr
    assert "UsageProblem" in result.stderr
    last = result.stderr.rstrip().splitlines()[-1]
    assert last.startswith("maxa: missing credentials") and "MAXA_CLIENT_ID" in last
    assert " DEBUG " not in result.stderr  # the variable asks for tracebacks, not logging


def test_without_debug_the_error_is_one_line(tmp_path: Path) -> None:
    result = run_maxa("versions", "eRx", env=clean_environ(), cwd=tmp_path)
    assert result.returncode == 3
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No MAXA_* variable, no .env file; the root logger as it was afterwards (--debug
    configures it)."""
    for name in [name for name in os.environ if name.startswith("MAXA_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.usefixtures("no_settings")
def test_debug_lasts_one_run_in_the_same_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "versions", "eRx"]) == 3
    first = capsys.readouterr()
    assert "Traceback" in first.err

    assert main(["versions", "eRx"]) == 3
    second = capsys.readouterr()
    assert "Traceback" not in second.err
    assert len(second.err.splitlines()) == 1, second.err
    assert second.err.startswith("maxa: missing credentials")
