"""The installed wheel on its own: the pytest plugin's fixture, and the sync client against
the fake gateway run as a process (``python -m maxa_async.testing``)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import maxa_async as maxa
from maxa_async.sync import MaxaClient

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"


async def test_the_plugin_serves_a_fake_gateway(maxa_gateway: Any) -> None:
    async with maxa.MaxaClient(maxa_gateway.credentials, base_url=maxa_gateway.base_url) as client:
        assert await client.terminology("thritaEHR.Religion", "1") == "اسلام"
        right = maxa.CodedText(value=ACETAMINOPHEN, terminology_id="eRx", coded_string="60002")
        wrong = maxa.CodedText(value="WRONG", terminology_id="eRx", coded_string="60002")
        assert await client.validate_cts(right) is True
        assert await client.validate_cts(wrong) is False
    assert maxa_gateway.stats.password_grants == 1


def test_the_sync_client_against_the_gateway_process() -> None:
    gateway = subprocess.Popen(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert gateway.stdout is not None
    try:
        info = json.loads(gateway.stdout.readline())
        creds = maxa.Credentials(
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            username=info["username"],
            password=info["password"],
            pid=info["pid"],
        )
        with MaxaClient(creds, base_url=info["base_url"]) as client:
            assert client.terminology("eRx", "60002") == ACETAMINOPHEN
            wrong = maxa.CodedText(value="WRONG", terminology_id="eRx", coded_string="60002")
            assert [o.valid for o in client.validate_many([wrong] * 50)] == [False] * 50
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        gateway.stdout.close()
