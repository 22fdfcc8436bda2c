"""OpenTelemetry: spans and metrics of a client, through the SDK's in-memory exporters,
with exact counts (issue 17, in part)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import maxa_async as maxa
import maxa_async.otel
from maxa_async.events import ResponseEvent
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


def _metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_a_span_per_call_with_attempts_and_metrics(gateway: FakeGateway) -> None:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    seen: list[ResponseEvent] = []
    policy = maxa.RetryPolicy(attempts=3, backoff=False)
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=policy,
        coalesce=False,
        on_response=seen.append,  # a hook of the user's own still runs
    ) as client:
        maxa_async.otel.instrument(client, tracer_provider=tracing, meter_provider=meters)
        assert await client.terminology(*RELIGION) == "اسلام"
        item = maxa.CodedText(value="x", terminology_id="ContactType", coded_string="1")
        assert await client.validate_cts(item) is False
        gateway.config.update(error_rate=1.0, error_statuses=(503,))
        with pytest.raises(maxa.ServiceError):
            await client.terminology("eRx", "60002")
        gateway.config.error_rate = 0.0
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == [
        "MAXA Terminology",
        "MAXA ValidateCts",
        "MAXA Terminology",
    ]
    assert len(seen) == 3
    first, second, failed = finished
    assert first.kind is SpanKind.CLIENT
    assert first.attributes is not None and first.attributes["http.request.method"] == "GET"
    assert first.attributes["http.response.status_code"] == 200
    assert first.attributes["maxa.request_id"] == seen[0].request_id
    assert str(first.attributes["url.full"]).endswith("/gwmaksa/Terminology")
    assert first.attributes["maxa.terminology_id"] == "thritaEHR.Religion"
    assert second.attributes is not None
    assert second.attributes["maxa.terminology_id"] == "ContactType"
    assert 0 <= float(first.attributes["maxa.queued_seconds"]) < 1
    assert second.attributes is not None and second.attributes["http.request.method"] == "POST"
    assert [e.name for e in failed.events] == ["attempt"] * 3
    assert failed.attributes is not None and failed.attributes["maxa.attempts"] == 3
    assert failed.attributes["error.type"] == "ServiceError"
    assert failed.status.status_code is StatusCode.ERROR
    text = repr([dict(s.attributes or {}) for s in finished])
    creds = gateway.credentials
    for secret in (creds.password, creds.client_secret, "x"):  # no secret, no item value
        assert f"'{secret}'" not in text
    found = _metrics(reader)
    durations = {
        (p.attributes["maxa.operation"], p.attributes["http.response.status_code"]): p.count
        for p in found["maxa.client.call.duration"]
    }
    assert durations == {("Terminology", 200): 1, ("ValidateCts", 200): 1, ("Terminology", 503): 1}
    retries = {p.attributes["maxa.cause"]: p.value for p in found["maxa.client.retries"]}
    assert retries == {"503": 2}
    grants = {p.attributes["maxa.grant"]: p.value for p in found["maxa.client.token_grants"]}
    assert grants == {"password": 1, "refresh_token": 0, "failed": 0}
    assert [p.value for p in found["maxa.client.rate_limited"]] == [0]
    assert [p.value for p in found["maxa.client.concurrency.limit"]] == [64]
    assert [p.value for p in found["maxa.client.in_flight"]] == [0]


async def test_cached_and_coalesced_calls_are_spans_too(gateway: FakeGateway) -> None:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, cache=maxa.ResponseCache()
    ) as client:
        maxa_async.otel.instrument(client, tracer_provider=tracing, meter_provider=MeterProvider())
        await asyncio.gather(client.terminology(*RELIGION), client.terminology(*RELIGION))
        await client.terminology(*RELIGION)
    flags = [
        (s.attributes["maxa.cached"], s.attributes["maxa.coalesced"])
        for s in spans.get_finished_spans()
        if s.attributes is not None
    ]
    assert sorted(flags) == [(False, False), (False, True), (True, False)]


def test_the_package_never_imports_opentelemetry_by_itself() -> None:
    code = (
        "import sys, maxa_async, maxa_async.client, maxa_async.testing, maxa_async.cli\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
