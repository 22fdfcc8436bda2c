"""Fixtures for snapshot tests: a fake gateway, a client on it, a store in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import maxa_async as maxa
from maxa_async.snapshot import SnapshotStore
from maxa_async.testing import FakeGateway, GatewayConfig


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig(seed=7)) as gw:
        yield gw


@pytest.fixture
async def client(gateway: FakeGateway) -> AsyncIterator[maxa.MaxaClient]:
    async with maxa.MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=maxa.RetryPolicy.for_tests()
    ) as c:
        yield c


@pytest.fixture
def snapshot_path(tmp_path: Path) -> Path:
    return tmp_path / "maxa.db"


@pytest.fixture
async def store(snapshot_path: Path) -> AsyncIterator[SnapshotStore]:
    async with SnapshotStore.open(snapshot_path) as s:
        yield s
