"""A script that never closes its sync client exits cleanly: no "Unclosed client session",
no ResourceWarning, no hang (Python's development mode shows every such warning)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from maxa_async.testing import FakeGateway

TIMEOUT = 60


def run_script(source: str, gateway: FakeGateway) -> subprocess.CompletedProcess[str]:
    creds = gateway.credentials
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    env.update(
        MAXA_BASE_URL=gateway.base_url,
        MAXA_CLIENT_ID=creds.client_id,
        MAXA_CLIENT_SECRET=creds.client_secret,
        MAXA_USERNAME=creds.username,
        MAXA_PASSWORD=creds.password,
        MAXA_PID=creds.pid,
        PYTHONIOENCODING="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", textwrap.dedent(source)],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    )


def test_a_client_left_open_is_closed_at_exit_without_a_warning(gateway: FakeGateway) -> None:
    result = run_script(
        """
        from maxa_async.sync import MaxaClient

        client = MaxaClient.from_env()   # module level, never closed
        print(client.terminology("thritaEHR.Religion", "1"))
        print(sum(o.valid for o in client.validate_many(
            [__import__("maxa_async").CodedText(value="X", terminology_id="eRx",
                                                coded_string="60002")] * 20)))
        """,
        gateway,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["اسلام", "0"]
    assert result.stderr == ""
    assert gateway.stats.password_grants == 1


def test_a_run_abandoned_mid_bulk_at_exit_leaves_no_warning(gateway: FakeGateway) -> None:
    result = run_script(
        """
        import maxa_async as maxa
        from maxa_async.sync import MaxaClient

        client = MaxaClient.from_env()
        item = maxa.CodedText(value="X", terminology_id="eRx", coded_string="60002")
        run = client.validate_many([item] * 5000, window=64)
        print(next(run).valid)   # the run is still going when the interpreter exits
        """,
        gateway,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
    assert result.stderr == ""


def test_closing_explicitly_is_clean_too(gateway: FakeGateway) -> None:
    result = run_script(
        """
        import gc
        from maxa_async.sync import MaxaClient

        with MaxaClient.from_env() as client:
            print(client.terminology("thritaEHR.Religion", "1"))
        other = MaxaClient.from_env()
        print(other.terminology("thritaEHR.Religion", "1"))
        del other          # collected: its finalizer closes it
        gc.collect()
        """,
        gateway,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["اسلام", "اسلام"]
    assert result.stderr == ""
