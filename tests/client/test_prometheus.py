"""Prometheus: a client's stats scraped in the text format, exact values."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import maxa_async as maxa
from maxa_async.prometheus import StatsCollector
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


async def test_a_scrape_shows_the_clients_counts(gateway: FakeGateway) -> None:
    registry = CollectorRegistry()
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        registry.register(StatsCollector(client))
        await client.terminology(*RELIGION)
        await client.terminology(*RELIGION)
        with pytest.raises(maxa.NotFoundError):
            await client.terminology("thritaEHR.Religion", "424242")
        text = generate_latest(registry).decode()
    lines = set(text.splitlines())
    assert 'maxa_requests_total{operation="Terminology"} 3.0' in lines
    assert 'maxa_responses_total{status="200"} 3.0' in lines
    assert "maxa_calls_total 3.0" in lines
    assert "maxa_call_failures_total 1.0" in lines
    assert 'maxa_token_grants_total{kind="password"} 1.0' in lines
    assert f"maxa_concurrency_limit {float(client.limiter.state()['limit'])}" in lines
    assert "maxa_in_flight 0.0" in lines
    assert "# TYPE maxa_rate_limited_total counter" in lines
    creds = gateway.credentials
    assert creds.password not in text and creds.client_secret not in text
