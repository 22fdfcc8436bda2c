"""A Prometheus collector over ``client.stats``: scrape a client with ``prometheus_client``.

Needs ``prometheus_client`` (the ``prometheus`` extra); nothing imports it unless you
import this module::

    from prometheus_client import REGISTRY, start_http_server
    from maxa_async.prometheus import StatsCollector

    REGISTRY.register(StatsCollector(client))  # read at each scrape: nothing to update
    start_http_server(9464)

Counters: ``maxa_calls_total``, ``maxa_call_failures_total``, ``maxa_requests_total``
(by operation), ``maxa_responses_total`` (by status; 0 is no answer),
``maxa_retries_total`` (by cause), ``maxa_rate_limited_total``,
``maxa_token_grants_total`` (by kind), ``maxa_coalesced_total``, ``maxa_cache_hits_total``.
Gauges: ``maxa_concurrency_limit``, ``maxa_in_flight``, ``maxa_waiting``, ``maxa_pace``
(requests/s the client paces itself at; 0 when unpaced).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .client import MaxaClient

__all__ = ["StatsCollector"]


class StatsCollector(Collector):
    """Reads a client's stats and limiter at each scrape."""

    def __init__(self, client: MaxaClient, *, prefix: str = "maxa") -> None:
        self._client = client
        self._prefix = prefix

    def _name(self, name: str) -> str:
        return f"{self._prefix}_{name}"

    def collect(self) -> Iterator[Metric]:
        stats = self._client.stats
        plain = (
            ("calls", "calls made (cached and coalesced ones included)", stats.calls),
            ("call_failures", "calls that ended in an error", stats.failures),
            ("rate_limited", "429 answers", stats.rate_limited),
            ("coalesced", "calls answered by an identical call in flight", stats.coalesced),
            ("cache_hits", "calls answered from the cache", stats.cache_hits),
        )
        for name, text, value in plain:
            yield CounterMetricFamily(self._name(name), text, value=value)
        for name, text, label, counts in (
            ("requests", "requests sent", "operation", stats.requests),
            ("responses", "answers by HTTP status (0: none)", "status", stats.responses),
            ("retries", "retries by cause", "cause", stats.retries),
        ):
            family = CounterMetricFamily(self._name(name), text, labels=[label])
            for key, value in sorted(counts.items(), key=lambda kv: str(kv[0])):
                family.add_metric([str(key)], value)
            yield family
        grants = CounterMetricFamily(self._name("token_grants"), "token grants", labels=["kind"])
        grants.add_metric(["password"], stats.password_grants)
        grants.add_metric(["refresh_token"], stats.refresh_grants)
        grants.add_metric(["failed"], stats.failed_grants)
        yield grants
        state = self._client.limiter.state()
        for name, key, text in (
            ("concurrency_limit", "limit", "the in-flight bound now"),
            ("in_flight", "in_flight", "requests in flight"),
            ("waiting", "waiting", "calls waiting for a slot"),
            ("pace", "pace", "requests/second the client paces at (0: unpaced)"),
        ):
            yield GaugeMetricFamily(self._name(name), text, value=float(state.get(key) or 0))
