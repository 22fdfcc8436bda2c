"""Process mode: ``python -m maxa_async.testing``, and the knob list it shares with the CLI."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from maxa_async.testing import FakeGateway, GatewayConfig, build_arg_parser, config_from_args
from maxa_async.testing._cli import data_from_args

READY_KEYS = {"base_url", "client_id", "client_secret", "username", "password", "pid"}


async def start_process(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maxa_async.testing",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, orjson.loads(line)


async def stop_process(process: asyncio.subprocess.Process, signum: int) -> int:
    process.send_signal(signum)
    try:
        return await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_process_mode_serves_until_signalled(
    http: aiohttp.ClientSession, tmp_path: Path, signum: int
) -> None:
    extra = tmp_path / "extra.csv"
    extra.write_text("terminology,code,value\nLocal,7,SEVEN\n", encoding="utf-8")
    process, ready = await start_process("--rps-limit", "100", "--seed", "3", "--data", str(extra))
    try:
        assert set(ready) == READY_KEYS
        assert ready["client_id"] == "maxa-test-client"
        base = ready["base_url"]
        auth = aiohttp.encode_basic_auth(ready["client_id"], ready["client_secret"])
        form = {
            "grant_type": "password",
            "username": ready["username"],
            "password": ready["password"],
        }
        async with http.post(
            base + "/oauth/token", data=form, headers={"Authorization": auth}
        ) as r:
            assert r.status == 200
            token = (await r.json())["access_token"]
        async with http.post(
            base + "/api/client/apim/v1/maksaservice/gwmaksa/ValidateCts",
            json={
                "DoCodedText": {
                    "valueField": "SEVEN",
                    "terminology_idField": "local",
                    "coded_stringField": "7",
                }
            },
            headers={"Authorization": f"Bearer {token}", "pid": ready["pid"]},
        ) as r:
            assert r.status == 200
            assert (await r.json())["result"]["data"] == "true"
        async with http.get(base + "/__config") as r:
            config = await r.json()
            assert (config["rps_limit"], config["seed"]) == (100.0, 3)
        async with http.get(base + "/__stats") as r:
            assert (await r.json())["requests_by_operation"] == {"ValidateCts": 1}
    finally:
        code = await stop_process(process, signum)
    assert code == 0
    assert process.stdout is not None
    assert await process.stdout.read() == b""  # exactly one line on stdout


async def test_process_rejects_bad_arguments() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "maxa_async.testing",
        "--error-rate",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 2
    assert b"error_rate" in err


def test_arg_parser_covers_every_knob() -> None:
    parser = build_arg_parser()
    options = {opt for action in parser._actions for opt in action.option_strings}
    for spec in GatewayConfig.knob_specs():
        assert spec.option in options
    args = parser.parse_args(
        [
            "--token-ttl",
            "0.5",
            "--rps-limit",
            "20",
            "--no-retry-after",
            "--blocked-ip",
            "--error-statuses",
            "503,504",
            "--revoke-every",
            "5",
            "--pid",
            "p",
            "--latency",
            "0.01",
        ]
    )
    config = config_from_args(args)
    assert config.token_ttl == 0.5
    assert config.rps_limit == 20.0
    assert config.retry_after is False
    assert config.blocked_ip is True
    assert config.error_statuses == (503, 504)
    assert config.revoke_every == 5
    assert config.pid == "p"
    assert config.latency == 0.01
    assert config_from_args(parser.parse_args([])) == GatewayConfig()
    data = data_from_args(parser.parse_args(["--no-generated"]))
    assert data.versions("eRx") == []


async def test_in_process_start_close_and_errors() -> None:
    gw = FakeGateway()
    with pytest.raises(RuntimeError):
        _ = gw.base_url
    await gw.start()
    try:
        with pytest.raises(RuntimeError):
            await gw.start()
        busy = FakeGateway(port=gw.port)
        with pytest.raises(OSError):
            await busy.start()
    finally:
        await gw.close()
    await gw.close()  # idempotent
