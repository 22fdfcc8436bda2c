"""Opt-in pytest plugin: a fake DITAS/MAXA gateway per test.

Enable it in your top-level ``conftest.py``::

    pytest_plugins = ["maxa_async.testing.pytest_plugin"]

Fixtures (async, function-scoped; they work with pytest-asyncio in auto or strict mode):

``maxa_gateway``
    A started :class:`~maxa_async.testing.FakeGateway` with ``maxa_gateway_config``.
``maxa_gateway_config``
    The :class:`~maxa_async.testing.GatewayConfig` of ``maxa_gateway``: defaults;
    override this fixture to change them for a module or a directory.
``maxa_gateway_factory``
    An async callable ``factory(config=None, *, data=None, **knobs) -> FakeGateway``
    that starts further gateways (e.g. ``await factory(rps_limit=10)``); all are
    closed after the test.

Example::

    async def test_lookup(maxa_gateway):
        client = MaxaClient(maxa_gateway.credentials, base_url=maxa_gateway.base_url)
        ...
        assert maxa_gateway.stats.password_grants == 1
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest
import pytest_asyncio

from ._config import GatewayConfig
from ._data import GatewayData
from ._server import FakeGateway

__all__ = ["GatewayFactory", "maxa_gateway", "maxa_gateway_config", "maxa_gateway_factory"]


class GatewayFactory(Protocol):
    """Starts a fake gateway: ``await factory(config=None, *, data=None, **knobs)``."""

    async def __call__(
        self, config: GatewayConfig | None = None, *, data: GatewayData | None = None, **knobs: Any
    ) -> FakeGateway: ...


@pytest.fixture
def maxa_gateway_config() -> GatewayConfig:
    """Default knobs of ``maxa_gateway``; override to change them."""
    return GatewayConfig()


@pytest_asyncio.fixture
async def maxa_gateway(maxa_gateway_config: GatewayConfig) -> AsyncIterator[FakeGateway]:
    """A started fake gateway, closed after the test."""
    async with FakeGateway(maxa_gateway_config) as gateway:
        yield gateway


@pytest_asyncio.fixture
async def maxa_gateway_factory() -> AsyncIterator[GatewayFactory]:
    """Start fake gateways with custom knobs; every one is closed after the test."""
    started: list[FakeGateway] = []

    async def factory(
        config: GatewayConfig | None = None, *, data: GatewayData | None = None, **knobs: Any
    ) -> FakeGateway:
        config = config if config is not None else GatewayConfig()
        config.update(**knobs)
        gateway = FakeGateway(config, data=data)
        await gateway.start()
        started.append(gateway)
        return gateway

    try:
        yield factory
    finally:
        for gateway in reversed(started):
            await gateway.close()
