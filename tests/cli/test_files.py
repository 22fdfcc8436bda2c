"""The results file's resume bookkeeping, without processes (the kill test can't aim)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maxa_async.cli._errors import UsageProblem
from maxa_async.cli._files import scan_results

HEADER = "row,line,terminology,code,value,status,message\n"


def test_a_row_cut_in_half_is_dropped_and_counted_out(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    out.write_text(HEADER + "1,2,eRx,60002,A,valid,\n2,3,eRx,60002,B,invalid,no\n3,4,eR")
    found = scan_results(out, "csv")
    assert found.rows == 2
    assert found.statuses == {"valid": 1, "invalid": 1}
    assert out.read_text().endswith("2,3,eRx,60002,B,invalid,no\n")


def test_jsonl_cut_in_half(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    out.write_text('{"row": 1, "status": "error"}\n{"row": 2, "sta')
    found = scan_results(out, "jsonl")
    assert (found.rows, found.statuses["error"]) == (1, 1)
    assert out.read_text() == '{"row": 1, "status": "error"}\n'


def test_only_a_partial_header_leaves_an_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    out.write_text("row,li")
    assert scan_results(out, "csv").rows == 0
    assert out.read_text() == ""


def test_rows_out_of_sequence_are_not_ours(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    out.write_text(HEADER + "1,2,eRx,1,A,valid,\n3,4,eRx,1,A,valid,\n")
    with pytest.raises(UsageProblem, match="not a results file"):
        scan_results(out, "csv")
