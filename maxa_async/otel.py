"""OpenTelemetry for a client: a span per call and the client's metrics.

Needs the ``otel`` extra (``pip install 'maxa-async[otel]'``, which brings
``opentelemetry-api``); nothing here is imported unless you import this module, so a
client without it pays nothing. Call :func:`instrument` once, after making the client::

    client = maxa.MaxaClient.from_env()
    maxa_async.otel.instrument(client)  # the global tracer and meter providers

Spans: one per call, named ``MAXA <Operation>``, of kind CLIENT, made when the call ends
(with its start time), under the span current where the call was made. Attributes follow
the HTTP client conventions (``http.request.method``, ``server.address``,
``server.port``, ``url.full``, ``http.response.status_code``, ``error.type``, and
``http.request.resend_count`` when it sent more than once) plus ``maxa.operation``,
``maxa.terminology_id``, ``maxa.request_id`` (the gateway's ``requestId``),
``maxa.attempts``, and when they apply: ``maxa.retry_causes`` (what made it send again,
in order: see :func:`retry_cause`), ``maxa.queued_seconds`` (waiting for a slot, the
pace or a cooldown), ``maxa.cached`` and ``maxa.coalesced`` (set only when true). A call
that sent more than once has an event per send (``maxa.attempt``, and from the second on
``maxa.retry_cause``). Never a credential, a token or an item's value.

Metrics: ``maxa.client.call.duration`` (histogram, seconds, by operation and status);
``maxa.client.retries`` (counter, by ``maxa.cause`` as in the spans, counted as each call
ends); counters read from ``client.stats``: ``maxa.client.rate_limited`` (429 answers),
``maxa.client.token_grants`` (by kind); gauges read from the limiter:
``maxa.client.concurrency.limit``, ``maxa.client.in_flight``, ``maxa.client.waiting``,
``maxa.client.pace`` (requests/s, 0 when unpaced).

The work per call is only what the providers will keep: nothing with no-op providers,
no span while the global tracer provider is still OpenTelemetry's placeholder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import attrs
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._version import __version__
from .errors import AuthenticationError, MaxaError, RateLimitedError, ServiceError, TransportError
from .events import RequestEvent, ResponseEvent
from .operations import BASE_PATH

if TYPE_CHECKING:
    from .client import MaxaClient

__all__ = ["Instrumentation", "instrument", "retry_cause"]

_GET_OPERATIONS = frozenset({"Terminology"})  # the guide's one GET

#: At most this many calls' send times are kept: a cancelled call never reports, so
#: past it the oldest are forgotten (a call forgotten so gets no attempt events).
_MAX_TRACKED: Final = 4096

#: What the transport says when an attempt ran out of time (TransportError has no flag).
_TIMED_OUT: Final = "the gateway did not answer in time"


def retry_cause(error: MaxaError) -> str:
    """What made a call send again, as a short name that holds no value from the call:
    ``rate_limited`` (429), ``token_refresh`` (a 401 replayed with a fresh token),
    ``timeout``, ``connection``, ``server_error:<status>`` (499, 5xx, 520); any other
    error a retry policy retries: its class name, and ``:<status>`` if it had one."""
    status = error.status
    if isinstance(error, RateLimitedError) or status == 429:
        return "rate_limited"
    if isinstance(error, AuthenticationError) and status == 401:
        return "token_refresh"
    if isinstance(error, TransportError):
        return "timeout" if error.message == _TIMED_OUT else "connection"
    if status is not None and (isinstance(error, ServiceError) or status >= 500):
        return f"server_error:{status}"
    name = type(error).__name__
    return name if status is None else f"{name}:{status}"


@attrs.define
class Instrumentation:
    """What :func:`instrument` installed (kept alive by the client's hooks)."""

    client: MaxaClient
    tracer: trace.Tracer
    duration: metrics.Histogram
    retries: metrics.Counter
    _next_request: Callable[[RequestEvent], None] | None = None
    _next_response: Callable[[ResponseEvent], None] | None = None
    _tracing: bool = attrs.field(init=False)  # False for a no-op tracer: no span to make
    _metering: bool = attrs.field(init=False)  # False for a no-op meter: nothing to record
    # A tracer from the global provider while it is still the API's placeholder: spans
    # start once an SDK is installed, and are not built before.
    _placeholder: bool = attrs.field(init=False)
    # When each send of a call in flight started (ns since the epoch), by call number.
    _sent: dict[int, list[int]] = attrs.field(factory=dict)
    # Made once per operation (or status, or cause) and reused: the SDK copies what it
    # keeps, so a call builds only what differs from call to call.
    _static: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    _names: dict[str, str] = attrs.field(factory=dict)
    _by_status: dict[tuple[str, int], dict[str, Any]] = attrs.field(factory=dict)
    _by_cause: dict[str, dict[str, str]] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._tracing = not isinstance(self.tracer, trace.NoOpTracer)
        self._metering = not isinstance(self.duration, metrics.NoOpHistogram)
        self._placeholder = isinstance(self.tracer, trace.ProxyTracer)

    @property
    def active(self) -> bool:
        """Whether there is anything to record (False with no-op providers)."""
        return self._tracing or self._metering

    def on_request(self, event: RequestEvent) -> None:
        if self._tracing:
            sent = self._sent.get(event.call)
            if sent is None:
                self._sent[event.call] = [time.time_ns()]
                if len(self._sent) > _MAX_TRACKED:  # calls cancelled never report: forget
                    del self._sent[next(iter(self._sent))]  # the oldest
            else:
                sent.append(time.time_ns())
        if self._next_request is not None:
            self._next_request(event)

    def on_response(self, event: ResponseEvent) -> None:
        causes = [retry_cause(error) for error in event.retried] if event.retried else None
        if self._metering:
            operation = event.operation
            self.duration.record(event.elapsed, self._metric_attributes(operation, event.status))
            if causes:
                for cause in causes:
                    self.retries.add(1, self._cause_attributes(cause))
        if self._tracing:
            sent = self._sent.pop(event.call, None)
            if self._placeholder and isinstance(
                trace.get_tracer_provider(), trace.ProxyTracerProvider
            ):
                pass  # no SDK installed yet: the span would be a no-op
            else:
                self._placeholder = False  # the proxy now hands spans to the real provider
                self._span(event, sent, causes)
        if self._next_response is not None:
            self._next_response(event)

    def _span(self, event: ResponseEvent, sent: list[int] | None, causes: list[str] | None) -> None:
        end = time.time_ns()
        operation = event.operation
        attributes = self._static_of(operation).copy()
        attributes["maxa.attempts"] = event.attempts
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.request_id:
            attributes["maxa.request_id"] = event.request_id
        if event.terminology_id is not None:
            attributes["maxa.terminology_id"] = event.terminology_id
        # Set only when they apply, as HTTP's resend_count is: each attribute is a cost
        # the SDK pays per span, and most calls are answered at once.
        if event.queued:
            attributes["maxa.queued_seconds"] = event.queued
        if event.cached:
            attributes["maxa.cached"] = True
        if event.coalesced:
            attributes["maxa.coalesced"] = True
        if causes:
            attributes["maxa.retry_causes"] = causes
        if sent is not None and len(sent) > 1:
            attributes["http.request.resend_count"] = len(sent) - 1
        error = event.error
        if error is not None:
            attributes["error.type"] = type(error).__name__
        span = self.tracer.start_span(
            self._names[operation],
            kind=SpanKind.CLIENT,
            start_time=end - int(event.elapsed * 1e9),
            attributes=attributes,
        )
        if sent is not None and len(sent) > 1:
            # One send is the span itself; an event per send only when there were more.
            for number, at in enumerate(sent, start=1):
                send: dict[str, Any] = {"maxa.attempt": number}
                if causes is not None and 1 < number <= len(causes) + 1:
                    send["maxa.retry_cause"] = causes[number - 2]
                span.add_event("attempt", send, timestamp=at)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(end_time=end)

    def _static_of(self, operation: str) -> dict[str, Any]:
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
            self._names[operation] = f"MAXA {operation}"
        return static

    def _metric_attributes(self, operation: str, status: int | None) -> dict[str, Any]:
        key = (operation, status or 0)
        found = self._by_status.get(key)
        if found is None:
            found = self._by_status[key] = {
                "maxa.operation": operation,
                "http.response.status_code": key[1],
            }
        return found

    def _cause_attributes(self, cause: str) -> dict[str, str]:
        found = self._by_cause.get(cause)
        if found is None:
            found = self._by_cause[cause] = {"maxa.cause": cause}
        return found


def instrument(
    client: MaxaClient,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> Instrumentation:
    """Trace every call of ``client`` (and of the views it makes from now on) and publish
    its metrics; hooks already set on the client still run, after these. With no-op
    providers for both, no hook is installed: the client pays nothing."""
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("maxa_async", __version__)
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("maxa_async", __version__)
    hooks = client._hooks
    instrumentation = Instrumentation(
        client=client,
        tracer=tracer,
        duration=meter.create_histogram(
            "maxa.client.call.duration", unit="s", description="MAXA calls, end to end"
        ),
        retries=meter.create_counter(
            "maxa.client.retries", description="sends again, by cause (counted as calls end)"
        ),
        next_request=hooks.on_request,
        next_response=hooks.on_response,
    )
    if instrumentation.active:
        # Attempt times are only for spans: without a tracer, no hook before each send
        # (and the client builds no RequestEvent unless another hook wants one).
        client._hooks = attrs.evolve(
            hooks,
            on_request=instrumentation.on_request if instrumentation._tracing else hooks.on_request,
            on_response=instrumentation.on_response,
        )
    stats = client.stats

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

    meter.create_observable_counter(
        "maxa.client.rate_limited", [rate_limited], description="429 answers"
    )
    meter.create_observable_counter("maxa.client.token_grants", [grants], description="grants")
    meter.create_observable_gauge("maxa.client.concurrency.limit", [limiter("limit")])
    meter.create_observable_gauge("maxa.client.in_flight", [limiter("in_flight")])
    meter.create_observable_gauge("maxa.client.waiting", [limiter("waiting")])
    meter.create_observable_gauge("maxa.client.pace", [limiter("pace")], unit="{request}/s")
    return instrumentation
