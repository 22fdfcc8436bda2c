"""The README's per-call options and network snippets: the first is
examples/backend_options.py word for word and runs against the fake gateway; the second
builds a client from its own words."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

import maxa_async as maxa
from maxa_async.testing import FakeGateway

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "backend_options.py"


def _blocks(heading: str) -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


async def _run_example(path: Path, gateway: FakeGateway) -> tuple[str, str]:
    """Run an example file against ``gateway`` (its MAXA_* settings); stdout, stderr."""
    creds = gateway.credentials
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}
    env.update(
        MAXA_BASE_URL=gateway.base_url,
        MAXA_CLIENT_ID=creds.client_id,
        MAXA_CLIENT_SECRET=creds.client_secret,
        MAXA_USERNAME=creds.username,
        MAXA_PASSWORD=creds.password,
        MAXA_PID=creds.pid,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


def test_the_readme_block_is_the_example_file() -> None:
    assert _blocks("Per-call options and hooks")[0] == EXAMPLE.read_text(encoding="utf-8")


async def test_the_example_runs_and_logs_request_ids(fake_gateway: FakeGateway) -> None:
    gateway = fake_gateway
    out, err = await _run_example(EXAMPLE, gateway)
    assert out.split() == ["اسلام", "True", "True"]
    audit = [line for line in err.splitlines() if line.startswith("audit: ")]
    assert len(audit) == 3, err
    assert re.match(r"audit: Terminology 200 request_id=\S{8,} attempts=1$", audit[0])
    assert "ValidateCts 200" in audit[1] and "attempts=1" in audit[1]
    assert audit[2].endswith("(coalesced)")  # the same line twice in flight: one request
    assert gateway.stats.requests_by_operation["ValidateCts"] == 1


def test_the_network_snippet_builds_a_client(tmp_path: Path) -> None:
    (snippet,) = _blocks("Proxies and certificates")
    ca = tmp_path / "hospital-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    snippet = snippet.replace("/etc/ssl/hospital-ca.pem", str(ca))
    creds = maxa.Credentials(client_id="c", client_secret="s", username="u", password="p", pid="x")
    namespace: dict[str, object] = {"maxa": maxa, "creds": creds}
    exec(snippet, namespace)
    client = namespace["client"]
    assert isinstance(client, maxa.MaxaClient)
    assert client._transport._request_options["proxy"] == "http://proxy.internal:3128"


OBSERVABILITY = ROOT / "examples" / "observability.py"


def test_the_observability_block_is_the_example_file() -> None:
    assert _blocks("Observability")[0] == OBSERVABILITY.read_text(encoding="utf-8")


async def test_the_observability_example_prints_a_span_and_a_scrape(
    fake_gateway: FakeGateway,
) -> None:
    creds = fake_gateway.credentials
    text, _ = await _run_example(OBSERVABILITY, fake_gateway)
    assert "اسلام" in text.splitlines()
    assert text.count('"name": "MAXA Terminology"') == 1
    assert '"maxa.attempts": 1' in text
    assert 'maxa_requests_total{operation="Terminology"} 1.0' in text
    assert creds.password not in text and creds.client_secret not in text


async def test_the_middleware_snippet_audits_every_request(
    fake_gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    snippet = _blocks("Per-call options and hooks")[1]
    creds = fake_gateway.credentials
    for name, value in {
        "MAXA_BASE_URL": fake_gateway.base_url,
        "MAXA_CLIENT_ID": creds.client_id,
        "MAXA_CLIENT_SECRET": creds.client_secret,
        "MAXA_USERNAME": creds.username,
        "MAXA_PASSWORD": creds.password,
        "MAXA_PID": creds.pid,
    }.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO, logger="audit")
    namespace: dict[str, object] = {}
    exec(snippet, namespace)
    client = namespace["client"]
    assert isinstance(client, maxa.MaxaClient)
    async with client:
        assert await client.terminology("thritaEHR.Religion", "1") == "اسلام"
    lines = [r.getMessage() for r in caplog.records if r.name == "audit"]
    assert len(lines) == 2, lines  # the token grant goes through the middleware too
    assert re.fullmatch(r"/oauth/token 200 requestId=\S{8,}", lines[0])
    assert re.fullmatch(r"/\S+/Terminology 200 requestId=\S{8,}", lines[1])
    assert not any(creds.password in line or creds.client_secret in line for line in lines)
    assert fake_gateway.stats.requests_by_operation["Terminology"] == 1
