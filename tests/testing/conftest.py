"""Fixtures for the fake gateway's own tests: a gateway, a plain aiohttp session, a Wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from fakewire import Wire

from maxa_async.testing import FakeGateway

# The plugin's fixtures, imported rather than declared with ``pytest_plugins`` (which
# only a top-level conftest may do); test_fake_plugin.py checks that way in a subprocess.
from maxa_async.testing.pytest_plugin import (  # noqa: F401
    maxa_gateway,
    maxa_gateway_config,
    maxa_gateway_factory,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def gw(maxa_gateway: FakeGateway) -> FakeGateway:  # noqa: F811
    return maxa_gateway


@pytest.fixture
def wire(session: aiohttp.ClientSession, gw: FakeGateway) -> Wire:
    return Wire(session, gw)


@pytest.fixture
def wire_for(session: aiohttp.ClientSession) -> Callable[[FakeGateway], Wire]:
    return lambda gateway: Wire(session, gateway)
