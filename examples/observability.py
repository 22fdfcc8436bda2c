"""Traces and metrics of a client: OpenTelemetry spans (here printed to the console) and a
Prometheus scrape of its counters. Credentials from MAXA_*."""

import asyncio

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from prometheus_client import CollectorRegistry, generate_latest

import maxa_async as maxa
import maxa_async.otel
from maxa_async.prometheus import StatsCollector


async def main() -> None:
    tracing = TracerProvider()  # yours: exporting to your collector
    tracing.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    registry = CollectorRegistry()  # or prometheus_client.REGISTRY
    async with maxa.MaxaClient.from_env() as client:
        maxa_async.otel.instrument(client, tracer_provider=tracing)
        registry.register(StatsCollector(client))
        print(await client.terminology("thritaEHR.Religion", "1"))
    print(generate_latest(registry).decode())


if __name__ == "__main__":
    asyncio.run(main())
