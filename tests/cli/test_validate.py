"""``maxa validate``: mixed rows, malformed rows, exit codes, resuming after a stop or a kill."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .conftest import TIMEOUT, Gateway, stop_process

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
MOMETASONE = "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"

MIXED_CSV = """\
terminology,code,value
eRx,60002,ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL
eRx,60002,ACETAMINOPHEN 500 mg TABLET
thritaEHR.Religion,1,اسلام
eRx,,SOMETHING

thrिताEHR.Religion,1,اسلام
eRx,60281
NoSuchTerminology,1,x
ContactType,6,پست الکترونیکی شخصی
"""

# (row, line, status) for MIXED_CSV: line 6 is blank and is not a row.
MIXED_EXPECTED = [
    (1, 2, "valid"),
    (2, 3, "invalid"),
    (3, 4, "valid"),
    (4, 5, "error"),  # empty code
    (5, 7, "error"),  # Devanagari letters in the terminology id
    (6, 8, "error"),  # missing column
    (7, 9, "error"),  # unknown terminology: the gateway's 404
    (8, 10, "valid"),
]


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_mixed_rows_one_result_per_row_with_line_numbers(maxa: Any, tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text(MIXED_CSV, encoding="utf-8")
    out = tmp_path / "results.csv"
    result = maxa("validate", str(source), "--out", str(out))
    assert result.returncode == 2, result.output  # errors take precedence over invalid rows
    rows = read_results(out)
    assert [(int(r["row"]), int(r["line"]), r["status"]) for r in rows] == MIXED_EXPECTED
    by_line = {int(r["line"]): r for r in rows}
    assert "coded_string" in by_line[5]["message"]
    assert "printable ASCII" in by_line[7]["message"]
    assert by_line[8]["message"] == "missing column 'value'"
    assert "not found" in by_line[9]["message"]
    assert by_line[10]["value"] == "پست الکترونیکی شخصی"
    assert by_line[3]["message"].startswith("the value is not the one registered")
    # The summary names the problem rows by line.
    assert "line 8 (row 6): error: missing column 'value'" in result.stdout
    assert "exit code" in result.stdout


def test_exit_1_when_some_rows_are_invalid_and_0_when_all_are_valid(
    maxa: Any, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(f"terminology,code,value\neRx,60002,{ACETAMINOPHEN}\neRx,60281,{MOMETASONE}\n")
    passed = maxa("validate", str(good), "--json", "--out", str(tmp_path / "good.out.jsonl"))
    assert passed.returncode == 0, passed.output
    assert json.loads(passed.stdout)["valid"] == 2

    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"terminology,code,value\neRx,60002,{ACETAMINOPHEN}\neRx,60281,{ACETAMINOPHEN}\n"
    )
    failed = maxa("validate", str(bad))  # results to stdout, summary to stderr
    assert failed.returncode == 1, failed.output
    rows = list(csv.DictReader(failed.stdout.splitlines()))
    assert [row["status"] for row in rows] == ["valid", "invalid"]
    assert "invalid" in failed.stderr


def test_jsonl_input_with_custom_keys_and_malformed_lines(maxa: Any, tmp_path: Path) -> None:
    lines = [
        {"system": "eRx", "drug": 60002, "text": ACETAMINOPHEN},  # numeric code is fine
        "{not json",
        ["an", "array"],
        {"system": "eRx", "text": MOMETASONE},  # no code
        {"system": "eRx", "drug": "60281", "text": MOMETASONE},
    ]
    source = tmp_path / "lines.jsonl"
    source.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    out = tmp_path / "results.jsonl"
    result = maxa(
        "validate",
        str(source),
        "--out",
        str(out),
        "--terminology-column",
        "system",
        "--code-column",
        "drug",
        "--value-column",
        "text",
        "--json",
    )
    assert result.returncode == 2, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["valid"], summary["error"]) == (5, 2, 3)
    results = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [(r["line"], r["status"]) for r in results] == [
        (1, "valid"),
        (2, "error"),
        (3, "error"),
        (4, "error"),
        (5, "valid"),
    ]
    assert results[1]["message"].startswith("not valid JSON")
    assert results[2]["message"] == "expected a JSON object on this line"
    assert results[3]["message"] == "missing key 'drug'"
    assert results[0]["code"] == "60002"


def test_missing_column_in_the_header_is_a_usage_error(maxa: Any, tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text("terminology,drug,value\neRx,60002,x\n")
    result = maxa("validate", str(source))
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "no column 'code'" in result.stderr and "--code-column" in result.stderr


def test_unreadable_input_and_foreign_out_file_are_usage_errors(maxa: Any, tmp_path: Path) -> None:
    missing = maxa("validate", str(tmp_path / "nope.csv"))
    assert missing.returncode == 3
    assert "does not exist" in missing.stderr

    source = tmp_path / "lines.csv"
    source.write_text(f"terminology,code,value\neRx,60002,{ACETAMINOPHEN}\n")
    foreign = tmp_path / "notes.csv"
    foreign.write_text("something,else\n1,2\n")
    refused = maxa("validate", str(source), "--out", str(foreign))
    assert refused.returncode == 3
    assert "not a results file" in refused.stderr
    assert foreign.read_text() == "something,else\n1,2\n"  # untouched

    onto_itself = maxa("validate", str(source), "--out", str(source))
    assert onto_itself.returncode == 3
    assert "must not be the input file" in onto_itself.stderr


def _big_input(path: Path, count: int) -> list[tuple[str, str, str]]:
    """``count`` rows over a handful of codes, every 10th one invalid."""
    known = [("eRx", "60002", ACETAMINOPHEN), ("eRx", "60281", MOMETASONE)]
    known += [("ContactType", str(code), "x") for code in range(1, 15)]  # all invalid values
    rows = []
    for i in range(count):
        terminology, code, value = known[i % 2] if i % 10 else known[2 + i % 14]
        rows.append((terminology, code, f"{value}" if i % 10 else f"{value}{i}"))
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["terminology", "code", "value"])
        writer.writerows(rows)
    return rows


def _check_complete(out: Path, rows: list[tuple[str, str, str]]) -> None:
    results = read_results(out)
    assert [int(r["row"]) for r in results] == list(range(1, len(rows) + 1))
    assert [(r["terminology"], r["code"], r["value"]) for r in results] == rows
    for i, result in enumerate(results):
        assert result["status"] == ("valid" if i % 10 else "invalid"), result


def test_resume_after_limit_writes_each_row_once(maxa: Any, tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    rows = _big_input(source, 500)
    out = tmp_path / "results.csv"
    first = maxa("validate", str(source), "--out", str(out), "--limit", "120", "--json")
    assert first.returncode == 1, first.output
    assert json.loads(first.stdout)["rows"] == 120
    assert len(read_results(out)) == 120

    second = maxa("validate", str(source), "--out", str(out), "--json")
    assert second.returncode == 1, second.output
    summary = json.loads(second.stdout)
    assert summary["resumed_after"] == 120
    assert summary["validated_now"] == 380
    assert (summary["rows"], summary["invalid"]) == (500, 50)
    assert "resuming: 120 rows already in" in second.stderr
    _check_complete(out, rows)

    again = maxa("validate", str(source), "--out", str(out), "--json")
    assert json.loads(again.stdout)["validated_now"] == 0
    _check_complete(out, rows)


def test_resume_after_a_kill(gateway: Gateway, tmp_path: Path) -> None:
    """Killed mid-run (SIGKILL: nothing gets flushed on the way out, a row may be cut
    in half), then rerun: every input row appears exactly once, in order."""
    source = tmp_path / "lines.csv"
    rows = _big_input(source, 6000)
    out = tmp_path / "results.csv"
    command = [sys.executable, "-m", "maxa_async.cli", "validate", str(source), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--concurrency", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=gateway.env,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.stat().st_size > 20_000:
            break
        time.sleep(0.05)
    stop_process(process, signal.SIGKILL)
    written = len(read_results(out))
    assert 0 < written < len(rows), "the run should be killed half way"

    rerun = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=gateway.env,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert rerun.returncode == 1, rerun.stderr.decode()
    assert b"resuming:" in rerun.stderr
    _check_complete(out, rows)


def test_sigterm_stops_cleanly_and_the_rerun_completes(gateway: Gateway, tmp_path: Path) -> None:
    source = tmp_path / "lines.jsonl"
    rows = _big_input(tmp_path / "unused.csv", 4000)
    source.write_text(
        "".join(
            json.dumps({"terminology": t, "code": c, "value": v}, ensure_ascii=False) + "\n"
            for t, c, v in rows
        ),
        encoding="utf-8",
    )
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "maxa_async.cli", "validate", str(source), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--concurrency", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=gateway.env,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.stat().st_size > 10_000:
            break
        time.sleep(0.05)
    assert process.stdout is not None
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 130
    assert b"rerun the same command to continue" in stdout
    assert out.read_bytes().endswith(b"\n")  # flushed whole rows on the way out
    written = len(out.read_text("utf-8").splitlines())
    assert 0 < written < len(rows)

    rerun = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=gateway.env,
        cwd=tmp_path,
        timeout=TIMEOUT,
        check=False,
    )
    assert rerun.returncode == 1, rerun.stderr.decode()
    results = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["row"] for r in results] == list(range(1, len(rows) + 1))
    assert [(r["terminology"], r["code"], r["value"]) for r in results] == rows


def test_bad_credentials_stop_before_any_row_is_written(
    maxa: Any, gateway: Gateway, tmp_path: Path
) -> None:
    source = tmp_path / "lines.csv"
    source.write_text(f"terminology,code,value\neRx,60002,{ACETAMINOPHEN}\n")
    out = tmp_path / "results.csv"
    env = gateway.env | {"MAXA_CLIENT_SECRET": "not-the-secret-42"}
    result = maxa("validate", str(source), "--out", str(out), env=env)
    assert result.returncode == 3
    assert result.stderr.startswith("maxa: authentication failed")
    assert result.stderr.count("\n") == 1
    assert "not-the-secret-42" not in result.output
    assert not out.exists()  # a rerun with good credentials starts at row 1
