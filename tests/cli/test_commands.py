"""Each command as a real process against a real fake-gateway process."""

from __future__ import annotations

import csv
import json
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import Gateway, clean_environ, run_maxa, start_ready_process, stop_process

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
WRONG_PASSWORD = "s3cret-Wrong-Passw0rd"


def test_lookup_prints_persian_even_when_the_locale_says_latin1(
    maxa: Any, gateway: Gateway
) -> None:
    env = gateway.env | {"PYTHONIOENCODING": "latin-1"}
    result = maxa("lookup", "thritaEHR.Religion", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert "اسلام" in result.stdout
    assert "thritaEHR.Religion" in result.stdout
    assert result.stderr == ""


def test_lookup_by_version_as_json(maxa: Any) -> None:
    result = maxa("--json", "lookup", "ERX", "60002", "--version", "1000")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "terminology": "ERX",
        "code": "60002",
        "version": "1000",
        "value": ACETAMINOPHEN,
    }


def test_lookup_of_an_unknown_code_is_one_line_and_exit_2(maxa: Any) -> None:
    result = maxa("lookup", "eRx", "1")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("maxa: not found")
    assert "operation=Terminology" in lines[0]


def test_versions_table_and_json(maxa: Any) -> None:
    table = maxa("versions", "eRx")
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines() if "eRX" in line]
    assert len(rows) == 2
    assert re.search(r"\b1000\b.*\bno\b", rows[0])
    assert re.search(r"\b10000\b.*\byes\b", rows[1])

    as_json = maxa("versions", "eRx", "--json")
    assert as_json.returncode == 0
    versions = json.loads(as_json.stdout)
    assert [(v["version"], v["is_last"]) for v in versions] == [("1000", False), ("10000", True)]


def test_terminologies_since_a_jalali_date(maxa: Any) -> None:
    everything = json.loads(maxa("terminologies", "--json").stdout)
    assert {"ContactType", "thritaEHR.Religion", "IRC", "eRX"} <= set(everything)
    since = maxa("terminologies", "--since", "1393/01/01", "--json")
    assert since.returncode == 0, since.stderr
    recent = json.loads(since.stdout)
    assert 0 < len(recent) < len(everything)
    assert set(recent) <= set(everything)
    assert "ContactType" not in recent  # defined in 1389

    table = maxa("terminologies", "--since", "1393/01/01")
    assert f"{len(recent)} terminologies defined since 1393/01/01" in table.stdout


def test_terminologies_rejects_a_bad_date_with_exit_3(maxa: Any) -> None:
    result = maxa("terminologies", "--since", "1390/13/40")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "--since" in result.stderr


def test_search_lists_persian_terms(maxa: Any) -> None:
    result = maxa("search", "ContactType", "--since", "1390/10/10", "--json")
    assert result.returncode == 0, result.stderr
    terms = {term["code"]: term["value"] for term in json.loads(result.stdout)}
    assert len(terms) == 14
    assert terms["6"] == "پست الکترونیکی شخصی"

    table = maxa("search", "ContactType", "--since", "1390/10/10")
    assert "پست الکترونیکی شخصی" in table.stdout
    assert "14 terms created since 1390/10/10" in table.stdout


def test_terms_writes_a_whole_version_to_csv(maxa: Any, tmp_path: Path) -> None:
    out = tmp_path / "erx.csv"
    result = maxa("terms", "eRx", "--version", "10000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote 50,000 terms of eRx version 10000" in result.stdout
    with out.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["terminology", "code", "value"]
    assert len(rows) == 50_001
    by_code = {row[1]: row[2] for row in rows[1:]}
    assert by_code["60002"] == ACETAMINOPHEN
    assert by_code["60281"] == "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"
    assert not list(tmp_path.glob(".erx.csv.*"))  # no temporary file left behind


def test_terms_of_the_latest_version_to_jsonl(maxa: Any, tmp_path: Path) -> None:
    out = tmp_path / "contact.jsonl"
    result = maxa("terms", "ContactType", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["terms"] == 14
    assert summary["version"] == "1"
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {"terminology": "ContactType", "code": "1", "value": "تلفن منزل"} in lines
    assert len(lines) == 14


def test_token_shows_lifetime_but_not_the_token(maxa: Any) -> None:
    shown = maxa("token", "--show", "--json")
    assert shown.returncode == 0, shown.stderr
    granted = json.loads(shown.stdout)
    assert len(granted["access_token"]) >= 16
    assert 0 < granted["expires_in"] <= 899

    hidden = maxa("token")
    assert hidden.returncode == 0, hidden.stderr
    assert "expires in" in hidden.stdout
    assert "access token" not in hidden.stdout
    assert "--show" in hidden.stderr
    hidden_json = json.loads(maxa("token", "--json").stdout)
    assert "access_token" not in hidden_json
    assert "password: environment" in hidden_json["settings_from"]
    assert hidden_json["token_type"].lower() == "bearer"


def test_bad_credentials_one_line_exit_3_no_secret(maxa: Any, gateway: Gateway) -> None:
    env = gateway.env | {"MAXA_PASSWORD": WRONG_PASSWORD}
    result = maxa("lookup", "thritaEHR.Religion", "1", env=env)
    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("maxa: authentication failed")
    assert "Traceback" not in result.stderr
    assert WRONG_PASSWORD not in result.output
    assert gateway.info["client_secret"] not in result.output


def test_debug_shows_the_traceback_and_still_no_secret(maxa: Any, gateway: Gateway) -> None:
    env = gateway.env | {"MAXA_PASSWORD": WRONG_PASSWORD}
    result = maxa("token", "--debug", env=env)
    assert result.returncode == 3
    assert "Traceback" in result.stderr
    assert "AuthenticationError" in result.stderr
    assert " DEBUG " in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("maxa: authentication failed")
    assert WRONG_PASSWORD not in result.output
    assert gateway.info["client_secret"] not in result.output


def test_missing_credentials_exit_3(maxa: Any) -> None:
    result = maxa("versions", "eRx", env=clean_environ())
    assert result.returncode == 3
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "MAXA_CLIENT_ID" in lines[0] and "--emulator" in lines[0]


def test_usage_error_exit_3(maxa: Any) -> None:
    result = maxa("lookup", "eRx")
    assert result.returncode == 3
    assert "Missing argument 'CODE'" in result.stderr
    assert "maxa lookup --help" in result.stderr


def test_dotenv_file_then_environment_then_flags(
    maxa: Any, gateway: Gateway, tmp_path: Path
) -> None:
    lines = [f"{name}={value}" for name, value in gateway.env.items() if name.startswith("MAXA_")]
    (tmp_path / ".env").write_text("# test settings\n" + "\n".join(lines) + "\n", "utf-8")
    from_dotenv = maxa("lookup", "thritaEHR.Religion", "1", env=clean_environ())
    assert from_dotenv.returncode == 0, from_dotenv.stderr
    assert "اسلام" in from_dotenv.stdout

    wrong_env = clean_environ() | {"MAXA_PASSWORD": WRONG_PASSWORD}
    env_beats_dotenv = maxa("lookup", "thritaEHR.Religion", "1", env=wrong_env)
    assert env_beats_dotenv.returncode == 3

    flag_beats_env = maxa(
        "lookup", "thritaEHR.Religion", "1", "--password", gateway.info["password"], env=wrong_env
    )
    assert flag_beats_env.returncode == 0, flag_beats_env.stderr


def test_emulator_flag_needs_no_credentials(tmp_path: Path) -> None:
    result = run_maxa("--emulator", "lookup", "eRx", "60002", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ACETAMINOPHEN in result.stdout


def test_emulator_command_serves_until_sigterm(tmp_path: Path) -> None:
    process, info = start_ready_process(
        [sys.executable, "-m", "maxa_async.cli", "emulator", "--port", "0", "--token-ttl", "30"]
    )
    try:
        env = clean_environ() | {
            "MAXA_BASE_URL": info["base_url"],
            "MAXA_CLIENT_ID": info["client_id"],
            "MAXA_CLIENT_SECRET": info["client_secret"],
            "MAXA_USERNAME": info["username"],
            "MAXA_PASSWORD": info["password"],
            "MAXA_PID": info["pid"],
        }
        token = run_maxa("token", "--json", env=env, cwd=tmp_path)
        assert token.returncode == 0, token.stderr
        assert json.loads(token.stdout)["expires_in"] == 30
    finally:
        assert stop_process(process) == 0


def test_emulator_help_lists_the_fakes_knobs() -> None:
    result = run_maxa("emulator", "--help")
    assert result.returncode == 0
    assert "maxa emulator" in result.stdout
    for knob in ("--rps-limit", "--token-ttl", "--error-rate", "--port"):
        assert knob in result.stdout


def _maxa_requests(gateway: Gateway) -> int:
    with urllib.request.urlopen(gateway.info["base_url"] + "/__stats", timeout=10) as response:
        stats = json.loads(response.read())
    return int(stats["requests"])


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("lookup", "thrिताEHR.Religion", "1"), "terminology_id"),
        (("lookup", "   ", "1"), "terminology_id"),
        (("lookup", "eRx", "x" * 100_000), "coded_string"),
        (("lookup", "eRx", "60002", "--version", " "), "version"),
        (("search", "ContactType", "--since", "1402/12/30"), "day"),
        (("versions", "e" * 1000), "terminology_id"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_nothing_is_sent(
    maxa: Any, gateway: Gateway, args: tuple[str, ...], field: str
) -> None:
    before = _maxa_requests(gateway)
    result = maxa(*args)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert field in lines[0]  # one line says what is wrong (a usage hint may follow)
    assert len(lines) <= 2
    assert len(result.stderr) < 600  # a huge argument is not echoed back whole
    assert _maxa_requests(gateway) == before
