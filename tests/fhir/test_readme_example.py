"""The README's FHIR example is examples/fhir_validate.py, word for word, and it runs."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from maxa_async.testing import FakeGateway, GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fhir_validate.py"
DROPS = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
TIMEOUT = 90.0


def readme_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## FHIR\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the FHIR section has no python block"
    return str(blocks[0])


def test_the_readme_block_is_the_example_file() -> None:
    assert readme_block() == EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture
async def fake_gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig()) as gateway:  # the seeded eRx, 50,000 codes
        yield gateway


async def test_the_example_runs_against_the_fake_gateway(
    fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    creds = fake_gateway.credentials
    env.update(
        MAXA_BASE_URL=fake_gateway.base_url,
        MAXA_CLIENT_ID=creds.client_id,
        MAXA_CLIENT_SECRET=creds.client_secret,
        MAXA_USERNAME=creds.username,
        MAXA_PASSWORD=creds.password,
        MAXA_PID=creds.pid,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode("utf-8").splitlines() == [
        f"result=True, display={DROPS}",
        "result=False, message=Wrong display 'ACETAMINOPHEN' for "
        f"urn:maxa-async:CodeSystem:eRx#60002; the valid display is '{DROPS}', display={DROPS}",
    ]
    assert (tmp_path / "maxa-snapshot.db").is_file()
    assert fake_gateway.stats.requests_by_operation == {
        "TerminologyVersions": 1,
        "TerminologiesTermByVersion": 1,
    }
