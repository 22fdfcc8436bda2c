"""Issue 5 mechanisms, with exact counts: shared cooldown, coalescing, cache, retry
budget, fail-fast, rate cap, AIMD."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import maxa_async as maxa
from maxa_async.limits import INITIAL_CONCURRENCY, Limiter
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


async def _until(predicate, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_a_long_retry_after_pauses_every_caller(make_client, gateway: FakeGateway):
    # A Retry-After over a second says nothing passes until then (here a quota of 100
    # per 3 s): every caller waits it out. A short one only slows the pace (see
    # tests/client/test_rate_control.py).
    async with make_client(max_concurrency=300, coalesce=False) as client:
        await client.terminology(*RELIGION)  # token outside the quota
        gateway.config.update(quota=100, quota_period=3.0)
        tasks = [
            asyncio.create_task(client.terminology_value_by_version("eRx", "60002", version="1000"))
            for _ in range(300)
        ]
        await _until(lambda: client.stats.cooldowns >= 1)
        # every request sent has its answer (not only those the gateway holds: others may
        # still be opening their connections)
        await _until(lambda: sum(client.stats.sent.values()) == sum(client.stats.answered.values()))
        sent_before = gateway.stats.requests
        pause = client.limiter.cooldown_remaining
        assert pause > 0.2
        await asyncio.sleep(pause * 0.8)
        # nobody sent anything while the client-wide cooldown lasted
        assert gateway.stats.requests == sent_before
        results = await asyncio.gather(*tasks)
    assert len(results) == 300
    assert client.stats.failures == 0
    assert client.stats.rate_limited == gateway.stats.rate_limited


async def test_retry_after_longer_than_deadline_fails_now(make_client, gateway: FakeGateway):
    policy = maxa.RetryPolicy(attempts=5, deadline=0.5, backoff=False)
    async with make_client(retry=policy, coalesce=False) as client:
        await client.terminology(*RELIGION)
        # one request per 10 s: the 429 says "Retry-After: 10", far past the 0.5 s deadline
        gateway.config.update(quota=1, quota_period=10.0)
        await client.terminology(*RELIGION)  # the quota's one request
        sent = gateway.stats.requests
        started = time.monotonic()
        with pytest.raises(maxa.RateLimitedError) as info:
            await client.terminology(*RELIGION)
        assert time.monotonic() - started < 5.0  # at once, not after the 10 s
        assert gateway.stats.requests == sent + 1  # no retry
    assert info.value.retry_after is not None and info.value.retry_after >= 5.0


async def test_identical_concurrent_lookups_share_one_request(make_client, gateway):
    async with make_client() as client:
        results = await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(100)))
    assert results == ["اسلام"] * 100
    assert gateway.stats.requests_by_operation["Terminology"] == 1
    assert client.stats.coalesced == 99


async def test_coalesced_errors_reach_every_caller(make_client, gateway):
    async with make_client() as client:
        results = await asyncio.gather(
            *(client.terminology("thritaEHR.Religion", "424242") for _ in range(20)),
            return_exceptions=True,
        )
    assert all(isinstance(r, maxa.NotFoundError) for r in results)
    assert gateway.stats.requests_by_operation["Terminology"] == 1


async def test_cache_answers_repeats_and_expires(make_client, gateway):
    now = [0.0]
    cache = maxa.ResponseCache(maxsize=2, ttl=10.0, clock=lambda: now[0])
    async with make_client(cache=cache) as client:
        for _ in range(5):
            assert await client.terminology(*RELIGION) == "اسلام"
        assert gateway.stats.requests_by_operation["Terminology"] == 1
        assert client.stats.cache_hits == 4
        now[0] = 11.0  # past the ttl
        await client.terminology(*RELIGION)
        assert gateway.stats.requests_by_operation["Terminology"] == 2
        # LRU: two other keys push the first out
        for code in ("60002", "60281"):
            await client.terminology_value_by_version("eRx", code, version="10000")
        await client.terminology(*RELIGION)
        assert gateway.stats.requests_by_operation["Terminology"] == 3
        # lists are not cached by default
        await client.terminology_versions("eRx")
        await client.terminology_versions("eRx")
        assert gateway.stats.requests_by_operation["TerminologyVersions"] == 2
    assert len(cache) == 2


async def test_retry_budget_stops_hammering_a_sick_gateway(make_client, gateway):
    budget = maxa.RetryBudget(capacity=10, retry_cost=5)
    async with make_client(retry_budget=budget, coalesce=False) as client:
        await client.terminology(*RELIGION)
        gateway.reset_stats()
        gateway.config.error_rate = 1.0
        for _ in range(3):
            with pytest.raises(maxa.ServiceError):
                await client.terminology(*RELIGION)
    # first call: 1 send + 2 retries (10 tokens / 5 each); then the budget is dry
    assert gateway.stats.requests == 3 + 1 + 1
    assert client.stats.retry_budget_exhausted == 3


async def test_fail_fast_refuses_instead_of_queueing(make_client, gateway):
    gateway.config.latency = 0.2
    async with make_client(max_concurrency=1, fail_fast=True, coalesce=False) as client:
        results = await asyncio.gather(
            client.terminology(*RELIGION), client.terminology(*RELIGION), return_exceptions=True
        )
    assert sum(isinstance(r, maxa.RateLimitedError) for r in results) == 1
    assert sum(isinstance(r, maxa.ClientLimitError) for r in results) == 1  # not the gateway's
    assert sum(r == "اسلام" for r in results) == 1
    assert client.limiter.in_flight == 0


async def test_rate_cap_spaces_requests(make_client, gateway):
    async with make_client(rate_limit=20.0, coalesce=False) as client:
        await client.terminology(*RELIGION)
        started = time.monotonic()
        await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(10)))
        elapsed = time.monotonic() - started
    # GCRA with no burst: 10 sends at 20/s cannot take less than ~9 intervals
    assert elapsed >= 9 * 0.05 * 0.95


def _past_slow_start(limiter: Limiter) -> Limiter:
    """Grow a fresh limiter from its initial concurrency to its maximum, as successes do."""
    while limiter.limit < limiter.max_concurrency:
        limiter.bound._in_flight = 1
        limiter.release(started=0.0, latency=0.010, rate_limited=False)
    return limiter


def test_a_fresh_bound_starts_small_and_doubles_each_round_until_a_refusal():
    limiter = Limiter(64, clock=lambda: 1.0)
    assert limiter.limit == INITIAL_CONCURRENCY
    limiter.bound._in_flight = INITIAL_CONCURRENCY
    for _ in range(INITIAL_CONCURRENCY):  # one round of successes
        limiter.release(started=0.0, latency=0.010, rate_limited=False)
    assert limiter.limit == 2 * INITIAL_CONCURRENCY
    limiter.bound._in_flight = 1
    limiter.release(started=0.5, latency=None, rate_limited=True)
    assert limiter.limit == int(2 * INITIAL_CONCURRENCY * 0.9)
    grown = limiter.limit
    limiter.bound._in_flight = 1
    limiter.release(started=2.0, latency=0.010, rate_limited=False)
    assert limiter.limit == grown  # additive from now on: +1 per round, not per success
    assert Limiter(64, adaptive=False).limit == 64  # a fixed bound starts whole
    assert Limiter(4).limit == 4


def test_aimd_shrinks_once_per_congestion_event_and_grows_back():
    # A refusal shrinks the bound by a tenth (the pacer, not the bound, finds the rate).
    now = [100.0]
    limiter = _past_slow_start(Limiter(64, clock=lambda: now[0]))
    limiter.bound._in_flight = 10
    for _ in range(10):  # ten 429s for requests sent before the decrease: one event
        limiter.release(started=99.0, latency=None, rate_limited=True)
    assert limiter.limit == 57  # 64 * 0.9
    now[0] = 101.0
    limiter.bound._in_flight = 1
    limiter.release(started=100.5, latency=None, rate_limited=True)
    assert limiter.limit == 51  # 57.6 * 0.9
    # additive increase: about +1 per round of `limit` successes
    limiter.bound._in_flight = 52
    for _ in range(52):
        limiter.release(started=102.0, latency=0.01, rate_limited=False)
    assert limiter.limit == 52
    limiter.bound._in_flight = 3000
    for _ in range(3000):
        limiter.release(started=102.0, latency=0.01, rate_limited=False)
    assert limiter.limit == 64  # capped at the maximum
    assert limiter.in_flight == 0


def test_aimd_never_below_one_and_off_when_not_adaptive():
    now = [0.0]
    limiter = Limiter(4, clock=lambda: now[0])
    for step in range(20):
        now[0] = float(step + 1)
        limiter.bound._in_flight = 1
        limiter.release(started=now[0], latency=None, rate_limited=True)
    assert limiter.limit == 1
    fixed = Limiter(4, adaptive=False)
    fixed.bound._in_flight = 1
    fixed.release(started=0.0, latency=None, rate_limited=True)
    assert fixed.limit == 4


def test_latency_rise_shrinks_the_limit_when_enabled():
    now = [0.0]
    limiter = _past_slow_start(Limiter(64, latency_tolerance=2.0, clock=lambda: now[0]))
    for step in range(50):
        now[0] = float(step)
        limiter.bound._in_flight = 1
        limiter.release(started=now[0], latency=0.010, rate_limited=False)
    assert limiter.limit == 64
    for step in range(50, 100):
        now[0] = float(step)
        limiter.bound._in_flight = 1
        limiter.release(started=now[0], latency=0.100, rate_limited=False)
    assert limiter.limit < 64


async def test_limiter_serves_waiters_in_fifo_order():
    limiter = Limiter(1, adaptive=False)
    await limiter.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        limiter.release(started=0.0, latency=0.0, rate_limited=False)

    tasks = [asyncio.create_task(waiter(i)) for i in range(20)]
    await asyncio.sleep(0)
    limiter.release(started=0.0, latency=0.0, rate_limited=False)
    await asyncio.gather(*tasks)
    assert order == list(range(20))
    assert limiter.in_flight == 0 and limiter.waiting == 0


async def test_stats_and_debug_logs_carry_request_ids(make_client, gateway, caplog):
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    async with make_client() as client:
        await client.terminology(*RELIGION)
        stats = client.stats.as_dict()
    assert stats["requests"] == {"Terminology": 1}
    assert stats["password_grants"] == 1
    assert set(stats["latency"]) == {"p50", "p90", "p99", "max"}
    lines = [r.getMessage() for r in caplog.records if "Terminology ->" in r.getMessage()]
    assert lines and "requestId=" in lines[0] and "None" not in lines[0]
    text = caplog.text + repr(stats)
    creds = gateway.credentials
    assert creds.password not in text and creds.client_secret not in text


# The pacer (the rate the gateway admits, whatever its limiter's shape) is tested in
# tests/client/test_rate_control.py.


def _awaiting(task: asyncio.Task[object]) -> list[str]:
    """The names of the coroutines a task awaits through, outermost first."""
    names = []
    awaited: object = task.get_coro()
    while hasattr(awaited, "cr_code"):
        names.append(awaited.cr_code.co_name)  # type: ignore[attr-defined]
        awaited = awaited.cr_await  # type: ignore[attr-defined]
    return names


async def test_calls_queued_for_their_first_slot_wait_above_the_inner_layers(
    make_client, gateway: FakeGateway
):
    # Thousands of gathered calls may queue at once: each waits for its first slot in
    # _execute, so that the retry, authentication and attempt layers (three more
    # coroutines for the garbage collector to walk, per queued call) exist only once
    # the call has its slot.
    async with make_client(max_concurrency=2, adaptive=False, coalesce=False) as client:
        await client.terminology(*RELIGION)
        gateway.config.update(latency=0.2)
        tasks = [asyncio.create_task(client.terminology(*RELIGION)) for _ in range(12)]
        await _until(lambda: client.limiter.waiting == 10)
        frames = [_awaiting(task) for task in tasks]
        queued = [names for names in frames if "_attempt" not in names]
        assert len(queued) == 10
        for names in queued:
            assert "_execute" in names
            assert not {"_attempts", "_authorized"} & set(names)
        assert await asyncio.gather(*tasks) == ["اسلام"] * 12
    assert client.limiter.in_flight == 0


async def test_a_call_that_fails_before_its_first_attempt_gives_the_slot_back(
    make_client, monkeypatch: pytest.MonkeyPatch
):
    async with make_client(max_concurrency=1, adaptive=False) as client:
        await client.terminology(*RELIGION)

        async def broken(*args: object) -> None:
            raise RuntimeError("the layers below failed before sending")

        with monkeypatch.context() as patch:
            patch.setattr(client, "_attempts", broken)
            with pytest.raises(RuntimeError):
                await client.terminology(*RELIGION)
        assert client.limiter.in_flight == 0
        # the one slot is free again: the next call goes at once
        assert await asyncio.wait_for(client.terminology(*RELIGION), 5) == "اسلام"
