"""``maxa validate`` and ``maxa token`` as processes, on the cases of issue 15: a second run
on the same --out, a results file cut inside a multi-line value, a cp1256 input, formula
cells, and a token that lives "forever"."""

from __future__ import annotations

import csv
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import TIMEOUT, Gateway, clean_environ, run_maxa, start_ready_process, stop_process
from .test_validate import ACETAMINOPHEN, _big_input, _check_complete, read_results


def _requests(gateway: Gateway) -> int:
    with urllib.request.urlopen(gateway.base_url + "/__stats", timeout=10) as response:
        return int(json.loads(response.read())["requests"])


@pytest.fixture
def slow_gateway() -> Iterator[Gateway]:
    """A fake gateway that takes 50 ms per MAXA request: a run on it lasts long enough for
    a second run to start while it writes."""
    process, info = start_ready_process(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0", "--latency", "0.05"]
    )
    try:
        yield Gateway(info)
    finally:
        stop_process(process)


def test_a_second_run_on_the_same_out_is_refused_and_never_writes(
    gateway: Gateway, slow_gateway: Gateway, tmp_path: Path
) -> None:
    source = tmp_path / "lines.csv"
    rows = _big_input(source, 2000)
    out = tmp_path / "results.csv"
    command = [sys.executable, "-m", "maxa_async.cli", "validate", str(source), "--out", str(out)]
    first = subprocess.Popen(
        [*command, "--concurrency", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=slow_gateway.env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and first.poll() is None:
            if out.exists() and len(out.read_bytes().splitlines()) > 3:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run should still be writing"

        before = _requests(gateway)
        second = run_maxa(*command[3:], env=gateway.env, cwd=tmp_path)
        assert second.returncode == 3, second.output
        assert "being written by another maxa validate run" in second.stderr
        assert "resuming" not in second.stderr
        assert _requests(gateway) == before  # refused before any request
        assert first.poll() is None  # 2,000 rows at 50 ms each: still running
    finally:
        assert stop_process(first, signal.SIGTERM) == 130

    written = read_results(out)
    assert 0 < len(written) < len(rows)
    assert [int(row["row"]) for row in written] == list(range(1, len(written) + 1))

    rerun = run_maxa(*command[3:], env=gateway.env, cwd=tmp_path)  # the lock is free again
    assert rerun.returncode == 1, rerun.output
    _check_complete(out, rows)


def test_resume_after_a_cut_inside_a_multiline_value(maxa: Any, tmp_path: Path) -> None:
    values = [f"{ACETAMINOPHEN}" if i % 3 else f"line one {i}\nline two\nthree" for i in range(30)]
    source = tmp_path / "lines.csv"
    with source.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["terminology", "code", "value"])
        writer.writerows(("eRx", "60002", value) for value in values)
    out = tmp_path / "results.csv"
    full = maxa("validate", str(source), "--out", str(out))
    assert full.returncode in (1, 2), full.output
    whole = out.read_bytes()
    assert [row["value"] for row in read_results(out)] == values

    cut = whole.index(b"line one 15\n") + len(b"line one 15\n")  # inside row 16's value
    out.write_bytes(whole[:cut])
    resumed = maxa("validate", str(source), "--out", str(out), "--json")
    assert resumed.returncode == full.returncode, resumed.output
    summary = json.loads(resumed.stdout)
    assert (summary["resumed_after"], summary["validated_now"], summary["rows"]) == (15, 15, 30)
    assert out.read_bytes() == whole  # one row per input, each once


# Values that cp1256 can encode (it has the Arabic yeh, not the Persian one).
CP1256_CSV = "terminology,code,value\nthritaEHR.Religion,1,اسلام\nContactType,2,تلفن محل کار\n"


def test_a_cp1256_file_is_refused_with_a_hint_then_read_with_encoding(
    maxa: Any, tmp_path: Path
) -> None:
    source = tmp_path / "lines.csv"
    source.write_bytes(CP1256_CSV.encode("cp1256"))
    out = tmp_path / "results.csv"
    refused = maxa("validate", str(source), "--out", str(out))
    assert refused.returncode == 3, refused.output
    assert "line 2: byte 0x" in refused.stderr and "not valid utf-8" in refused.stderr
    assert "--encoding" in refused.stderr
    assert not out.exists()

    read = maxa("validate", str(source), "--out", str(out), "--encoding", "cp1256")
    assert read.returncode == 0, read.output
    assert [(r["value"], r["status"]) for r in read_results(out)] == [
        ("اسلام", "valid"),
        ("تلفن محل کار", "valid"),
    ]

    unknown = maxa("validate", str(source), "--encoding", "klingon")
    assert unknown.returncode == 3
    assert "unknown encoding" in unknown.stderr


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+2", "-2+3", "@SUM(A1)", "\t=1", "-5"]


def test_formula_cells_are_escaped_in_csv_results_unless_told_not_to(
    maxa: Any, tmp_path: Path
) -> None:
    source = tmp_path / "lines.csv"
    with source.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["terminology", "code", "value"])
        writer.writerows(("eRx", "60002", value) for value in FORMULAS)
    out = tmp_path / "results.csv"
    escaped = maxa("validate", str(source), "--out", str(out))
    assert escaped.returncode == 1, escaped.output
    assert [row["value"] for row in read_results(out)] == [
        "'" + value if value != "-5" else value for value in FORMULAS
    ]

    exact = maxa("validate", str(source), "--out", str(out), "--restart", "--no-escape-formulas")
    assert exact.returncode == 1, exact.output
    assert [row["value"] for row in read_results(out)] == FORMULAS
    assert "--no-escape-formulas" in maxa("validate", "--help").stdout


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """Grants any password with the lifetime in ``server.expires_in``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = (
            '{"access_token": "abcdefghijklmnop0123", "token_type": "bearer", '
            f'"refresh_token": "r0123456789", "expires_in": {self.server.expires_in}}}'  # type: ignore[attr-defined]
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=TIMEOUT)


@pytest.mark.parametrize("expires_in", ["1e12", "1e300", "1000000000000"])
def test_token_with_an_endless_lifetime_says_far_future(
    token_endpoint: http.server.HTTPServer, tmp_path: Path, expires_in: str
) -> None:
    token_endpoint.expires_in = expires_in  # type: ignore[attr-defined]
    env = clean_environ() | {
        "MAXA_BASE_URL": f"http://127.0.0.1:{token_endpoint.server_address[1]}",
        "MAXA_CLIENT_ID": "client",
        "MAXA_CLIENT_SECRET": "secret",
        "MAXA_USERNAME": "user",
        "MAXA_PASSWORD": "password",
        "MAXA_PID": "pid",
    }
    table = run_maxa("token", "--debug", env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "far future" in table.stdout
    assert "rerun with --debug" not in table.stderr

    as_json = run_maxa("token", "--json", env=env, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["expires_at"] is None
    assert payload["expires_in"] == round(float(expires_in))
