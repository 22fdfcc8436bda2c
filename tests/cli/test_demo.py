"""``maxa demo`` end to end, as a user runs it: no credentials, no TTY."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import clean_environ, run_maxa


def test_demo_prints_a_summary_and_the_throughput_line(tmp_path: Path) -> None:
    result = run_maxa("demo", "--items", "2000", env=clean_environ(), cwd=tmp_path)
    assert result.returncode == 0, result.output
    match = re.search(r"^throughput: (\d+) validations/s$", result.stdout, re.MULTILINE)
    assert match is not None, result.stdout
    assert int(match.group(1)) > 0
    for label in ("valid", "invalid", "errors", "HTTP requests", "token grants", "429s", "retries"):
        assert label in result.stdout
    assert re.search(r"requests/s answered 200 while validating: \d+% of the fake's", result.stdout)
    assert re.search(r"wrong answers\s+│\s+0\b", result.stdout)
    assert "Traceback" not in result.stderr
    assert "validating: 2,000/2,000 lines" in result.stderr  # plain progress without a TTY


def test_demo_json_counts_add_up_and_match_the_gateway(tmp_path: Path) -> None:
    result = run_maxa(
        "demo", "--items", "1500", "--seed", "3", "--json", env=clean_environ(), cwd=tmp_path
    )
    assert result.returncode == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["valid"] + summary["invalid"] + summary["errors"] == 1500
    assert summary["mismatches"] == 0
    planted_invalid = sum(n for kind, n in summary["planted"].items() if kind != "current")
    # Every verdict matched what was planted; a line may end in an error instead.
    assert summary["invalid"] <= planted_invalid <= summary["invalid"] + summary["errors"]
    assert 60 <= planted_invalid <= 180  # about 8%
    requests = summary["http_requests"]
    assert requests["client_sent"] == requests["gateway_received"]
    # Duplicates of popular drugs in flight at once share one request.
    assert requests["coalesced_duplicates"] > 0
    assert requests["client_sent"] + requests["coalesced_duplicates"] >= 1500
    tokens = summary["tokens"]
    assert tokens["client_password_grants"] == tokens["gateway_password_grants"] == 1
    assert tokens["client_refresh_grants"] == tokens["gateway_refresh_grants"]
    assert summary["rate_limited_429"]["client_seen"] == summary["rate_limited_429"]["gateway_sent"]
    # How close it came to the fake's limit: its 200s over the time spent validating.
    share = summary["share_of_rate_limit"]
    limit = summary["gateway_knobs"]["rps_limit"]
    # (admitted_per_s is itself rounded to 0.1/s)
    assert share == pytest.approx(summary["admitted_per_s"] / limit, abs=0.0015)
    assert 0 < share <= 1.2  # windows touched at both ends can admit a little over R x T
