"""Fixtures for the sync facade: a fake gateway on its own loop in its own thread (as a
separate server would be), and a sync client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anyio.from_thread import start_blocking_portal

import maxa_async as maxa
from maxa_async.sync import MaxaClient
from maxa_async.testing import FakeGateway, GatewayConfig


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """Knobs (``gateway.config.latency = ...``) and counters are plain attributes, safe
    to set and read from the test's thread."""
    with start_blocking_portal() as portal:
        gw = FakeGateway(GatewayConfig(seed=11))
        portal.call(gw.start)
        try:
            yield gw
        finally:
            portal.call(gw.close)


@pytest.fixture
def client(gateway: FakeGateway) -> Iterator[MaxaClient]:
    sync_client = MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=maxa.RetryPolicy.for_tests()
    )
    try:
        yield sync_client
    finally:
        sync_client.close()
