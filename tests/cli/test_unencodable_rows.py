"""``maxa validate`` with rows holding characters the wire cannot carry.

A JSONL row with a ``"\\ud800"`` escape used to stop the run (exit 2 at that row), and
every rerun stopped at the same row, so the file could never finish. Now such a row is
one error row (its lone surrogate written backslash-escaped), the run goes on, and a
rerun resumes after it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Final

CONTACT_TYPES: Final = [
    "تلفن منزل",
    "تلفن محل کار",
    "تلفن همراه شخصی",
    "فاکس منزل",
    "فاکس محل کار",
    "پست الکترونیکی شخصی",
    "پست الکترونیکی محل کار",
]
ROWS: Final = 60
#: Row number (1-based) -> (key, unsendable text) put in that row.
BAD_JSONL: Final = {20: ("value", "\ud800"), 41: ("code", "6\udfff"), 55: ("value", "a\x00b")}
FIELDS: Final = {"value": "coded_text.value", "code": "coded_text.coded_string"}


def _row(number: int) -> dict[str, str]:
    index = number % len(CONTACT_TYPES)
    return {"terminology": "ContactType", "code": str(index + 1), "value": CONTACT_TYPES[index]}


def _write_jsonl(path: Path) -> None:
    lines = []
    for number in range(1, ROWS + 1):
        row = _row(number)
        if number in BAD_JSONL:
            key, text = BAD_JSONL[number]
            row[key] = text
        lines.append(json.dumps(row))  # ASCII-escaped: "\ud800" stays an escape in the file
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _results(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def _check(results: list[dict[str, Any]]) -> None:
    assert [r["row"] for r in results] == list(range(1, ROWS + 1))
    for result in results:
        bad = BAD_JSONL.get(result["row"])
        if bad is None:
            assert result["status"] == "valid", result
            continue
        key, text = bad
        assert result["status"] == "error"
        assert result["message"].startswith(FIELDS[key] + ":")
        written = text.encode("utf-8", "backslashreplace").decode("utf-8")
        assert result[key] == written


def test_unsendable_rows_are_error_rows_and_the_run_finishes(maxa: Any, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    _write_jsonl(source)
    out = tmp_path / "results.jsonl"
    result = maxa("validate", str(source), "--out", str(out))
    assert result.returncode == 2, result.output  # error rows: exit 2, after the last row
    _check(_results(out))
    assert "Traceback" not in result.output and "UnicodeEncodeError" not in result.output


def test_a_rerun_goes_past_an_unsendable_row(maxa: Any, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    _write_jsonl(source)
    out = tmp_path / "results.jsonl"
    first = maxa("validate", str(source), "--out", str(out), "--limit", "25")
    assert [r["row"] for r in _results(out)] == list(range(1, 26)), first.output
    second = maxa("validate", str(source), "--out", str(out))
    assert second.returncode == 2, second.output
    _check(_results(out))
    third = maxa("validate", str(source), "--out", str(out))
    assert third.returncode in (0, 2), third.output
    _check(_results(out))  # nothing written twice


def test_csv_rows_with_nul_and_noncharacters_are_error_rows(maxa: Any, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    rows = [_row(n) for n in range(1, 11)]
    rows[2]["value"] = "a\x00b"
    rows[6]["code"] = "6\uffff"
    rows[8]["value"] = "x\ufffe"
    with source.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, ["terminology", "code", "value"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "results.csv"
    result = maxa("validate", str(source), "--out", str(out))
    assert result.returncode == 2, result.output
    with out.open(encoding="utf-8", newline="") as file:
        written = list(csv.DictReader(file))
    assert [int(r["row"]) for r in written] == list(range(1, 11))
    errors = {int(r["row"]): r["message"].split(":")[0] for r in written if r["status"] == "error"}
    assert errors == {3: "coded_text.value", 7: "coded_text.coded_string", 9: "coded_text.value"}
    assert all(r["status"] == "valid" for r in written if int(r["row"]) not in errors)
