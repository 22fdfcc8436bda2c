"""``maxa snapshot pull|sync|info`` and ``maxa validate --offline|--hybrid``, each a real
process against a fake gateway that is a real process."""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from maxa_async.snapshot import SCHEMA_VERSION, SnapshotStore

from .conftest import Gateway, Result, clean_environ, run_maxa, start_ready_process, stop_process

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
MOMETASONE = "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"
SNAPSHOT = "maxa-snapshot.db"


@pytest.fixture(scope="module")
def pulled(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """``maxa snapshot pull eRx`` once (the latest version, 50,000 codes) for the module."""
    directory = tmp_path_factory.mktemp("pulled")
    result = run_maxa("snapshot", "pull", "eRx", env=gateway.env, cwd=directory)
    return directory / SNAPSHOT, result


@pytest.fixture
def snapshot(pulled: tuple[Path, Result], tmp_path: Path) -> Path:
    """A private copy of the pulled file, at the default name in the test's directory."""
    source, result = pulled
    assert result.returncode == 0, result.output
    target = tmp_path / SNAPSHOT
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")
    return target


@pytest.fixture
def own_gateway() -> Iterator[Gateway]:
    """A gateway of this test's own, free to gain terms without disturbing other tests."""
    process, info = start_ready_process(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0", "--seed", "1"]
    )
    try:
        yield Gateway(info)
    finally:
        stop_process(process)


def snapshot_values(path: Path, terminology: str) -> dict[str, str]:
    """code -> value of a snapshot, read with the library (no network)."""

    async def read() -> dict[str, str]:
        async with SnapshotStore.open(path, create=False) as store:
            return dict((await store.index(terminology)).items())

    return asyncio.run(read())


def post_terms(gateway: Gateway, terminology: str, terms: list[dict[str, str]]) -> None:
    body = json.dumps({"terminology": terminology, "version": None, "terms": terms}).encode()
    request = urllib.request.Request(
        f"{gateway.base_url}/__terms",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"added": len(terms)}


def gateway_stats(gateway: Gateway) -> dict[str, Any]:
    with urllib.request.urlopen(f"{gateway.base_url}/__stats", timeout=10) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def write_csv(path: Path, rows: Sequence[tuple[str, ...]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["terminology", "code", "value"])
        writer.writerows(rows)
    return path


def read_results(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def one_error_line(result: Result) -> str:
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------------------- pull


def test_pull_prints_terms_version_time_and_size(pulled: tuple[Path, Result]) -> None:
    path, result = pulled
    assert result.returncode == 0, result.output
    line = result.stdout.splitlines()[0]
    assert line.startswith("pulled eRx version 10000: 50,000 terms in ")
    assert line.endswith(" MB)") and f"into {SNAPSHOT} (" in line
    assert result.stderr == ""
    assert path.stat().st_size > 1_000_000
    values = snapshot_values(path, "ERX")  # what the file holds, as the library reads it
    assert len(values) == 50_000
    assert values["60002"] == ACETAMINOPHEN


def test_pull_a_named_version_as_json_and_again_over_it(maxa: Any, tmp_path: Path) -> None:
    first = maxa("snapshot", "pull", "eRx", "--version", "1000", "--json", "--snapshot", "v.db")
    assert first.returncode == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["terminology"], summary["version"], summary["terms"]) == ("eRx", "1000", 46_000)
    assert (summary["added"], summary["previous_version"]) == (46_000, None)
    assert summary["snapshot"] == "v.db"
    assert summary["file_size"] > 1_000_000
    assert summary["seconds"] > 0

    # The latest over it: the summary compares the two versions code by code.
    again = maxa("--json", "snapshot", "pull", "eRx", "--snapshot", "v.db")
    assert again.returncode == 0, again.output
    replaced = json.loads(again.stdout)
    assert (replaced["version"], replaced["previous_version"]) == ("10000", "1000")
    assert replaced["terms"] == 50_000
    assert replaced["added"] + replaced["changed"] + replaced["unchanged"] == 50_000
    assert replaced["added"] >= 4_000
    assert replaced["unchanged"] + replaced["changed"] + replaced["removed"] == 46_000


def test_pull_of_an_unknown_terminology_or_version_is_one_line_and_leaves_no_file(
    maxa: Any, tmp_path: Path
) -> None:
    unknown = maxa("snapshot", "pull", "NoSuchTerminology")
    assert unknown.returncode == 2
    assert one_error_line(unknown).startswith("maxa: not found")
    assert not (tmp_path / SNAPSHOT).exists()  # a failed first pull leaves no empty file

    no_version = maxa("snapshot", "pull", "eRx", "--version", "999")
    assert no_version.returncode == 2
    line = one_error_line(no_version)
    assert "no version '999' of 'eRx'" in line and "1000, 10000" in line
    assert not (tmp_path / SNAPSHOT).exists()


# ---------------------------------------------------------------------------- info


def test_info_lists_the_snapshot_without_credentials(
    snapshot: Path, gateway: Gateway, tmp_path: Path
) -> None:
    table = run_maxa("snapshot", "info", env=clean_environ(), cwd=tmp_path)
    assert table.returncode == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "eRx" in line)
    assert "10000" in row and "50,000" in row and gateway.base_url in row
    assert f"{SNAPSHOT}: 1 terminology, " in table.stdout
    assert f"schema version {SCHEMA_VERSION}" in table.stdout

    as_json = run_maxa("snapshot", "info", "--json", env=clean_environ(), cwd=tmp_path)
    assert as_json.returncode == 0, as_json.output
    info = json.loads(as_json.stdout)
    assert (info["snapshot"], info["schema_version"]) == (SNAPSHOT, SCHEMA_VERSION)
    assert info["file_size"] == snapshot.stat().st_size
    [erx] = info["snapshots"]
    assert (erx["terminology"], erx["version"], erx["terms"]) == ("eRx", "10000", 50_000)
    assert erx["base_url"] == gateway.base_url
    assert 0 <= erx["age_s"] < 600
    assert erx["synced_at_jalali"].startswith("14")  # a Jalali year


def test_info_on_a_missing_or_foreign_file_is_one_clear_line_and_exit_3(tmp_path: Path) -> None:
    missing = run_maxa("snapshot", "info", env=clean_environ(), cwd=tmp_path)
    assert missing.returncode == 3
    line = one_error_line(missing)
    assert line.startswith(f"maxa: no snapshot file at {SNAPSHOT}; ")
    assert "maxa snapshot pull TERMINOLOGY" in line
    assert not (tmp_path / SNAPSHOT).exists()  # info never creates one

    env = clean_environ() | {"MAXA_SNAPSHOT": "elsewhere.db"}
    named = run_maxa("snapshot", "info", env=env, cwd=tmp_path)
    assert named.returncode == 3
    assert one_error_line(named).startswith("maxa: no snapshot file at elsewhere.db")

    (tmp_path / "notes.db").write_text("not a database, just some notes\n" * 200)
    foreign = run_maxa(
        "snapshot", "--snapshot", "notes.db", "info", env=clean_environ(), cwd=tmp_path
    )
    assert foreign.returncode == 3
    assert "not a readable MAXA snapshot" in one_error_line(foreign)


# ---------------------------------------------------------------------------- sync


def test_sync_reports_nothing_new_then_the_terms_the_gateway_gained(
    own_gateway: Gateway, tmp_path: Path
) -> None:
    def maxa(*args: str) -> Result:
        return run_maxa(*args, env=own_gateway.env, cwd=tmp_path)

    assert maxa("snapshot", "pull", "eRx").returncode == 0

    unchanged = maxa("snapshot", "sync", "--json")
    assert unchanged.returncode == 0, unchanged.output
    report = json.loads(unchanged.stdout)
    [erx] = report["synced"]
    assert (erx["terminology"], erx["version"], erx["repulled"]) == ("eRx", "10000", False)
    assert (erx["added"], erx["changed"], erx["removed"], erx["terms"]) == (0, 0, 0, 50_000)
    assert erx["since"].startswith("14")  # the Jalali FromDate sent to SearchTerminology

    post_terms(
        own_gateway,
        "eRx",
        [
            {"code": "99999901", "value": "NEWDRUG 5 mg TABLET ORAL"},
            {"code": "60002", "value": "ACETAMINOPHEN 120 mg / 5mL SYRUP ORAL"},
        ],
    )
    table = maxa("snapshot", "sync", "ERX")
    assert table.returncode == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "eRx" in line)
    cells = [cell.strip() for cell in row.strip("│┃ ").split("│")]
    # terminology, version, repulled, since, added, changed, unchanged, removed, terms, s
    assert cells[:3] == ["eRx", "10000", "no"]
    assert cells[4:9] == ["1", "1", "0", "0", "50,001"]

    # The offline answers follow the sync.
    source = write_csv(
        tmp_path / "lines.csv",
        [
            ("eRx", "99999901", "NEWDRUG 5 mg TABLET ORAL"),
            ("eRx", "60002", "ACETAMINOPHEN 120 mg / 5mL SYRUP ORAL"),
            ("eRx", "60002", ACETAMINOPHEN),
        ],
    )
    offline = run_maxa("validate", str(source), "--offline", env=clean_environ(), cwd=tmp_path)
    assert offline.returncode == 1, offline.output
    assert [r["status"] for r in read_results(offline.stdout)] == ["valid", "valid", "invalid"]


def test_sync_of_a_terminology_never_pulled_says_pull_it_first(maxa: Any, snapshot: Path) -> None:
    result = maxa("snapshot", "sync", "ContactType")
    assert result.returncode == 3
    line = one_error_line(result)
    assert "no snapshot of terminology 'ContactType'" in line
    assert line.endswith("pull it first: maxa snapshot pull ContactType")


def test_emulator_pull_and_sync_need_no_credentials(tmp_path: Path) -> None:
    env = clean_environ()
    pulled = run_maxa(
        "snapshot", "pull", "ContactType", "--emulator", "--json", env=env, cwd=tmp_path
    )
    assert pulled.returncode == 0, pulled.output
    summary = json.loads(pulled.stdout)
    assert (summary["terminology"], summary["terms"]) == ("ContactType", 14)

    synced = run_maxa("--emulator", "snapshot", "sync", "--json", env=env, cwd=tmp_path)
    assert synced.returncode == 0, synced.output
    [contact] = json.loads(synced.stdout)["synced"]
    assert (contact["added"], contact["changed"], contact["terms"]) == (0, 0, 14)
    # Each --emulator run is a new fake on a new port: the sync says so.
    assert "note: ContactType was pulled from http://127.0.0.1:" in synced.stderr


# ---------------------------------------------------------------------------- validate --offline

# Rows whose offline results must equal the online ones, byte for byte: valid, invalid,
# padded value (the gateway strips it), and malformed rows.
SAME_ROWS: list[tuple[str, ...]] = [
    ("eRx", "60002", ACETAMINOPHEN),
    ("ERX", " 60281 ", MOMETASONE),
    ("eRx", "60002", "ACETAMINOPHEN 500 mg TABLET"),
    ("eRx", "60281", f"  {MOMETASONE}\t"),
    ("eRx", "", "SOMETHING"),
    ("thrिताEHR.Religion", "1", "اسلام"),
    ("eRx", "60281"),
    ("eRx", "99999999", "NO SUCH DRUG"),
]
SAME_STATUSES = ["valid", "valid", "invalid", "valid", "error", "error", "error", "invalid"]


def test_offline_validate_without_credentials_equals_the_online_results(
    maxa: Any, snapshot: Path, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "lines.csv", SAME_ROWS)
    offline = run_maxa(
        "validate",
        str(source),
        "--offline",
        "--out",
        "offline.csv",
        env=clean_environ(),
        cwd=tmp_path,
    )
    assert offline.returncode == 2, offline.output  # errors take precedence over invalid rows
    online = maxa("validate", str(source), "--out", "online.csv")
    assert online.returncode == 2, online.output
    offline_text = (tmp_path / "offline.csv").read_text("utf-8")
    assert offline_text == (tmp_path / "online.csv").read_text("utf-8")
    results = read_results(offline_text)
    assert [r["status"] for r in results] == SAME_STATUSES
    assert [int(r["line"]) for r in results] == list(range(2, 10))
    assert results[6]["message"] == "missing column 'value'"
    assert "coded_string" in results[4]["message"]
    assert "the snapshot only (--offline)" in offline.stdout
    assert "line 8 (row 7): error: missing column 'value'" in offline.stdout


def test_offline_exit_codes_resuming_and_terminologies_not_pulled(
    snapshot: Path, tmp_path: Path
) -> None:
    env = clean_environ()
    mixed = write_csv(
        tmp_path / "mixed.csv",
        [("eRx", "60002", ACETAMINOPHEN), ("eRx", "60281", ACETAMINOPHEN)],
    )
    invalid = run_maxa("validate", str(mixed), "--offline", env=env, cwd=tmp_path)
    assert invalid.returncode == 1, invalid.output  # invalid rows, no errors
    assert [r["status"] for r in read_results(invalid.stdout)] == ["valid", "invalid"]

    rows = [("eRx", "60002", ACETAMINOPHEN), ("eRx", "60281", MOMETASONE)] * 3
    rows.append(("ContactType", "6", "پست الکترونیکی شخصی"))  # never pulled into the file
    source = write_csv(tmp_path / "lines.csv", rows)
    first = run_maxa(
        "validate",
        str(source),
        "--offline",
        "--out",
        "r.jsonl",
        "--limit",
        "4",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["mode"], summary["rows"], summary["valid"]) == ("offline", 4, 4)
    assert summary["snapshot"] == SNAPSHOT

    rest = run_maxa(
        "validate", str(source), "--offline", "--out", "r.jsonl", "--json", env=env, cwd=tmp_path
    )
    assert rest.returncode == 2, rest.output
    summary = json.loads(rest.stdout)
    assert (summary["resumed_after"], summary["validated_now"]) == (4, 3)
    assert (summary["rows"], summary["valid"], summary["error"]) == (7, 6, 1)
    assert "resuming: 4 rows already in r.jsonl" in rest.stderr
    results = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text("utf-8").splitlines()]
    assert [r["row"] for r in results] == list(range(1, 8))
    assert results[-1]["status"] == "error"
    assert results[-1]["message"] == (
        f"no snapshot of terminology 'ContactType' in {SNAPSHOT}; "
        "pull it first: maxa snapshot pull ContactType"
    )


def test_offline_validate_without_a_snapshot_file_is_exit_3(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "lines.csv", [("eRx", "60002", ACETAMINOPHEN)])
    result = run_maxa("validate", str(source), "--offline", env=clean_environ(), cwd=tmp_path)
    assert result.returncode == 3
    assert one_error_line(result).startswith(f"maxa: no snapshot file at {SNAPSHOT}")

    both = run_maxa(
        "validate", str(source), "--offline", "--hybrid", env=clean_environ(), cwd=tmp_path
    )
    assert both.returncode == 3
    assert "--offline and --hybrid exclude each other" in one_error_line(both)


# ---------------------------------------------------------------------------- validate --hybrid


def test_hybrid_asks_the_gateway_only_for_what_the_snapshot_lacks(
    maxa: Any, gateway: Gateway, snapshot: Path, tmp_path: Path
) -> None:
    old = maxa("--json", "snapshot", "pull", "eRx", "--version", "1000", "--snapshot", "old.db")
    assert old.returncode == 0, old.output
    old_values = snapshot_values(tmp_path / "old.db", "eRx")
    latest = snapshot_values(snapshot, "eRx")
    newer = sorted(set(latest) - set(old_values))  # in the latest version only
    assert len(newer) >= 2
    shared = next(code for code in sorted(old_values) if latest.get(code) == old_values[code])

    source = write_csv(
        tmp_path / "lines.csv",
        [
            ("eRx", shared, old_values[shared]),  # offline: valid
            ("eRx", shared, "NOT ITS VALUE"),  # offline: invalid
            ("eRx", newer[0], latest[newer[0]]),  # code miss: the gateway says valid
            ("eRx", newer[1], "NOT ITS VALUE"),  # code miss: the gateway says invalid
            ("ContactType", "6", "پست الکترونیکی شخصی"),  # terminology miss: valid
            ("eRx", "", "SOMETHING"),  # bad input: no lookup, no request
        ],
    )
    before = gateway_stats(gateway)["requests_by_operation"].get("ValidateCts", 0)
    result = maxa("validate", str(source), "--hybrid", "--snapshot", "old.db", "--out", "r.csv")
    assert result.returncode == 2, result.output
    after = gateway_stats(gateway)["requests_by_operation"].get("ValidateCts", 0)
    assert after - before == 3  # the two code misses and the terminology miss

    results = read_results((tmp_path / "r.csv").read_text("utf-8"))
    statuses = [r["status"] for r in results]
    assert statuses == ["valid", "invalid", "valid", "invalid", "valid", "error"]
    assert "gateway calls   │ 3 (codes not in the snapshot: 2, terminologies not pulled: 1" in (
        result.stdout
    )
    assert "offline answers │ 2 (1 valid, 1 invalid)" in result.stdout

    as_json = maxa(
        "validate", str(source), "--hybrid", "--snapshot", "old.db", "--json", "--out", "r.jsonl"
    )
    assert as_json.returncode == 2, as_json.output
    summary = json.loads(as_json.stdout)
    assert summary["mode"] == "hybrid"
    assert summary["hybrid"] == {
        "items": 6,
        "invalid_input": 1,
        "offline_hits": 2,
        "offline_valid": 1,
        "offline_invalid": 1,
        "online_calls": 3,
        "online_valid": 2,
        "online_invalid": 1,
        "online_errors": 0,
        "code_misses": 2,
        "terminology_misses": 1,
        "stale_rechecks": 0,
    }

    # --max-age: a snapshot synced longer ago than that has its "invalid" rechecked online.
    stale = maxa(
        "validate",
        str(source),
        "--hybrid",
        "--snapshot",
        "old.db",
        "--max-age",
        "0s",
        "--json",
        "--out",
        "stale.jsonl",
    )
    assert stale.returncode == 2, stale.output
    counts = json.loads(stale.stdout)["hybrid"]
    assert (counts["stale_rechecks"], counts["online_calls"]) == (1, 4)
    assert (counts["offline_hits"], counts["online_invalid"]) == (1, 2)

    # The same file offline: the codes newer than the snapshot are unknown to it.
    offline = run_maxa(
        "validate",
        str(source),
        "--offline",
        "--snapshot",
        "old.db",
        env=clean_environ(),
        cwd=tmp_path,
    )
    assert [r["status"] for r in read_results(offline.stdout)] == [
        "valid",
        "invalid",
        "invalid",
        "invalid",
        "error",
        "error",
    ]


def test_hybrid_without_credentials_points_at_offline(snapshot: Path, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "lines.csv", [("eRx", "60002", ACETAMINOPHEN)])
    result = run_maxa("validate", str(source), "--hybrid", env=clean_environ(), cwd=tmp_path)
    assert result.returncode == 3
    line = one_error_line(result)
    assert "missing credentials" in line and line.endswith("--offline needs no credentials")

    bad_age = run_maxa(
        "validate", str(source), "--hybrid", "--max-age", "soon", env=clean_environ(), cwd=tmp_path
    )
    assert bad_age.returncode == 3
    assert "Invalid value for '--max-age'" in bad_age.stderr


def test_hybrid_with_the_gateway_down_still_answers_from_the_snapshot(
    snapshot: Path, tmp_path: Path
) -> None:
    source = write_csv(
        tmp_path / "lines.csv",
        [("eRx", "60002", ACETAMINOPHEN), ("eRx", "123456789", "NEWER THAN THE SNAPSHOT")],
    )
    env = clean_environ() | {
        "MAXA_CLIENT_ID": "id",
        "MAXA_CLIENT_SECRET": "secret",
        "MAXA_USERNAME": "user",
        "MAXA_PASSWORD": "password",
        "MAXA_PID": "pid",
        "MAXA_BASE_URL": "http://127.0.0.1:1",  # nothing listens there
    }
    result = run_maxa("validate", str(source), "--hybrid", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.output
    first, second = read_results(result.stdout)
    assert first["status"] == "valid"
    assert second["status"] == "error"
    assert second["message"].startswith("connection to the gateway failed")
    assert "codes not in the snapshot: 1" in result.stderr
