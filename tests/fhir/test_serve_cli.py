"""``maxa serve --fhir`` as a real process: offline, hybrid and --emulator, and its
usage errors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fhir_checks import ACETAMINOPHEN, ERX, NEW_DRUG, values
from fhirpy import AsyncFHIRClient

from maxa_async.snapshot import SnapshotStore
from maxa_async.testing import FakeGateway

TIMEOUT = 60.0


def environ(gateway: FakeGateway | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    if gateway is not None:
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


@asynccontextmanager
async def serving(
    *args: str, env: Mapping[str, str], cwd: Path
) -> AsyncIterator[tuple[dict[str, Any], list[Any]]]:
    """Start ``maxa serve --fhir --port 0 ARGS``; yield its ready line, and (after the
    block) the exit code it had after SIGTERM, and its stderr, in the list."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maxa_async.cli",
        "serve",
        "--fhir",
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    assert process.stdout is not None and process.stderr is not None
    exit_codes: list[Any] = []
    try:
        line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        if not line:
            error = await process.stderr.read()
            raise AssertionError(f"no ready line; stderr: {error.decode()}")
        yield json.loads(line), exit_codes
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            exit_codes.append(await asyncio.wait_for(process.wait(), TIMEOUT))
            exit_codes.append((await process.stderr.read()).decode())
        except TimeoutError:
            process.kill()
            await process.wait()
            raise


async def run_maxa(*args: str, env: Mapping[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maxa_async.cli",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def validate(base_url: str, code: str, display: str) -> dict[str, Any]:
    answer = await AsyncFHIRClient(base_url).execute(
        "CodeSystem/$validate-code",
        method="get",
        params={"system": ERX, "code": code, "display": display},
    )
    return values(json.loads(json.dumps(answer)))


async def test_offline_serves_the_snapshot_and_stops_cleanly(
    store: SnapshotStore, tmp_path: Path, gateway: FakeGateway
) -> None:
    async with serving("--offline", "--snapshot", store.path, env=environ(), cwd=tmp_path) as (
        ready,
        exit_codes,
    ):
        assert ready["mode"] == "offline"
        assert ready["snapshot"] == store.path
        assert ready["terminologies"] == ["ContactType", "eRx", "ICD10", "thritaEHR.Religion"]
        assert ready["base_url"].startswith("http://127.0.0.1:")
        assert await validate(ready["base_url"], "60002", ACETAMINOPHEN) == {
            "result": True,
            "display": ACETAMINOPHEN,
        }
        assert (await validate(ready["base_url"], *NEW_DRUG))["result"] is False
    assert exit_codes[0] == 0, exit_codes[1]
    assert gateway.stats.requests == 0


async def test_hybrid_asks_the_gateway_only_for_what_the_snapshot_lacks(
    store: SnapshotStore, tmp_path: Path, gateway: FakeGateway
) -> None:
    env = environ(gateway)
    async with serving("--hybrid", "--snapshot", store.path, env=env, cwd=tmp_path) as (
        ready,
        exit_codes,
    ):
        assert ready["mode"] == "hybrid"
        assert (await validate(ready["base_url"], "60002", ACETAMINOPHEN))["result"] is True
        assert (await validate(ready["base_url"], *NEW_DRUG))["result"] is True
    assert exit_codes[0] == 0, exit_codes[1]
    assert gateway.stats.requests_by_operation == {"ValidateCts": 1}


async def test_online_with_the_emulator(tmp_path: Path) -> None:
    async with serving("--emulator", env=environ(), cwd=tmp_path) as (ready, exit_codes):
        assert (ready["mode"], ready["snapshot"], ready["terminologies"]) == ("online", None, [])
        assert await validate(ready["base_url"], "60002", ACETAMINOPHEN) == {
            "result": True,
            "display": ACETAMINOPHEN,
        }
    assert exit_codes[0] == 0, exit_codes[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve",), "maxa serve speaks FHIR only: add --fhir"),
        (
            ("serve", "--fhir", "--offline", "--emulator"),
            "--offline asks no gateway; drop --emulator (or use --hybrid)",
        ),
        (
            ("serve", "--fhir", "--offline", "--hybrid"),
            "--offline and --hybrid exclude each other; pick one",
        ),
        (("serve", "--fhir", "--max-age", "1h"), "--max-age applies to --hybrid only"),
        (("serve", "--fhir", "--offline", "--snapshot", "missing.db"), "no snapshot file at"),
        (("serve", "--fhir"), "online mode asks the gateway: missing credentials"),
    ],
)
async def test_usage_errors_exit_3(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, stderr = await run_maxa(*args, env=environ(), cwd=tmp_path)
    assert code == 3, stderr
    assert message in stderr
