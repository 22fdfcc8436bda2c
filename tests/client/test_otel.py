"""OpenTelemetry: spans and metrics of a client, through the SDK's in-memory exporters,
with exact counts (issue 17, in part)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import maxa_async as maxa
import maxa_async.otel
from maxa_async.events import RequestEvent, ResponseEvent
from maxa_async.testing import FakeGateway
from maxa_async.testing._wire import RATE_LIMITED as RATE

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
    assert "maxa.queued_seconds" not in first.attributes  # it never waited for a slot
    assert second.attributes is not None and second.attributes["http.request.method"] == "POST"
    assert first.events == ()  # one send: the span is the attempt
    assert [e.name for e in failed.events] == ["attempt"] * 3
    assert failed.attributes is not None and failed.attributes["maxa.attempts"] == 3
    assert failed.attributes["maxa.retry_causes"] == ("server_error:503", "server_error:503")
    assert failed.attributes["http.request.resend_count"] == 2
    assert "maxa.retry_causes" not in first.attributes
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
    assert retries == {"server_error:503": 2}
    grants = {p.attributes["maxa.grant"]: p.value for p in found["maxa.client.token_grants"]}
    assert grants == {"password": 1, "refresh_token": 0, "failed": 0}
    assert [p.value for p in found["maxa.client.rate_limited"]] == [0]
    bound = client.limiter.state()["limit"]
    assert [p.value for p in found["maxa.client.concurrency.limit"]] == [bound]
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
    flags = [  # set only when true
        (s.attributes.get("maxa.cached", False), s.attributes.get("maxa.coalesced", False))
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


def _tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    return tracing, spans


def _retries(reader: InMemoryMetricReader) -> dict[str, int]:
    found = _metrics(reader).get("maxa.client.retries", [])
    return {p.attributes["maxa.cause"]: p.value for p in found}


def _only_span(spans: InMemorySpanExporter) -> Any:
    finished = spans.get_finished_spans()
    assert len(finished) == 1
    return finished[0]


def _attempt_events(span: Any) -> list[dict[str, Any]]:
    assert all(e.name == "attempt" for e in span.events)
    return [dict(e.attributes or {}) for e in span.events]


async def test_a_503_then_an_answer_is_two_attempts_with_its_cause(gateway: FakeGateway) -> None:
    tracing, spans = _tracing()
    reader = InMemoryMetricReader()

    def heal(event: RequestEvent) -> None:  # the first send meets a 503, the second not
        gateway.config.error_rate = 1.0 if event.attempt == 1 else 0.0

    gateway.config.update(error_statuses=(503,))
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy(attempts=3, backoff=False),
        on_request=heal,
    ) as client:
        maxa_async.otel.instrument(
            client, tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])
        )
        assert await client.terminology(*RELIGION) == "اسلام"
    span = _only_span(spans)
    assert span.attributes["maxa.attempts"] == 2
    assert span.attributes["maxa.retry_causes"] == ("server_error:503",)
    assert span.attributes["http.request.resend_count"] == 1
    assert span.attributes["http.response.status_code"] == 200
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert _attempt_events(span) == [
        {"maxa.attempt": 1},
        {"maxa.attempt": 2, "maxa.retry_cause": "server_error:503"},
    ]
    assert _retries(reader) == {"server_error:503": 1}
    assert gateway.stats.requests_by_operation == {"Terminology": 2}
    assert gateway.stats.responses_by_status == {503: 1, 200: 1}


async def test_a_429_with_retry_after_is_rate_limited(gateway: FakeGateway) -> None:
    tracing, spans = _tracing()
    reader = InMemoryMetricReader()
    seen: list[ResponseEvent] = []
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy(attempts=3, backoff=False),
        on_response=seen.append,
    ) as client:
        maxa_async.otel.instrument(
            client, tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])
        )
        send = client._transport.request
        refusals = [
            (429, CIMultiDictProxy(CIMultiDict({"Retry-After": "0", "requestId": "r-1"})), RATE)
        ]

        async def refuse_once(*args: Any, **kwargs: Any) -> Any:
            if refusals and kwargs.get("operation") == "Terminology":
                return refusals.pop()
            return await send(*args, **kwargs)

        client._transport.request = refuse_once  # type: ignore[method-assign]
        assert await client.terminology(*RELIGION) == "اسلام"
    span = _only_span(spans)
    assert span.attributes["maxa.attempts"] == 2
    assert span.attributes["maxa.retry_causes"] == ("rate_limited",)
    assert span.attributes["maxa.request_id"] != "r-1"  # the answer's, not the refusal's
    (retried,) = seen[0].retried
    assert isinstance(retried, maxa.RateLimitedError) and retried.retry_after == 0.0
    assert _retries(reader) == {"rate_limited": 1}
    assert [p.value for p in _metrics(reader)["maxa.client.rate_limited"]] == [1]
    assert gateway.stats.requests_by_operation == {"Terminology": 1}  # the 429 was ours


async def test_a_transport_timeout_then_an_answer(gateway: FakeGateway) -> None:
    tracing, spans = _tracing()
    reader = InMemoryMetricReader()

    def heal(event: RequestEvent) -> None:  # the first send waits past its limit
        gateway.config.latency = 1.0 if event.attempt == 1 else 0.0

    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy(attempts=2, backoff=False),
        timeout=0.2,
        on_request=heal,
    ) as client:
        maxa_async.otel.instrument(
            client, tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])
        )
        assert await client.terminology(*RELIGION) == "اسلام"
    span = _only_span(spans)
    assert span.attributes["maxa.attempts"] == 2
    assert span.attributes["maxa.retry_causes"] == ("timeout",)
    assert _attempt_events(span)[1] == {"maxa.attempt": 2, "maxa.retry_cause": "timeout"}
    assert _retries(reader) == {"timeout": 1}
    assert gateway.stats.requests_by_operation == {"Terminology": 2}


async def test_a_401_replayed_with_a_fresh_token(gateway: FakeGateway) -> None:
    tracing, spans = _tracing()
    reader = InMemoryMetricReader()
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        await client.terminology(*RELIGION)  # a token, before the tracing
        maxa_async.otel.instrument(
            client, tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])
        )
        gateway.revoke_all_tokens()
        assert await client.terminology(*RELIGION) == "اسلام"
    span = _only_span(spans)
    assert span.attributes["maxa.attempts"] == 1  # a replay is not an attempt
    assert span.attributes["maxa.retry_causes"] == ("token_refresh",)
    assert span.attributes["http.request.resend_count"] == 1
    assert len(span.events) == 2
    assert _retries(reader) == {"token_refresh": 1}
    assert client.stats.replays_after_401 == 1


async def test_retry_cause_names(gateway: FakeGateway) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        timed_out = client._transport._timed_out("Terminology")
    cause = maxa_async.otel.retry_cause
    assert cause(timed_out) == "timeout"
    assert cause(maxa.TransportError("connection to the gateway failed: OSError: x")) == (
        "connection"
    )
    assert cause(maxa.ServiceError("closed", status=499)) == "server_error:499"
    assert cause(maxa.ServiceError("bad gateway", status=502)) == "server_error:502"
    assert cause(maxa.RateLimitedError("slow down")) == "rate_limited"
    assert cause(maxa.AuthenticationError("revoked", status=401)) == "token_refresh"
    assert cause(maxa.ProtocolError("not JSON", status=200)) == "ProtocolError:200"


async def test_no_credential_token_or_item_value_in_any_attribute(gateway: FakeGateway) -> None:
    tracing, spans = _tracing()
    reader = InMemoryMetricReader()
    tokens: set[str] = set()

    def note_tokens(event: RequestEvent) -> None:
        token = client._tokens.current()
        if token is not None:
            tokens.update(t for t in (token.access_token, token.refresh_token) if t)
        gateway.config.error_rate = 1.0 if event.attempt == 1 else 0.0

    gateway.config.update(error_statuses=(503,))
    item = maxa.CodedText(
        value="item-value-7f3c", terminology_id="ContactType", coded_string="item-code-9d2e"
    )
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy(attempts=2, backoff=False),
        on_request=note_tokens,
    ) as client:
        maxa_async.otel.instrument(
            client, tracer_provider=tracing, meter_provider=MeterProvider(metric_readers=[reader])
        )
        assert await client.validate_cts(item) is False
        gateway.revoke_all_tokens()
        await client.terminology(*RELIGION)
        with pytest.raises(maxa.MaxaError):
            await client.validate_cts(
                maxa.CodedText(value="item-value-7f3c", terminology_id="NoSuch", coded_string="1")
            )
    assert len(tokens) >= 2  # a token before and after the revocation
    strings: list[str] = []
    for span in spans.get_finished_spans():
        strings.append(span.name)
        strings.append(span.status.description or "")
        strings.extend(repr(v) for v in (span.attributes or {}).values())
        for event in span.events:
            strings.extend(repr(v) for v in (event.attributes or {}).values())
    for points in _metrics(reader).values():
        for point in points:
            strings.extend(repr(v) for v in point.attributes.values())
    assert len(spans.get_finished_spans()) == 3 and len(strings) > 40
    creds = gateway.credentials
    secrets = {
        creds.password,
        creds.client_secret,
        creds.username,
        creds.pid,
        "item-value-7f3c",
        "item-code-9d2e",
        *tokens,
    }
    leaks = [(secret, s) for secret in secrets for s in strings if secret in s]
    assert leaks == []


async def test_a_call_that_queued_says_how_long(gateway: FakeGateway) -> None:
    tracing, spans = _tracing()
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, max_concurrency=1, coalesce=False
    ) as client:
        await client.terminology(*RELIGION)  # a token, before the tracing
        maxa_async.otel.instrument(client, tracer_provider=tracing, meter_provider=MeterProvider())
        await asyncio.gather(client.terminology(*RELIGION), client.terminology(*RELIGION))
    queued = sorted(
        float(s.attributes.get("maxa.queued_seconds", 0.0))
        for s in spans.get_finished_spans()
        if s.attributes is not None
    )
    assert len(queued) == 2 and queued[0] == 0.0 and queued[1] > 0.0


async def test_no_op_providers_install_no_hook(gateway: FakeGateway) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        maxa_async.otel.instrument(
            client,
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=metrics.NoOpMeterProvider(),
        )
        assert client._hooks.on_request is None and client._hooks.on_response is None
        reader = InMemoryMetricReader()
        metered = client.with_options()
        maxa_async.otel.instrument(
            metered,
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=MeterProvider(metric_readers=[reader]),
        )
        # Metrics only: nothing before each send, the duration when a call ends.
        assert metered._hooks.on_request is None and metered._hooks.on_response is not None
        assert await metered.terminology(*RELIGION) == "اسلام"
    durations = [p.count for p in _metrics(reader)["maxa.client.call.duration"]]
    assert durations == [1]


async def test_no_span_work_while_the_global_provider_is_the_placeholder(
    gateway: FakeGateway,
) -> None:
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("a global tracer provider was set in this process")
    seen: list[ResponseEvent] = []
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy(attempts=2, backoff=False),
        on_response=seen.append,
    ) as client:
        # The global tracer: it traces once an SDK is installed, so the hooks stay.
        instrumentation = maxa_async.otel.instrument(
            client, meter_provider=metrics.NoOpMeterProvider()
        )
        assert client._hooks.on_request is not None
        gateway.config.update(error_rate=1.0, error_statuses=(503,))
        with pytest.raises(maxa.ServiceError):
            await client.terminology(*RELIGION)
    assert instrumentation._placeholder  # no span was started
    assert instrumentation._sent == {}  # the send times were dropped with the call
    assert len(seen) == 1 and len(seen[0].retried) == 1  # the user's hook still ran
