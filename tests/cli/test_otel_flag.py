"""``--otel``: a span per MAXA call on stderr, from the command line."""

from __future__ import annotations

from pathlib import Path

from .conftest import clean_environ, run_maxa


def test_otel_prints_one_span_per_call(tmp_path: Path) -> None:
    result = run_maxa(
        "--emulator",
        "--otel",
        "lookup",
        "thritaEHR.Religion",
        "1",
        env=clean_environ(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.output
    assert "اسلام" in result.stdout
    assert result.stderr.count('"name": "MAXA Terminology"') == 1
    assert '"maxa.terminology_id": "thritaEHR.Religion"' in result.stderr
    assert "maxa-test-password" not in result.stderr  # the emulator's: never in a span
