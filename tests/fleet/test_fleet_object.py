"""A Fleet passed to the client as it is (``fleet=``), against a real Redis: its token store
and rate gate are used, its stats show in the client's, and the client closes it."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

import maxa_async as maxa
from maxa_async.fleet import Fleet
from maxa_async.testing import FakeGateway, GatewayConfig

RELIGION = ("thritaEHR.Religion", "1")


async def test_clients_sharing_one_fleet_object_share_its_token_and_budget(
    redis_url: str,
) -> None:
    async with FakeGateway(GatewayConfig()) as gateway:
        fleet = Fleet(redis_url, credentials=gateway.credentials, rate_limit=1000)
        clients = [
            maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url, fleet=fleet)
            for _ in range(3)
        ]
        for client in clients:
            assert client.tokens.store is fleet.token_store
            assert client.options.fleet is fleet
        answers = await asyncio.gather(*(c.terminology(*RELIGION) for c in clients))
        assert answers == ["اسلام"] * 3
        assert gateway.stats.password_grants == 1  # one token, through the fleet's store
        assert gateway.stats.requests == 3
        peek = aioredis.from_url(redis_url, decode_responses=True)
        try:
            assert await peek.exists(fleet.key("token")) == 1
            assert await peek.exists(fleet.key("gcra")) == 1  # the fleet's rate gate ran
        finally:
            await peek.aclose()
        for client in clients:
            assert client.stats.as_dict()["fleet"] == fleet.stats()
        assert fleet.stats()["degraded"] is False
        for client in clients:
            await client.aclose()
        assert fleet._connection is None  # closed by the client (it reopens if used again)


async def test_redis_url_still_makes_the_fleet(redis_url: str) -> None:
    async with (
        FakeGateway(GatewayConfig()) as gateway,
        maxa.MaxaClient(
            gateway.credentials,
            base_url=gateway.base_url,
            redis_url=redis_url,
            fleet_rate_limit=500,
            fleet_options={"key_prefix": "maxa:test-options"},
        ) as client,
    ):
        assert await client.terminology(*RELIGION) == "اسلام"
        store = client.tokens.store
        assert type(store).__name__ == "RedisTokenStore"
        fleet = store.fleet  # type: ignore[attr-defined]
        assert fleet.key_prefix == "maxa:test-options"
        assert client.stats.as_dict()["fleet"] == fleet.stats()
        peek = aioredis.from_url(redis_url, decode_responses=True)
        try:
            assert await peek.exists("maxa:test-options:token") == 1
        finally:
            await peek.aclose()


def test_fleet_options_names_every_option_of_fleet_the_client_does_not_set() -> None:
    # ClientOptions checks fleet_options against this list: it must follow Fleet's
    # signature (the client sets redis_url, credentials and rate_limit itself).
    import inspect

    from maxa_async.fleet import Fleet
    from maxa_async.options import FLEET_OPTION_NAMES

    parameters = set(inspect.signature(Fleet).parameters)
    assert parameters - {"redis_url", "credentials", "rate_limit"} == FLEET_OPTION_NAMES
