"""Hostile and awkward files in and out of ``maxa validate``, without processes: CSV records
that span lines or never end, rows cut on resume, other encodings, formula cells, the lock
on ``--out``, and the hints printed on errors (issue 15)."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxa_async.cli._errors import UsageProblem, describe, no_snapshot_message
from maxa_async.cli._files import (
    MAX_ROW_CHARS,
    RESULT_FIELDS,
    Columns,
    ResultRow,
    ResultWriter,
    check_input,
    escape_formula,
    lock_results,
    read_rows,
    scan_results,
)
from maxa_async.snapshot import NoSnapshotError

HEADER = ",".join(RESULT_FIELDS) + "\n"
COLUMNS = Columns()


def rows_of(path: Path, encoding: str = "utf-8") -> list[tuple[int, int, str, str | None]]:
    """(row, line, value, problem) of every data row."""
    return [
        (row.row, row.line, row.value, row.problem)
        for row in read_rows(path, "csv", COLUMNS, encoding)
    ]


# ----------------------------------------------------------------------------- CSV records


def test_a_quoted_value_spanning_lines_is_one_row(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text(
        'terminology,code,value\neRx,1,"first\nsecond"\neRx,2,"a ""quoted"" word"\neRx,3,z\n',
        encoding="utf-8",
    )
    assert rows_of(source) == [
        (1, 2, "first\nsecond", None),
        (2, 4, 'a "quoted" word', None),
        (3, 5, "z", None),
    ]


def test_a_10_mb_quoted_value_with_a_newline_is_one_error_row(tmp_path: Path) -> None:
    """Today's csv module stops at its 128 KiB field limit and resumes inside the value:
    extra error rows, and every row number after it is shifted."""
    half = "x" * 5_000_000
    source = tmp_path / "lines.csv"
    source.write_text(
        f'terminology,code,value\neRx,1,a\neRx,2,"{half}\n{half}"\neRx,3,c\n\neRx,4,d\n',
        encoding="utf-8",
    )
    rows = rows_of(source)
    assert [(row, line, value) for row, line, value, _ in rows] == [
        (1, 2, "a"),
        (2, 3, ""),
        (3, 5, "c"),
        (4, 7, "d"),
    ]
    problems = [problem for *_, problem in rows]
    assert problems[0] is None and problems[2] is None and problems[3] is None
    assert problems[1] is not None and f"{MAX_ROW_CHARS:,} characters" in problems[1]


def test_a_long_line_without_quotes_is_one_error_row(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text(
        f"terminology,code,value\neRx,1,{'y' * (MAX_ROW_CHARS + 1)}\neRx,2,b\n", encoding="utf-8"
    )
    rows = rows_of(source)
    assert [(row, line, value) for row, line, value, _ in rows] == [(1, 2, ""), (2, 3, "b")]
    assert rows[0][3] is not None and "longer than" in rows[0][3]


def test_a_quote_that_never_closes_is_one_error_row(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text('terminology,code,value\neRx,1,a\neRx,2,"open\neRx,3,c\n', encoding="utf-8")
    assert rows_of(source) == [
        (1, 2, "a", None),
        (2, 3, "", "a quoted value that starts on line 3 never ends"),
    ]


_CSV_TEXT = st.text(alphabet=st.sampled_from(["a", "b", ",", '"', "\n", "\r", " "]), max_size=80)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_CSV_TEXT)
def test_records_are_framed_as_the_csv_module_reads_them(tmp_path: Path, body: str) -> None:
    """Every row is the record Python's csv module reads from the whole file, on the same
    line; only a quoted value left open at the end of the file is an error row here,
    where csv would return what it has."""
    source = tmp_path / "lines.csv"
    text = "value,terminology,code\n" + body
    source.write_bytes(text.encode("utf-8"))
    expected: list[tuple[int, str]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    start = reader.line_num + 1
    for record in reader:
        if any(field.strip() for field in record):
            expected.append((start, record[0]))
        start = reader.line_num + 1
    got = list(read_rows(source, "csv", COLUMNS))
    if got and got[-1].problem is not None and "never ends" in got[-1].problem:
        open_at = got.pop().line
        expected = [(line, value) for line, value in expected if line < open_at]
    assert all(row.problem is None or row.problem.startswith("missing column") for row in got)
    assert [(row.line, row.value) for row in got] == expected


# ----------------------------------------------------------------------------- encodings


def test_a_cp1256_file_is_refused_with_a_hint_and_read_with_encoding(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_bytes("terminology,code,value\nthritaEHR.Religion,1,اسلام\n".encode("cp1256"))
    with pytest.raises(UsageProblem, match=r"line 2: byte 0x.. is not valid utf-8.*--encoding"):
        check_input(source, "csv", COLUMNS, "utf-8")
    check_input(source, "csv", COLUMNS, "cp1256")
    assert rows_of(source, "cp1256") == [(1, 2, "اسلام", None)]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_bytes("terminology,code,value\nthritaEHR.Religion,1,اسلام\n".encode("utf-8-sig"))
    check_input(source, "csv", COLUMNS, "utf-8")
    assert rows_of(source) == [(1, 2, "اسلام", None)]


def test_an_unknown_encoding_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text("terminology,code,value\n")
    with pytest.raises(UsageProblem, match="--encoding 'klingon': unknown encoding"):
        check_input(source, "csv", COLUMNS, "klingon")


def test_an_undecodable_row_past_the_start_is_one_error_row(tmp_path: Path) -> None:
    """Past what is checked up front, one bad row is an error row and the run goes on."""
    good = "eRx,60002,ACETAMINOPHEN\n" * 4000  # more than the bytes checked up front
    source = tmp_path / "lines.csv"
    source.write_bytes(
        b"terminology,code,value\n"
        + good.encode()
        + "thritaEHR.Religion,1,اسلام\n".encode("cp1256")
        + b"eRx,60002,LAST\n"
    )
    check_input(source, "csv", COLUMNS, "utf-8")
    rows = rows_of(source)
    assert len(rows) == 4002
    assert [row for row in rows if row[3] is not None] == [
        (4001, 4002, "", rows[4000][3]),
    ]
    assert rows[4000][3] is not None and "--encoding" in rows[4000][3]
    assert rows[4001] == (4002, 4003, "LAST", None)


def test_jsonl_with_undecodable_bytes_is_an_error_row(tmp_path: Path) -> None:
    source = tmp_path / "lines.jsonl"
    line = json.dumps({"terminology": "thritaEHR.Religion", "code": "1", "value": "اسلام"})
    source.write_bytes(
        line.encode("utf-8") + b"\n" + line.replace("\\u0627", "\xc7").encode("latin-1") + b"\n"
    )
    rows = list(read_rows(source, "jsonl", COLUMNS))
    assert [(row.row, row.problem is None) for row in rows] == [(1, True), (2, False)]
    assert rows[1].problem is not None and "not valid utf-8" in rows[1].problem


# ----------------------------------------------------------------------------- resuming


def _result_line(row: int, value: str, status: str = "valid") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        (row, row + 1, "eRx", "60002", value, status, "")
    )
    return buffer.getvalue()


def test_resume_from_a_row_cut_inside_a_quoted_multiline_value(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    whole = HEADER + _result_line(1, "one\ntwo") + _result_line(2, "a", "invalid")
    cut = _result_line(3, "three\nfour\nfive")
    for at in range(1, len(cut)):
        out.write_text(whole + cut[:at], encoding="utf-8")
        found = scan_results(out, "csv")
        assert (found.rows, found.statuses) == (2, {"valid": 1, "invalid": 1}), cut[:at]
        assert out.read_text("utf-8") == whole


def test_a_whole_multiline_row_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    out.write_text(HEADER + _result_line(1, "one\r\ntwo"), encoding="utf-8")
    assert scan_results(out, "csv").rows == 1
    assert out.read_bytes() == (HEADER + _result_line(1, "one\r\ntwo")).encode()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("notes.csv", "row,line\nsomething else"),
        ("notes.csv", HEADER + _result_line(1, "a") + "7,8,eR"),
        ("notes.jsonl", '{"row": 1, "status": "valid"}\n{"other": true'),
    ],
)
def test_a_foreign_file_without_a_final_newline_is_refused_untouched(
    tmp_path: Path, name: str, text: str
) -> None:
    out = tmp_path / name
    out.write_text(text, encoding="utf-8")
    with pytest.raises(UsageProblem, match="not a results file"):
        scan_results(out, "csv" if name.endswith(".csv") else "jsonl")
    assert out.read_text("utf-8") == text


# ----------------------------------------------------------------------------- the lock


def test_a_second_lock_on_the_same_results_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    with lock_results(out) as locked:
        assert locked
        refused = pytest.raises(UsageProblem, match="being written by another maxa validate run")
        with refused, lock_results(out):
            pytest.fail("the second lock was granted")
        out.write_text(HEADER)
    with lock_results(out) as again:  # released with the first
        assert again
    assert out.read_text() == HEADER


def test_a_results_file_created_for_the_lock_and_left_empty_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    with pytest.raises(RuntimeError), lock_results(out):
        assert out.exists()
        raise RuntimeError("rejected credentials, say")
    assert not out.exists()
    with lock_results(out):  # a run that ends well keeps its file, even an empty one
        pass
    assert out.exists()
    existing = tmp_path / "existing.csv"
    existing.write_bytes(b"")
    with pytest.raises(RuntimeError), lock_results(existing):
        raise RuntimeError("rejected credentials, say")
    assert existing.exists()  # not ours to remove


# ----------------------------------------------------------------------------- formulas


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-5", "-5"),
        ("+1.5", "+1.5"),
        ("-1e3", "-1e3"),
        ("ACETAMINOPHEN", "ACETAMINOPHEN"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_escape_formula(value: str, written: str) -> None:
    assert escape_formula(value) == written


def _write_one(path: Path, fmt: str, *, escape: bool) -> None:
    writer = ResultWriter(
        path, "csv" if fmt == "csv" else "jsonl", append=False, escape_formulas=escape
    )
    writer.write(ResultRow(1, 2, "=t", "+1+1", "=cmd|' /C calc'!A0", "invalid", "-m"))
    writer.close()


def _first_row(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as file:
        return next(csv.DictReader(file))


def test_results_csv_escapes_formulas_unless_told_not_to(tmp_path: Path) -> None:
    escaped = tmp_path / "escaped.csv"
    _write_one(escaped, "csv", escape=True)
    row = _first_row(escaped)
    assert (row["terminology"], row["code"], row["value"], row["message"]) == (
        "'=t",
        "'+1+1",
        "'=cmd|' /C calc'!A0",
        "'-m",
    )
    assert (row["row"], row["status"]) == ("1", "invalid")

    exact = tmp_path / "exact.csv"
    _write_one(exact, "csv", escape=False)
    assert _first_row(exact)["value"] == "=cmd|' /C calc'!A0"

    jsonl = tmp_path / "exact.jsonl"
    _write_one(jsonl, "jsonl", escape=True)
    assert json.loads(jsonl.read_text())["value"] == "=cmd|' /C calc'!A0"


# ----------------------------------------------------------------------------- hints


@pytest.mark.parametrize("name", ["eRx", "a b", "x; rm -rf ~", "$(id)", "it's", "-n"])
def test_the_pull_hint_is_a_quoted_command(name: str) -> None:
    message = no_snapshot_message(NoSnapshotError(name, path="maxa-snapshot.db"))
    command = message.split("pull it first: ", 1)[1]
    assert shlex.split(command) == ["maxa", "snapshot", "pull", name]


def test_no_rerun_with_debug_hint_under_debug() -> None:
    error = ValueError("year 33715 is out of range")
    assert describe(error).endswith("(rerun with --debug for the traceback)")
    assert describe(error, debug=True) == "unexpected ValueError: year 33715 is out of range"
