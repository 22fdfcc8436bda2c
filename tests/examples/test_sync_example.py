"""The sync client as a user meets it: the README's snippet and examples/sync_client.py,
each run as a process against the fake gateway."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
from pathlib import Path

from maxa_async.testing import FakeGateway

ROOT = Path(__file__).resolve().parents[2]
ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
TIMEOUT = 60.0


async def run_python(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    # Development mode and warnings as errors: an unclosed session would show.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        "-W",
        "error",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode("utf-8"), stderr.decode("utf-8")


def gateway_env(gateway: FakeGateway) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    creds = gateway.credentials
    env.update(
        MAXA_BASE_URL=gateway.base_url,
        MAXA_CLIENT_ID=creds.client_id,
        MAXA_CLIENT_SECRET=creds.client_secret,
        MAXA_USERNAME=creds.username,
        MAXA_PASSWORD=creds.password,
        MAXA_PID=creds.pid,
        PYTHONIOENCODING="utf-8",
    )
    return env


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Synchronous code (scripts, Django, Celery)\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    assert match is not None, "the README's sync section has no python snippet"
    return match.group(1)


async def test_the_readme_snippet_runs_as_written(fake_gateway: FakeGateway) -> None:
    code, stdout, stderr = await run_python("-c", readme_snippet(), env=gateway_env(fake_gateway))
    assert code == 0, stderr
    assert stdout.splitlines() == [ACETAMINOPHEN, "1000"]
    assert stderr == ""  # closed at exit without a warning
    assert fake_gateway.stats.password_grants == 1
    # 1000 identical lines: in flight together they share requests.
    assert 1 <= fake_gateway.stats.requests_by_operation["ValidateCts"] <= 1000


async def test_the_sync_example_serves_views_and_runs_a_task(
    fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    source = tmp_path / "lines.csv"
    with source.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["terminology", "code", "value"])
        writer.writerows([("eRx", "60002", ACETAMINOPHEN)] * 50 + [("eRx", "60002", "WRONG")])
        writer.writerow(("eRx", "", "no code"))
    code, stdout, stderr = await run_python(
        str(ROOT / "examples" / "sync_client.py"),
        "60002",
        "no-such-code",
        "",
        "--csv",
        str(source),
        env=gateway_env(fake_gateway),
    )
    assert code == 1, stderr
    assert stdout.splitlines() == [
        f"200 60002 {ACETAMINOPHEN}",
        "404 no-such-code no such eRx code",
        "400  coded_string: bad value",
        "50 valid, 1 invalid, 1 errors",
    ]
    assert stderr == ""
    assert fake_gateway.stats.password_grants == 1


async def test_the_sync_example_without_credentials() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    code, _, stderr = await run_python(str(ROOT / "examples" / "sync_client.py"), env=env)
    assert code == 3
    assert "MAXA_CLIENT_ID" in stderr
    assert "Traceback" not in stderr
