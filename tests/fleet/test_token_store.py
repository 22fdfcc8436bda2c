"""RedisTokenStore against a real Redis: storage, compare-and-invalidate, the refresh lease,
and TokenManagers of several "processes" (one Fleet each) sharing it."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import redis.asyncio as aioredis

import maxa_async as maxa
from maxa_async.fleet import Fleet, RedisTokenStore, default_key_prefix
from maxa_async.models import Token
from maxa_async.testing import FakeGateway, GatewayConfig

CREDS = maxa.Credentials(
    client_id="client-a",
    client_secret="s3cret-client",
    username="user-a",
    password="pa55word",
    pid="pid-a",
)


def _token(name: str, lifetime: float = 60.0) -> Token:
    return Token(
        access_token=f"access-{name}",
        refresh_token=f"refresh-{name}",
        token_type="bearer",
        scope="read",
        expires_at=time.time() + lifetime,
        lifetime=lifetime,
    )


def _fleet(redis_url: str, **options: object) -> Fleet:
    return Fleet(redis_url, credentials=CREDS, **options)  # type: ignore[arg-type]


async def test_a_saved_token_is_loaded_by_another_process_and_expires_with_the_token(
    redis_url: str,
) -> None:
    one, two = _fleet(redis_url), _fleet(redis_url)
    token = _token("one", lifetime=30)
    await one.token_store.save(token)
    assert await two.token_store.load() == token
    async with aioredis.from_url(redis_url) as peek:
        ttl = await peek.pttl(one.key("token"))
    assert 28_000 < ttl <= 30_000
    await one.aclose()
    await two.aclose()


async def test_keys_are_per_account_and_never_hold_a_credential_in_their_names(
    redis_url: str,
) -> None:
    other = maxa.Credentials(
        client_id="client-b", client_secret="x", username="user-b", password="y", pid="pid-b"
    )
    mine = _fleet(redis_url)
    theirs = Fleet(redis_url, credentials=other)
    await mine.token_store.save(_token("mine"))
    await theirs.token_store.save(_token("theirs"))
    assert (await mine.token_store.load()) != (await theirs.token_store.load())
    async with aioredis.from_url(redis_url, decode_responses=True) as peek:
        keys = await peek.keys("*")
    assert sorted(keys) == sorted([mine.key("token"), theirs.key("token")])
    for key in keys:
        for clear in ("client-a", "user-a", "pid-a", "s3cret-client", "pa55word"):
            assert clear not in key
    assert mine.key_prefix == default_key_prefix(CREDS) != theirs.key_prefix
    assert "{" in mine.key_prefix  # a Redis Cluster hash tag: all keys in one slot
    assert _fleet(redis_url, key_prefix="app:acct1").key("lease") == "app:acct1:lease"
    await mine.aclose()
    await theirs.aclose()


async def test_invalidate_deletes_only_if_the_token_is_still_the_current_one(
    redis_url: str,
) -> None:
    store = _fleet(redis_url).token_store
    old, new = _token("old"), _token("new")
    await store.save(old)
    await store.save(new)  # another process refreshed
    await store.invalidate(old.access_token)  # a late 401 for the old token
    assert await store.load() == new
    await store.invalidate(new.access_token)
    assert await store.load() is None
    await store.aclose()


async def test_an_expired_token_is_not_shared(redis_url: str) -> None:
    store = _fleet(redis_url).token_store
    stale = Token("a", "r", "bearer", None, expires_at=time.time() - 1, lifetime=60)
    await store.save(stale)
    assert await store.load() is None
    await store.aclose()


async def test_a_waiter_gets_false_as_soon_as_the_holder_stores_a_new_token(
    redis_url: str,
) -> None:
    holder = _fleet(redis_url).token_store
    waiter = _fleet(redis_url, poll_interval=0.01).token_store
    await holder.save(_token("old"))
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> bool:
        async with holder.refresh_lease() as leader:
            entered.set()
            await release.wait()
            await holder.save(_token("new"))
            return leader

    holding = asyncio.create_task(hold())
    await entered.wait()
    waiting = asyncio.create_task(_lease(waiter))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # no grant while another process is granting
    release.set()
    assert await holding is True
    leader, waited = await asyncio.wait_for(waiting, 2)
    assert leader is False  # use the new token, don't grant
    assert waited < 1.0
    assert waiter.tokens_from_fleet == 1
    await holder.aclose()
    await waiter.aclose()


async def _lease(store: RedisTokenStore) -> tuple[bool, float]:
    started = time.monotonic()
    async with store.refresh_lease() as leader:
        return leader, time.monotonic() - started


async def test_a_holder_that_leaves_without_a_new_token_hands_the_lease_on(
    redis_url: str,
) -> None:
    holder = _fleet(redis_url).token_store
    waiter = _fleet(redis_url, poll_interval=0.01).token_store
    async with holder.refresh_lease() as leader:
        assert leader is True
        waiting = asyncio.create_task(_lease(waiter))
        await asyncio.sleep(0.1)
        assert not waiting.done()
    leader, _ = await asyncio.wait_for(waiting, 2)  # e.g. the holder's grant failed
    assert leader is True
    assert waiter.lease_takeovers == 1
    await holder.aclose()
    await waiter.aclose()


async def test_a_dead_holders_lease_blocks_no_longer_than_its_expiry(redis_url: str) -> None:
    store = _fleet(redis_url, lease_seconds=0.8, poll_interval=0.01).token_store
    async with aioredis.from_url(redis_url) as crashed:  # took the lease, then died
        assert await crashed.set(store.fleet.key("lease"), "dead-owner", nx=True, px=800)
    leader, waited = await asyncio.wait_for(_lease(store), 3)
    assert leader is True
    assert 0.6 < waited < 1.6
    await store.aclose()


async def test_a_live_holder_renews_its_lease_past_the_lease_time(redis_url: str) -> None:
    holder = _fleet(redis_url, lease_seconds=0.3).token_store
    rival = _fleet(redis_url, lease_seconds=0.3, poll_interval=0.01).token_store
    async with holder.refresh_lease() as leader:
        assert leader is True
        waiting = asyncio.create_task(_lease(rival))
        await asyncio.sleep(1.0)  # three lease lifetimes: renewed, so still held
        assert not waiting.done()
    leader, _ = await asyncio.wait_for(waiting, 2)
    assert leader is True
    await holder.aclose()
    await rival.aclose()


async def test_a_release_never_frees_a_lease_someone_else_took(redis_url: str) -> None:
    store = _fleet(redis_url).token_store
    lease_key = store.fleet.key("lease")
    async with aioredis.from_url(redis_url, decode_responses=True) as peek:
        async with store.refresh_lease() as leader:
            assert leader is True
            # Our lease expired (say the process stalled) and another process took it.
            await peek.set(lease_key, "someone-else", px=5000)
        assert await peek.get(lease_key) == "someone-else"
    await store.aclose()


async def test_token_managers_of_eight_processes_make_one_grant(redis_url: str) -> None:
    async with FakeGateway(GatewayConfig()) as gateway:
        fleets = [
            Fleet(redis_url, credentials=gateway.credentials, poll_interval=0.01) for _ in range(8)
        ]
        clients = [
            maxa.MaxaClient(
                gateway.credentials, base_url=gateway.base_url, token_store=f.token_store
            )
            for f in fleets
        ]
        tokens = await asyncio.gather(*(c.tokens.get() for c in clients for _ in range(5)))
        assert len({t.access_token for t in tokens}) == 1
        assert gateway.stats.password_grants == 1
        for client in clients:
            await client.aclose()


async def test_a_process_joining_when_the_token_is_due_refreshes_it_not_a_password_grant(
    redis_url: str,
) -> None:
    """A worker restarted (or added) while the fleet's token is due for refresh-ahead
    leads the refresh with the stored token's refresh token: no second password grant."""
    async with (
        FakeGateway(GatewayConfig(token_ttl=2, rotate_refresh_token=True)) as gateway,
        contextlib.AsyncExitStack() as stack,
    ):
        first, joiner = [
            await stack.enter_async_context(
                maxa.MaxaClient(
                    gateway.credentials,
                    base_url=gateway.base_url,
                    redis_url=redis_url,
                    refresh_fraction=0.5,
                )
            )
            for _ in range(2)
        ]
        token = await first.tokens.get()
        await asyncio.sleep(max(0.0, token.refresh_due_at(0.5) - time.time()) + 0.1)
        fresh = await joiner.tokens.get()
        assert fresh.access_token != token.access_token
        assert gateway.stats.password_grants == 1
        assert gateway.stats.refresh_grants == 1


@pytest.mark.parametrize("bad", ["http://localhost:6379", "localhost:6379", ""])
def test_a_url_that_is_not_redis_is_refused_at_construction(bad: str) -> None:
    with pytest.raises(maxa.InvalidInputError, match="redis_url") as caught:
        Fleet(bad, credentials=CREDS)
    assert "6379" not in str(caught.value)  # a URL may carry a password: never echoed
