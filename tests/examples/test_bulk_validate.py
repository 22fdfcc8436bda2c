"""examples/bulk_validate.py as a user runs it: a process, credentials in the environment."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path

from maxa_async.testing import FakeGateway

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
TIMEOUT = 60.0


async def run_script(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "bulk_validate.py"),
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
    )
    return env


async def test_bulk_validate_a_csv(fake_gateway: FakeGateway, tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    lines = [("eRx", "60002", ACETAMINOPHEN)] * 300 + [("eRx", "60002", "WRONG")] * 20
    lines += [("thritaEHR.Religion", "1", "اسلام"), ("eRx", "", "no code")]
    with source.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["terminology", "code", "value"])
        writer.writerows(lines)
    out = tmp_path / "results.csv"

    code, _, stderr = await run_script(
        str(source), "--out", str(out), env=gateway_env(fake_gateway)
    )

    assert code == 2, stderr  # one line could not be checked (no code)
    assert "322 lines: 301 valid, 20 invalid, 1 errors" in stderr
    with out.open(encoding="utf-8", newline="") as file:
        results = list(csv.DictReader(file))
    assert [(r["terminology"], r["code"], r["value"]) for r in results] == lines
    assert [r["status"] for r in results[298:]] == ["valid"] * 2 + ["invalid"] * 20 + [
        "valid",
        "error",
    ]
    # 321 checks were sent or shared: identical lines in flight together share a request.
    validations = fake_gateway.stats.requests_by_operation["ValidateCts"]
    assert 3 <= validations <= 321
    assert fake_gateway.stats.password_grants == 1


async def test_bulk_validate_with_the_emulator_switch(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text(f"terminology,code,value\neRx,60002,{ACETAMINOPHEN}\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    code, stdout, stderr = await run_script(str(source), "--emulator", env=env)
    assert code == 0, stderr
    assert stdout.splitlines() == [
        "terminology,code,value,status,message",
        f"eRx,60002,{ACETAMINOPHEN},valid,",
    ]


async def test_bulk_validate_without_credentials(tmp_path: Path) -> None:
    source = tmp_path / "lines.csv"
    source.write_text("terminology,code,value\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    code, _, stderr = await run_script(str(source), env=env)
    assert code == 3
    assert "MAXA_CLIENT_ID" in stderr
    assert "Traceback" not in stderr
