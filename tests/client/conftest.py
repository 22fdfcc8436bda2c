"""Fixtures for client tests: a fresh fake gateway per test, and a client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

import maxa_async as maxa
from maxa_async.testing import FakeGateway, GatewayConfig

ClientFactory = Callable[..., AbstractAsyncContextManager[maxa.MaxaClient]]


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig(seed=7)) as gw:
        yield gw


@pytest.fixture
def make_client(gateway: FakeGateway) -> ClientFactory:
    """``async with make_client(**options) as client`` against the test's gateway."""

    def factory(**options: Any) -> maxa.MaxaClient:
        options.setdefault("retry", maxa.RetryPolicy.for_tests())
        return maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url, **options)

    return factory
