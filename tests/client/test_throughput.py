"""Issue 5 mechanisms, with exact counts: shared cooldown, coalescing, cache, retry
budget, fail-fast, rate cap, AIMD."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import maxa_async as maxa
from maxa_async.limits import Limiter
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


async def _align_to_window_start() -> None:
    # The fake's rate limit uses wall-clock one-second windows.
    await asyncio.sleep(1.02 - time.time() % 1.0)


async def _until(predicate, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def test_retry_after_pauses_every_caller(make_client, gateway: FakeGateway):
    async with make_client(max_concurrency=300, adaptive=False, coalesce=False) as client:
        await client.terminology(*RELIGION)  # token outside the window
        gateway.config.rps_limit = 100
        await _align_to_window_start()
        tasks = [
            asyncio.create_task(client.terminology_value_by_version("eRx", "60002", version="1000"))
            for _ in range(300)
        ]
        await _until(lambda: client.stats.cooldowns >= 1)
        await _until(lambda: gateway.stats.in_flight == 0)
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
        gateway.config.rps_limit = 1
        await _align_to_window_start()
        await client.terminology(*RELIGION)  # the window's one request
        started = time.monotonic()
        with pytest.raises(maxa.RateLimitedError) as info:
            await client.terminology(*RELIGION)
        assert time.monotonic() - started < 0.45
    assert info.value.retry_after is not None and info.value.retry_after >= 0.5


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


def test_aimd_halves_once_per_congestion_event_and_grows_back():
    now = [100.0]
    limiter = Limiter(64, clock=lambda: now[0])
    limiter._in_flight = 10
    for _ in range(10):  # ten 429s for requests sent before the decrease: one event
        limiter.release(started=99.0, latency=None, rate_limited=True)
    assert limiter.limit == 32
    now[0] = 101.0
    limiter._in_flight = 1
    limiter.release(started=100.5, latency=None, rate_limited=True)
    assert limiter.limit == 16
    # additive increase: about +1 per round of `limit` successes
    limiter._in_flight = 20
    for _ in range(20):
        limiter.release(started=102.0, latency=0.01, rate_limited=False)
    assert limiter.limit == 17
    limiter._in_flight = 3000
    for _ in range(3000):
        limiter.release(started=102.0, latency=0.01, rate_limited=False)
    assert limiter.limit == 64  # capped at the maximum
    assert limiter.in_flight == 0


def test_aimd_never_below_one_and_off_when_not_adaptive():
    now = [0.0]
    limiter = Limiter(4, clock=lambda: now[0])
    for step in range(10):
        now[0] = float(step + 1)
        limiter._in_flight = 1
        limiter.release(started=now[0], latency=None, rate_limited=True)
    assert limiter.limit == 1
    fixed = Limiter(4, adaptive=False)
    fixed._in_flight = 1
    fixed.release(started=0.0, latency=None, rate_limited=True)
    assert fixed.limit == 4


def test_latency_rise_shrinks_the_limit_when_enabled():
    now = [0.0]
    limiter = Limiter(64, latency_tolerance=2.0, clock=lambda: now[0])
    for step in range(50):
        now[0] = float(step)
        limiter._in_flight = 1
        limiter.release(started=now[0], latency=0.010, rate_limited=False)
    assert limiter.limit == 64
    for step in range(50, 100):
        now[0] = float(step)
        limiter._in_flight = 1
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


def _successes(limiter: Limiter, count: int, at: float) -> None:
    limiter._in_flight = count
    for _ in range(count):
        limiter.release(started=at - 0.01, latency=0.01, rate_limited=False)


def test_the_pace_is_learned_from_a_pause_that_followed_a_pause():
    now = [1000.0]
    limiter = Limiter(64, clock=lambda: now[0])
    # A cold start: the gateway's window may have been partly spent by someone else, so
    # the first 429 teaches nothing, however many successes came before it.
    _successes(limiter, 120, now[0])
    assert limiter.cool_down(1.0) and limiter.learned_rate is None
    assert limiter.pauses == 1
    # The other 429s of the same burst extend the pause; they are not pauses of their own.
    now[0] += 0.01
    assert limiter.cool_down(1.0)
    assert limiter.pauses == 1
    # After the pause: a fresh window, 300 successes in 0.2 s, then the next 429.
    now[0] += 1.2
    _successes(limiter, 300, now[0])
    now[0] += 0.2
    assert limiter.cool_down(1.0)
    assert limiter.pauses == 2
    assert limiter.learned_rate == pytest.approx(0.95 * 300)
    assert limiter._interval == pytest.approx(1 / (0.95 * 300))
    # A later count that straddled two windows (more) does not raise it; a smaller one
    # (another client now shares the account) lowers it: the smallest of the last three.
    now[0] += 1.5
    _successes(limiter, 450, now[0])
    assert limiter.cool_down(1.0)
    assert limiter.learned_rate == pytest.approx(0.95 * 300)
    now[0] += 1.5
    _successes(limiter, 200, now[0])
    assert limiter.cool_down(1.0)
    assert limiter.learned_rate == pytest.approx(0.95 * 200)
    # Successes older than a second are not counted.
    now[0] += 1.5
    _successes(limiter, 500, now[0] - 1.2)
    _successes(limiter, 250, now[0])
    assert limiter.successes_last_second() == 250


def test_no_pace_from_long_retry_after_or_when_not_adaptive():
    now = [50.0]
    limiter = Limiter(64, clock=lambda: now[0])
    for _ in range(3):
        _successes(limiter, 300, now[0])
        assert limiter.cool_down(5.0)  # a window longer than a second: nothing to learn
        now[0] += 6.0
    assert limiter.learned_rate is None and limiter._interval == 0.0
    fixed = Limiter(64, adaptive=False, clock=lambda: now[0])
    for _ in range(3):
        _successes(fixed, 300, now[0])
        fixed.cool_down(1.0)
        now[0] += 1.5
    assert fixed.learned_rate is None


def _paced_at_95(now: list[float]) -> Limiter:
    """A limiter (clock: ``now[0]``) that learned 100 successes/s from its second pause."""
    limiter = Limiter(64, clock=lambda: now[0])
    limiter.cool_down(1.0)
    now[0] = 1.5
    _successes(limiter, 100, now[0])
    limiter.cool_down(1.0)
    return limiter


async def test_the_learned_pace_grows_after_ten_quiet_seconds():
    now = [0.0]
    limiter = _paced_at_95(now)
    assert limiter.learned_rate == pytest.approx(95.0)
    now[0] = 13.0  # the pause is over and 11.5 s passed without a 429
    await limiter.acquire()
    assert limiter.learned_rate == pytest.approx(95.0 * 1.02)
    await limiter.acquire()  # at most once per quiet period
    assert limiter.learned_rate == pytest.approx(95.0 * 1.02)
    assert limiter.in_flight == 2


async def test_a_per_second_limit_is_learned_and_paced(make_client, gateway: FakeGateway):
    # Gateway: 200 req/s in fixed one-second windows. Without a pace every window ends
    # in a pause (about 8 over this run); with it, the client stops running windows dry
    # once it has seen one burst after a pause.
    gateway.config.rps_limit = 200
    items = [
        maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
        for i in range(1600)
    ]
    async with make_client(max_concurrency=16, retry=maxa.RetryPolicy(attempts=10)) as client:
        await client.terminology(*RELIGION)
        outcomes = [o async for o in client.validate_many(items)]
        limiter = client.limiter
        assert len(outcomes) == 1600 and all(o.error is None for o in outcomes)
        assert limiter.learned_rate is not None
        assert 0.95 * 200 * 0.95 <= limiter.learned_rate <= 0.95 * 400
        assert limiter.pauses <= 4, limiter.pauses
        shown = client.stats.as_dict()["limiter"]  # the pace is in the client's stats
        assert shown["learned_rate"] == round(limiter.learned_rate, 1)
        assert shown["pauses"] == limiter.pauses and shown["in_flight"] == 0
        assert client.stats.rate_limited == gateway.stats.rate_limited
        assert client.stats.failures == 0


async def test_the_learned_pace_is_forgotten_after_a_quiet_minute():
    now = [0.0]
    limiter = _paced_at_95(now)
    assert limiter.learned_rate is not None
    assert not limiter.try_acquire()  # paced: every send takes its turn
    now[0] = 70.0  # a minute and more without a 429
    await limiter.acquire()
    assert limiter.learned_rate is None and limiter._interval == 0.0
    assert limiter.try_acquire()  # the fast path is back
    assert limiter.in_flight == 2
    # and a later pause teaches nothing until one follows it (as at the start)
    _successes(limiter, 100, now[0])
    limiter.cool_down(1.0)
    assert limiter.learned_rate is None
