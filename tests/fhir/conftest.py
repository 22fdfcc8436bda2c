"""Fixtures: a small fake gateway, a client of it, and a snapshot pulled from it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fhir_checks import NEW_DRUG, SNAPSHOT_TERMINOLOGIES, gateway_data

import maxa_async as maxa
from maxa_async.snapshot import SnapshotStore
from maxa_async.testing import FakeGateway, GatewayConfig, Term


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig(), data=gateway_data()) as fake:
        yield fake


@pytest.fixture
async def client(gateway: FakeGateway) -> AsyncIterator[maxa.MaxaClient]:
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy.for_tests(attempts=2),
        max_concurrency=8,
    ) as made:
        yield made


@pytest.fixture
async def store(
    gateway: FakeGateway, client: maxa.MaxaClient, tmp_path: Path
) -> AsyncIterator[SnapshotStore]:
    """A snapshot of SNAPSHOT_TERMINOLOGIES; then the gateway gains NEW_DRUG, and its
    requests are counted from zero."""
    async with SnapshotStore.open(tmp_path / "snapshot.db") as opened:
        for terminology in SNAPSHOT_TERMINOLOGIES:
            await opened.pull(client, terminology)
        gateway.add_terms("eRx", [Term(*NEW_DRUG)])
        gateway.stats.reset()
        yield opened
