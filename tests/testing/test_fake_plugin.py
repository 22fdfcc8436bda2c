"""The opt-in pytest plugin: in this suite, and as a user's conftest enables it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from maxa_async.testing import FakeGateway, GatewayConfig

USER_CONFTEST = 'pytest_plugins = ["maxa_async.testing.pytest_plugin"]\n'

USER_TESTS = """
import aiohttp
import pytest

from maxa_async.testing import GatewayConfig


async def test_default_gateway(maxa_gateway):
    async with aiohttp.ClientSession() as session:
        async with session.get(maxa_gateway.base_url + "/__stats") as response:
            assert response.status == 200
    assert maxa_gateway.config == GatewayConfig()


async def test_factory(maxa_gateway_factory):
    first = await maxa_gateway_factory(rps_limit=5)
    second = await maxa_gateway_factory(GatewayConfig(pid="other"))
    assert first.config.rps_limit == 5
    assert second.credentials.pid == "other"
    assert first.base_url != second.base_url
"""

USER_OVERRIDE = """
import pytest

from maxa_async.testing import GatewayConfig


@pytest.fixture
def maxa_gateway_config():
    return GatewayConfig(token_ttl=5, seed=11)


async def test_overridden_config(maxa_gateway):
    assert (maxa_gateway.config.token_ttl, maxa_gateway.config.seed) == (5.0, 11)
"""


def test_plugin_in_a_users_suite_with_auto_mode(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(USER_CONFTEST)
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    (tmp_path / "test_override.py").write_text(USER_OVERRIDE)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # this venv may carry a stale ``pytest11`` entry point that auto-loads the
            # plugin as "maxa_async"; switch it off so the opt-in line is what loads it
            "-p",
            "no:maxa_async",
            "--rootdir",
            str(tmp_path),
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-W",
            "error::ResourceWarning",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


async def test_fixtures_here(maxa_gateway: FakeGateway, maxa_gateway_factory: Any) -> None:
    assert maxa_gateway.config == GatewayConfig()
    custom = await maxa_gateway_factory(error_rate=1.0)
    assert custom.config.error_rate == 1.0
    assert custom is not maxa_gateway
