"""OpenTelemetry for a client: a span per call and the client's metrics.

Needs the ``otel`` extra (``pip install 'maxa-async[otel]'``, which brings
``opentelemetry-api``); nothing here is imported unless you import this module, so a
client without it pays nothing. Call :func:`instrument` once, after making the client::

    client = maxa.MaxaClient.from_env()
    maxa_async.otel.instrument(client)  # the global tracer and meter providers

Spans: one per call, named ``MAXA <Operation>``, of kind CLIENT, with an event per
attempt. Attributes follow the HTTP client conventions (``http.request.method``,
``server.address``, ``server.port``, ``url.full``, ``http.response.status_code``,
``error.type``) plus ``maxa.operation``, ``maxa.terminology_id``, ``maxa.request_id`` (the
gateway's ``requestId``), ``maxa.attempts``, ``maxa.queued_seconds`` (waiting for a slot,
the pace or a cooldown), ``maxa.cached`` and ``maxa.coalesced``. Never a credential, a
token or an item's value.

Metrics: ``maxa.client.call.duration`` (histogram, seconds, by operation and status);
counters read from ``client.stats``: ``maxa.client.retries`` (by cause),
``maxa.client.rate_limited`` (429 answers), ``maxa.client.token_grants`` (by kind);
gauges read from the limiter: ``maxa.client.concurrency.limit``,
``maxa.client.in_flight``, ``maxa.client.waiting``, ``maxa.client.pace`` (requests/s,
0 when unpaced).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._version import __version__
from .events import RequestEvent, ResponseEvent
from .operations import BASE_PATH

if TYPE_CHECKING:
    from .client import MaxaClient

__all__ = ["Instrumentation", "instrument"]

_GET_OPERATIONS = frozenset({"Terminology"})  # the guide's one GET


@attrs.define
class Instrumentation:
    """What :func:`instrument` installed (kept alive by the client's hooks)."""

    client: MaxaClient
    tracer: trace.Tracer
    duration: metrics.Histogram
    _attempts: dict[int, list[int]] = attrs.field(factory=dict)
    _next_request: Callable[[RequestEvent], None] | None = None
    _next_response: Callable[[ResponseEvent], None] | None = None
    _static: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # per operation
    _tracing: bool = True  # False for a no-op tracer: no span to make

    def __attrs_post_init__(self) -> None:
        self._tracing = not isinstance(self.tracer, trace.NoOpTracer)

    def _attributes_of(self, operation: str) -> dict[str, Any]:
        static = self._static.get(operation)
        if static is None:
            url = self.client._base_url
            static = self._static[operation] = {
                "http.request.method": "GET" if operation in _GET_OPERATIONS else "POST",
                "server.address": url.host or "",
                "server.port": url.port or 443,
                "url.full": str(url.with_path(BASE_PATH + operation)),
                "maxa.operation": operation,
            }
        return static

    def on_request(self, event: RequestEvent) -> None:
        if self._tracing:
            self._attempts.setdefault(event.call, []).append(time.time_ns())
        if self._next_request is not None:
            self._next_request(event)

    def on_response(self, event: ResponseEvent) -> None:
        self.duration.record(
            event.elapsed,
            {"maxa.operation": event.operation, "http.response.status_code": event.status or 0},
        )
        if self._tracing:
            self._span(event)
        if self._next_response is not None:
            self._next_response(event)

    def _span(self, event: ResponseEvent) -> None:
        end = time.time_ns()
        attempts = self._attempts.pop(event.call, [])
        attributes: dict[str, Any] = {
            **self._attributes_of(event.operation),
            "maxa.attempts": event.attempts,
            "maxa.cached": event.cached,
            "maxa.coalesced": event.coalesced,
            "maxa.queued_seconds": event.queued,
        }
        if event.terminology_id is not None:
            attributes["maxa.terminology_id"] = event.terminology_id
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.request_id:
            attributes["maxa.request_id"] = event.request_id
        if event.error is not None:
            attributes["error.type"] = type(event.error).__name__
        span = self.tracer.start_span(
            f"MAXA {event.operation}",
            kind=SpanKind.CLIENT,
            start_time=end - int(event.elapsed * 1e9),
            attributes=attributes,
        )
        for number, at in enumerate(attempts, start=1):
            span.add_event("attempt", {"maxa.attempt": number}, timestamp=at)
        if event.error is not None:
            span.set_status(Status(StatusCode.ERROR, type(event.error).__name__))
        span.end(end_time=end)


def instrument(
    client: MaxaClient,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> Instrumentation:
    """Trace every call of ``client`` (and of the views it makes from now on) and publish
    its metrics; hooks already set on the client still run, after these."""
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("maxa_async", __version__)
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("maxa_async", __version__)
    hooks = client._hooks
    instrumentation = Instrumentation(
        client=client,
        tracer=tracer,
        duration=meter.create_histogram(
            "maxa.client.call.duration", unit="s", description="MAXA calls, end to end"
        ),
        next_request=hooks.on_request,
        next_response=hooks.on_response,
    )
    client._hooks = attrs.evolve(
        hooks, on_request=instrumentation.on_request, on_response=instrumentation.on_response
    )
    stats = client.stats

    def retries(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"maxa.cause": cause}) for cause, n in stats.retries.items()]

    def rate_limited(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(stats.rate_limited)]

    def grants(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(stats.password_grants, {"maxa.grant": "password"}),
            Observation(stats.refresh_grants, {"maxa.grant": "refresh_token"}),
            Observation(stats.failed_grants, {"maxa.grant": "failed"}),
        ]

    def limiter(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            value = client.limiter.state().get(key)
            return [Observation(value or 0)]

        return observe

    meter.create_observable_counter("maxa.client.retries", [retries], description="retries")
    meter.create_observable_counter(
        "maxa.client.rate_limited", [rate_limited], description="429 answers"
    )
    meter.create_observable_counter("maxa.client.token_grants", [grants], description="grants")
    meter.create_observable_gauge("maxa.client.concurrency.limit", [limiter("limit")])
    meter.create_observable_gauge("maxa.client.in_flight", [limiter("in_flight")])
    meter.create_observable_gauge("maxa.client.waiting", [limiter("waiting")])
    meter.create_observable_gauge("maxa.client.pace", [limiter("pace")], unit="{request}/s")
    return instrumentation
