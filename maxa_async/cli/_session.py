"""Opening a client for a command: the configured gateway, or an in-process fake one; and
running a command's coroutine in its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import attrs

from ..client import MaxaClient
from ._errors import UsageProblem
from ._output import Output
from ._settings import GlobalOptions, resolve_settings

if TYPE_CHECKING:
    from ..testing import FakeGateway, GatewayConfig

__all__ = [
    "Connection",
    "client_call",
    "connect",
    "require_gateway_credentials",
    "run_async",
]

T = TypeVar("T")


@attrs.frozen
class Connection:
    client: MaxaClient
    gateway: FakeGateway | None  # set with --emulator (and for maxa demo)


@contextlib.asynccontextmanager
async def connect(
    options: GlobalOptions,
    *,
    max_concurrency: int = 16,
    emulator: GatewayConfig | None = None,
) -> AsyncIterator[Connection]:
    """A client for the configured gateway, or, with ``--emulator`` (or ``emulator``
    given), for a fake gateway started in this process with its own credentials."""
    if options.emulator or emulator is not None:
        from ..testing import FakeGateway, GatewayConfig

        async with (
            FakeGateway(emulator or GatewayConfig()) as gateway,
            MaxaClient(
                gateway.credentials, base_url=gateway.base_url, max_concurrency=max_concurrency
            ) as client,
        ):
            if options.otel:
                _print_spans(client)
            yield Connection(client, gateway)
        return
    settings = resolve_settings(options)
    credentials = settings.require_credentials()
    async with MaxaClient(
        credentials,
        base_url=settings.base_url,
        max_concurrency=max_concurrency,
        redis_url=settings.redis_url,
        proxy=settings.proxy,
        ca_bundle=settings.ca_bundle,
    ) as client:
        if options.otel:
            _print_spans(client)
        yield Connection(client, None)


def _print_spans(client: MaxaClient) -> None:
    """``--otel``: every call's span, as JSON, on stderr."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

        from .. import otel
    except ImportError:
        raise UsageProblem(
            "--otel needs OpenTelemetry: pip install 'maxa-async[otel]' opentelemetry-sdk"
        ) from None
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    otel.instrument(client, tracer_provider=tracing)


def run_async(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` in a new event loop; SIGTERM cancels it as Ctrl-C does, so ``finally``
    blocks (flushing a results file) run before the process ends."""

    async def runner() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        installed = False
        if task is not None:
            try:
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
                installed = True
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # Windows, or not the main thread
        try:
            return await main()
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)

    return asyncio.run(runner())


def require_gateway_credentials(options: GlobalOptions, *, why: str, hint: str = "") -> None:
    """Refuse a run that needs the gateway and has no credentials, before anything opens
    (``--emulator`` brings its own). ``why`` starts the message; ``hint`` ends it."""
    if options.emulator:
        return
    try:
        resolve_settings(options).require_credentials()
    except UsageProblem as exc:
        raise UsageProblem(f"{why}: {exc}{hint}") from None


def client_call(
    options: GlobalOptions,
    body: Callable[[MaxaClient, Output], Awaitable[int]],
    *,
    concurrency: int = 4,
) -> int:
    """Connect (configured gateway or --emulator), run ``body``, return its exit code."""
    output = Output(json_mode=options.json)

    async def main() -> int:
        async with connect(options, max_concurrency=concurrency) as connection:
            return await body(connection.client, output)

    return run_async(main)
