"""Rate control (issue 14): the concurrency bound, the cooldown and the pacer, each on a
fake clock; the pacer against every limiter shape of the fake gateway in a deterministic
simulation; and the client against the real fake gateway, with exact counts."""

from __future__ import annotations

import asyncio
import collections
import heapq
import math
import random
import time
from collections.abc import Callable

import attrs
import pytest

import maxa_async as maxa
from maxa_async.limits import INITIAL_CONCURRENCY, ConcurrencyBound, Cooldown
from maxa_async.pacer import Budget, Pacer, budget_from_headers
from maxa_async.testing import FakeGateway, GatewayConfig
from maxa_async.testing._limiters import (
    FixedWindow,
    LeakyBucket,
    RateLimiter,
    SlidingCounter,
    SlidingLog,
    TokenBucket,
    Verdict,
)

RELIGION = ("thritaEHR.Religion", "1")

# ------------------------------------------------------------------ the parts on their own


async def test_the_bound_serves_in_order_and_a_cancelled_waiter_leaves_no_slot() -> None:
    bound = ConcurrencyBound(1, adaptive=False)
    assert bound.try_take() and not bound.try_take()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await bound.take()
        order.append(i)
        bound.give_back()

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    cancelled = asyncio.create_task(bound.take())
    await asyncio.sleep(0)
    cancelled.cancel()
    bound.give_back()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert bound.in_flight == 0 and bound.waiting == 0


async def test_the_cooldown_only_grows_and_refuses_a_shorter_deadline_at_once() -> None:
    now = [50.0]
    cooldown = Cooldown(clock=lambda: now[0])
    assert cooldown.extend(3.0) and not cooldown.extend(1.0)
    assert cooldown.remaining == 3.0 and cooldown.started == 1 and cooldown.extended == 1
    with pytest.raises(maxa.RateLimitedError) as info:
        await cooldown.wait(deadline=51.0)
    assert info.value.retry_after == 3.0
    now[0] = 53.5
    await cooldown.wait(deadline=54.0)  # over: returns at once
    assert cooldown.extend(1.0) and cooldown.started == 2


def _answers(pacer: Pacer, start: float, seconds: float, rate: float) -> float:
    """Successes at ``rate`` per second for ``seconds``; returns the time after them."""
    now = start
    for i in range(round(seconds * rate)):
        now = start + i / rate
        pacer.sent(now)
        pacer.admitted(now, now + 0.001)
    return now + 0.001


def test_sends_are_unpaced_until_the_first_refusal() -> None:
    pacer = Pacer()
    now = _answers(pacer, 0.0, 1.0, 300)
    assert pacer.rate(now) is None and pacer.ready_at(now) == now
    assert pacer.refused(now, now + 0.001)  # the first refusal starts the pace
    assert pacer.rate(now + 0.001) == pytest.approx(300, rel=0.05)  # what the last second had
    assert pacer.estimate is None and pacer.cuts == 1


def test_the_slow_start_doubles_only_a_pace_that_was_used() -> None:
    pacer = Pacer()
    pacer.sent(0.0)
    pacer.refused(0.0, 0.001)  # nothing admitted before: starts from the floor, 20/s
    assert pacer.rate(0.001) == 20.0
    assert pacer.rate(0.2) == 20.0  # nobody sent: nothing learnt at 20/s, no doubling
    now = 0.2
    for step in range(3):  # a step of 50 ms with its sends at the pace, then the next
        pace = pacer.rate(now)
        assert pace == 20.0 * 2**step
        for _ in range(max(1, round(pace * 0.05))):
            pacer.sent(now)
        now += 0.05
    assert pacer.rate(now) == 160.0


def test_the_slow_start_ends_where_a_tenth_is_refused_and_paces_under_it() -> None:
    pacer = Pacer()
    pacer.sent(0.0)
    pacer.refused(0.0, 0.001)
    now = 0.001
    # 300 admitted a second: every answer past that is refused, at whatever the pace.
    admitted_at = 0.0
    while pacer.estimate is None:
        pace = pacer.rate(now)
        assert pace is not None and now < 5.0
        pacer.sent(now)
        if now - admitted_at >= 1 / 300:
            admitted_at = now
            pacer.admitted(now, now + 0.001)
        else:
            pacer.refused(now, now + 0.001)
        now += 1 / pace
    # the pace it ended at, less what was refused there
    assert 0.8 * 300 <= pacer.estimate <= 2 * 600
    assert pacer.rate(now) == pytest.approx(0.97 * pacer.estimate, rel=0.01)


def test_a_cut_then_a_cubic_climb_back_and_past() -> None:
    pacer = Pacer()
    now = _answers(pacer, 0.0, 1.0, 300)
    pacer.refused(now, now)  # paced from here
    pacer._ramping = False  # as if the slow start had ended at an estimate of 300
    pacer._cut(300.0, now)
    assert pacer.rate(now) == pytest.approx(0.97 * 300)
    assert pacer.rate(now + 1.5) == pytest.approx(300)  # back at W after K
    # past W only as far as twice what was delivered lately: nothing was, so W it stays
    assert pacer.rate(now + 6.5) == pytest.approx(300)
    later = _answers(pacer, now, 6.0, 300)
    assert pacer.rate(later) > 1.5 * 300  # delivered at W the while: steep beyond it


def test_stray_refusals_do_not_cut_but_a_run_of_them_does() -> None:
    pacer = Pacer()
    now = _answers(pacer, 0.0, 1.0, 300)
    pacer.refused(now, now)
    pacer._ramping = False
    pacer._cut(300.0, now)
    cuts = pacer.cuts
    now = _answers(pacer, now, 0.5, 290)
    for _ in range(3):  # three lone refusals among a hundred and fifty answers
        assert not pacer.refused(now, now)
        now = _answers(pacer, now, 0.2, 290)
    assert pacer.cuts == cuts
    now = _answers(pacer, now, 0.1, 290)
    for _ in range(3):  # refusals close together: too fast
        pacer.refused(now, now)
    assert pacer.cuts == cuts + 1
    assert not pacer.refused(now - 0.01, now)  # sent before the cut: says nothing new


def test_a_spent_window_halves_the_pace_then_measures_the_window_again() -> None:
    pacer = Pacer()
    pacer.sent(0.0)
    for i in range(300):  # a window of 300 spent at once
        pacer.admitted(0.0, 0.001 + i * 1e-5)
    now = 0.01
    pacer.refused(now, now)
    paces = []
    for _ in range(40):  # every send refused until the window ends
        now += 0.02
        pacer.sent(now)
        pacer.refused(now, now)
        paces.append(pacer.rate(now))
    assert paces[-1] is not None and paces[0] is not None
    assert paces[-1] <= paces[0] / 8  # halved again and again: few refusals spent
    now = 1.05
    pacer.sent(now)
    pacer.admitted(now, now)  # the next window admits again
    assert pacer.estimate == pytest.approx(300, rel=0.05)


def _spend(pacer: Pacer, now: float, refusals: int) -> float:
    """Every send refused, one each 20 ms; returns the time after them."""
    for _ in range(refusals):
        now += 0.02
        pacer.sent(now)
        pacer.refused(now, now)
    return now


def test_a_stray_success_in_a_spent_window_is_no_reopening_to_measure_from() -> None:
    # A sliding log of 300/s without Retry-After: one send slips through while the
    # window is still spent; the cycle from it to the real reopening held nothing.
    pacer = Pacer()
    pacer.sent(0.0)
    for i in range(300):
        pacer.admitted(0.0, 0.001 + i * 1e-5)
    now = _spend(pacer, 0.01, 12)
    pacer.sent(now)
    pacer.admitted(now, now)  # the stray: taken for a reopening, measured as one
    now = _spend(pacer, now, 20)
    now = max(now, 1.05)
    pacer.sent(now)
    pacer.admitted(now, now)  # the window admits again, under a second after the stray
    assert pacer.estimate == pytest.approx(300, rel=0.05)
    assert pacer.rate(now) == pytest.approx(0.97 * 300, rel=0.01)


def test_a_pace_cut_to_the_floor_still_climbs() -> None:
    pacer = Pacer()
    now = _answers(pacer, 0.0, 1.0, 300)
    pacer.refused(now, now)
    pacer._ramping = False
    pacer._cut(0.0, now)  # an estimate of nothing: the floor
    floor = pacer.rate(now)
    assert floor == 2.0
    later = _answers(pacer, now, 10.0, 4)  # delivering what the pace allows, and more
    rate = pacer.rate(later)
    assert rate is not None and rate > 2 * floor


def test_late_timers_catch_up_with_the_schedule_but_a_pause_buys_no_burst() -> None:
    pacer = Pacer(cap=100.0)  # one send per 10 ms
    pacer.sent(0.0)
    assert pacer.ready_at(0.0) == pytest.approx(0.01)
    pacer.sent(0.035)  # its timer fired 25 ms late: the next two are due already
    assert pacer.ready_at(0.035) == pytest.approx(0.035)
    pacer.sent(0.035)
    assert pacer.ready_at(0.035) == pytest.approx(0.035)
    pacer.sent(0.035)
    assert pacer.ready_at(0.035) == pytest.approx(0.04)  # caught up: on schedule again
    pacer.sent(0.5)  # after a pause: the schedule starts from now
    assert pacer.ready_at(0.5) == pytest.approx(0.51)


def test_a_long_retry_after_widens_the_window_measured() -> None:
    pacer = Pacer()
    pacer.sent(0.0)
    pacer.refused(0.0, 0.01, retry_after=9.2)
    assert pacer.horizon == 10.0
    pacer.refused(0.0, 0.02, retry_after=600.0)  # a quota: a cooldown, not a window
    assert pacer.horizon == 60.0


def test_an_announced_budget_is_the_pace() -> None:
    pacer = Pacer()
    pacer.sent(0.0)
    pacer.admitted(0.0, 0.01, Budget(rate=250.0, remaining=40))
    assert pacer.rate(0.02) == pytest.approx(0.99 * 250)  # before any refusal
    pacer.admitted(0.02, 0.03, Budget(rate=250.0, remaining=0, reset=0.5))
    assert pacer.ready_at(0.031) == pytest.approx(0.034)  # nothing left: one interval


def test_budget_headers_of_both_families_are_read() -> None:
    spring = {
        "X-RateLimit-Remaining": "7",
        "X-RateLimit-Replenish-Rate": "500",
        "X-RateLimit-Burst-Capacity": "1000",
    }
    assert budget_from_headers(spring) == Budget(rate=500.0, remaining=7)
    ietf = {"ratelimit-policy": '"default";q=100;w=10', "ratelimit": '"default";r=50;t=5'}
    assert budget_from_headers(ietf) == Budget(rate=10.0, remaining=50, reset=5.0)
    assert budget_from_headers({}) is None
    assert budget_from_headers({"RateLimit-Policy": "garbage"}) is None
    assert budget_from_headers({"X-RateLimit-Replenish-Rate": "nan"}) is None


def test_the_earlier_draft_and_kong_say_a_budget_when_they_say_a_window() -> None:
    kong = {
        "X-RateLimit-Limit-Second": "100",
        "X-RateLimit-Remaining-Second": "40",
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "40",
        "RateLimit-Reset": "1",
    }
    assert budget_from_headers(kong) == Budget(rate=100.0, remaining=40, reset=1.0)
    # A second's limit and an hour's: a long run must keep to the hour's.
    both = {**kong, "x-ratelimit-limit-hour": "36000", "x-ratelimit-remaining-hour": "900"}
    assert budget_from_headers(both) == Budget(rate=10.0, remaining=900, reset=1.0)
    # The draft's own way of saying the window: the quota policies after the limit.
    listed = {"RateLimit-Limit": "10, 10;w=1, 300;w=60", "RateLimit-Remaining": "3"}
    assert budget_from_headers(listed) == Budget(rate=5.0, remaining=3)
    # A reset as a Unix time (some gateways send one) is counted from now.
    epoch = {**listed, "RateLimit-Reset": str(int(time.time()) + 30)}
    reset = budget_from_headers(epoch)
    assert reset is not None and reset.reset is not None and 28 <= reset.reset <= 30
    # No window said: how many remain is no rate.
    assert budget_from_headers({"RateLimit-Limit": "10", "RateLimit-Remaining": "3"}) is None
    assert budget_from_headers({"RateLimit-Limit": "10", "X-RateLimit-Limit-Minute": "x"}) is None


# ------------------------------------------------------------------ the pacer across shapes


def _simulate(
    shape: RateLimiter,
    seconds: float,
    *,
    latency: float = 0.002,
    per_second: collections.Counter[tuple[int, bool]] | None = None,
) -> tuple[int, int, int]:
    """64 workers with endless demand, sending one at a time through the pacer (as the
    client does), each answer ``latency`` later; a Retry-After over a second pauses every
    worker (the client's cooldown), a shorter one only that worker. Deterministic.
    ``per_second`` counts answers by (whole second, admitted)."""
    rng = random.Random(7)
    pacer = Pacer()
    events: list[tuple[float, int, str, object]] = []
    order = 0

    def push(at: float, kind: str, data: object = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (at, order, kind, data))

    queue = list(range(64))
    cooldown_until = 0.0
    ticking = False
    admitted = refused = early = 0  # early: refusals in the first second

    def tick_soon(now: float) -> None:
        nonlocal ticking
        if queue and not ticking:
            ticking = True
            push(max(pacer.ready_at(now), cooldown_until), "tick")

    tick_soon(0.0)
    while events:
        now, _, kind, data = heapq.heappop(events)
        if now >= seconds:
            break
        if kind == "tick":
            ticking = False
            ready = max(pacer.ready_at(now), cooldown_until)
            if ready > now:
                ticking = True
                push(ready, "tick")
                continue
            worker = queue.pop(0)
            pacer.sent(now)
            answer_at = now + latency + rng.uniform(0, 0.0002)
            push(answer_at, "answer", (worker, now, shape.admit((now + answer_at) / 2)))
            tick_soon(now)
        elif kind == "answer":
            worker, sent, verdict = data  # type: ignore[misc]
            if per_second is not None:
                per_second[int(now), verdict.admitted] += 1
            if verdict.admitted:
                admitted += 1
                pacer.admitted(sent, now)
                queue.append(worker)
            else:
                refused += 1
                early += now < 1.0
                retry_after = max(1, math.ceil(verdict.retry_after))
                pacer.refused(sent, now, retry_after)
                if retry_after > 1:
                    cooldown_until = max(cooldown_until, now + retry_after)
                    queue.append(worker)
                else:
                    push(now + retry_after, "back", worker)
            tick_soon(now)
        else:  # a refused worker's own wait is over
            queue.append(data)  # type: ignore[arg-type]
            tick_soon(now)
    return admitted, refused, early


#: (name, shape, the share of its capacity reached at least: issue 14's target).
SHAPES = [
    ("token bucket R=500 burst 5", lambda: TokenBucket(500, 5), 0.9),
    ("token bucket R=100 burst 5", lambda: TokenBucket(100, 5), 0.9),
    ("token bucket R=300 burst 30", lambda: TokenBucket(300, 30), 0.9),
    ("token bucket R=2000 burst 200", lambda: TokenBucket(2000, 200), 0.9),
    ("fixed 1 s windows of 300", lambda: FixedWindow(300, 1.0), 0.9),
    ("fixed 10 s windows of 3000", lambda: FixedWindow(3000, 10.0), 0.9),
    ("sliding log of 300 per s", lambda: SlidingLog(300, 1.0), 0.9),
    ("sliding counter of 2000 per s", lambda: SlidingCounter(2000, 1.0), 0.9),
]


@pytest.mark.parametrize(("name", "make", "floor"), SHAPES, ids=[row[0] for row in SHAPES])
def test_the_pacer_reaches_most_of_what_each_shape_admits(
    name: str, make: Callable[[], RateLimiter], floor: float
) -> None:
    seconds = 30.0 if "10 s" in name else 10.0
    capacity = make().capacity(0.0, seconds)
    assert capacity is not None
    admitted, refused, early = _simulate(make(), seconds)
    assert admitted >= floor * capacity, (admitted, capacity)
    # The start costs up to a concurrency's worth of refusals (64 sends are in flight
    # when the first 429 comes back) and the slow start's overshoot; after it, at most
    # 3% of the answers are 429.
    assert early <= 128, early
    assert refused - early <= 0.03 * (admitted + refused), (refused, early, admitted)


class _Changed:
    """A limiter replaced by another at ``at`` seconds (an operator changed the limit)."""

    def __init__(self, before: RateLimiter, after: RateLimiter, at: float) -> None:
        self.before, self.after, self.at = before, after, at

    def admit(self, now: float) -> Verdict:
        return (self.before if now < self.at else self.after).admit(now)

    def finished(self, now: float) -> None:
        pass

    def capacity(self, start: float, end: float) -> float | None:
        return None


CHANGES = [
    ("bucket", lambda rate: TokenBucket(rate, rate / 10)),
    ("fixed 1 s windows", lambda rate: FixedWindow(rate, 1.0)),
]


@pytest.mark.parametrize("make", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_a_doubled_limit_is_reached_within_ten_seconds(make: Callable[[int], RateLimiter]) -> None:
    counts: collections.Counter[tuple[int, bool]] = collections.Counter()
    _simulate(_Changed(make(300), make(600), 10.0), 25.0, per_second=counts)
    reached = [s for s in range(10, 25) if counts[s, True] >= 0.9 * 600]
    assert reached and reached[0] <= 20, [counts[s, True] for s in range(10, 25)]
    # and held from then on
    assert all(counts[s, True] >= 0.9 * 600 for s in range(reached[0], 25))


@pytest.mark.parametrize("make", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_a_halved_limit_costs_at_most_two_seconds_of_429s(
    make: Callable[[int], RateLimiter],
) -> None:
    counts: collections.Counter[tuple[int, bool]] = collections.Counter()
    _simulate(_Changed(make(600), make(300), 10.0), 25.0, per_second=counts)

    def refused_share(second: int) -> float:
        return counts[second, False] / max(1, counts[second, False] + counts[second, True])

    # The change's episode: the seconds from it until refusals are rare again. (Later,
    # the pace's probes upward cost a few refusals now and then, as before the change.)
    episode = next(s for s in range(10, 25) if refused_share(s) <= 0.03) - 10
    assert episode <= 2, [(s, counts[s, True], counts[s, False]) for s in range(10, 25)]
    after = range(10 + episode, 25)
    refused = sum(counts[s, False] for s in after)
    assert refused <= 0.03 * sum(counts[s, True] + counts[s, False] for s in after)
    # Callers refused in the episode each wait their Retry-After (a second): the rate is
    # back once they are.
    assert all(counts[s, True] >= 0.9 * 300 for s in range(12, 25))


def test_a_leaky_bucket_is_paced_with_few_refusals() -> None:
    # nginx without burst refuses any two sends closer than 1/R: timing jitter alone
    # costs part of its rate, and the pacer keeps its refusals rare.
    admitted, refused, early = _simulate(LeakyBucket(300), 10.0)
    assert admitted >= 0.75 * 3001
    assert refused - early <= 0.03 * (admitted + refused)


# ------------------------------------------------------------------ against the fake gateway


def _items(gw: FakeGateway, count: int) -> list[maxa.CodedText]:
    terms = gw.data.terms("eRx", "10000")[:200]
    return [
        maxa.CodedText(
            value=terms[i % len(terms)].value,
            terminology_id="eRx",
            coded_string=terms[i % len(terms)].code,
        )
        for i in range(count)
    ]


async def test_a_six_hour_quota_stops_the_client_after_its_first_429() -> None:
    config = GatewayConfig(quota=5, quota_period=6 * 3600.0)
    async with (
        FakeGateway(config) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url, coalesce=False) as client,
    ):
        outcomes = [o async for o in client.validate_many(_items(gw, 40))]
        sent_after = gw.stats.requests
        started = time.monotonic()
        with pytest.raises(maxa.RateLimitedError) as info:
            await client.terminology(*RELIGION)
        assert time.monotonic() - started < 60.0  # at once, not after hours
    # The first sends went out at once (the initial concurrency of 8, and about one more
    # for each answer before the first 429 came back); the quota admitted 5 and the first
    # 429 stopped everything: a handful of the 40 items were sent, none twice.
    assert sum(o.ok for o in outcomes) == 5
    sent = gw.stats.requests_by_operation["ValidateCts"]
    assert INITIAL_CONCURRENCY <= sent <= 2 * INITIAL_CONCURRENCY
    assert gw.stats.rate_limited == sent - 5
    assert sent_after == gw.stats.requests
    assert info.value.retry_after is not None and info.value.retry_after > 6 * 3600 - 60
    errors = [o.error for o in outcomes if o.error is not None]
    assert len(errors) == 35 and all(isinstance(e, maxa.RateLimitedError) for e in errors)


@pytest.mark.parametrize("style", ["ietf", "kong"])
async def test_announced_budgets_are_paced_without_429s_after_the_first_second(
    style: str,
) -> None:
    # A rate any loaded test machine reaches: the pace, not the machine, is under test.
    config = GatewayConfig(
        rps_limit=100, rate_limiter="token-bucket", rate_burst=10, rate_headers=style
    )
    async with (
        FakeGateway(config) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url, coalesce=False) as client,
    ):
        items = _items(gw, 4000)
        seen_after_first_second = None
        started = time.monotonic()
        ok = 0
        async for outcome in client.validate_many(items):
            ok += outcome.ok
            if seen_after_first_second is None and time.monotonic() - started >= 1.0:
                seen_after_first_second = gw.stats.rate_limited
            if time.monotonic() - started >= 3.0:
                break
    assert seen_after_first_second is not None
    assert gw.stats.rate_limited == seen_after_first_second  # none after the first second
    # Half of what the bucket admits: a collapse would show; how close the pace comes is
    # measured in the deterministic simulation above (a loaded machine's own jitter, with
    # client and gateway on one event loop, would make a tighter floor a timing test).
    assert ok >= 0.5 * (10 + 100 * 3.0)


@attrs.frozen
class _Run:
    """What a client validating against a fake gateway for a while saw."""

    ok: int
    first_second: tuple[int, int]  # the gateway's (answers, 429s) by the end of it
    state: dict[str, float | int | None]  # the limiter's, at the end
    cooldowns: int
    gateway: FakeGateway


def _refused_after_the_first_second(run: _Run) -> tuple[int, int]:
    """429s after the run's first second, and all answers after it."""
    early_answers, early_refused = run.first_second
    return (
        run.gateway.stats.rate_limited - early_refused,
        run.gateway.stats.requests - early_answers,
    )


async def _validate_for(config: GatewayConfig, seconds: float) -> _Run:
    """A real client and gateway: validate_many as fast as the gateway admits."""
    async with (
        FakeGateway(config) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url, coalesce=False) as client,
    ):
        started = time.monotonic()
        ok = 0
        first_second: tuple[int, int] | None = None
        async for outcome in client.validate_many(_items(gw, 20000)):
            ok += outcome.ok
            elapsed = time.monotonic() - started
            if first_second is None and elapsed >= 1.0:
                first_second = (gw.stats.requests, gw.stats.rate_limited)
            if elapsed >= seconds:
                break
        state = client.limiter.state()
    assert first_second is not None
    return _Run(ok, first_second, state, client.stats.cooldowns, gw)


async def test_a_bucket_with_a_burst_of_5_over_10_seconds_few_429s() -> None:
    # Issue 14's bucket of 500/s with a burst of 5 runs in the deterministic simulation
    # above; here the real client and gateway at a rate any loaded test machine reaches.
    config = GatewayConfig(rps_limit=100, rate_limiter="token-bucket", rate_burst=5)
    run = await _validate_for(config, 10.0)
    ok, state = run.ok, run.state
    # As above: a floor against collapse (before the pacer, this shape got about a tenth
    # of its rate); the 90% of issue 14 is asserted in the simulation above.
    assert ok >= 0.5 * (5 + 100 * 10.0), (ok, state)
    # The start costs a few refusals: the initial concurrency's sends beyond the burst,
    # then the slow start's overshoot. After the first second, at most 3% are 429.
    assert run.first_second[1] <= 40, run.first_second
    refused, later = _refused_after_the_first_second(run)
    assert refused <= 0.03 * later, (refused, later)
    assert run.cooldowns == 0  # one-second Retry-Afters pause nobody


@pytest.mark.parametrize("style", ["fractional", "milliseconds"])
async def test_a_retry_after_to_the_millisecond_paces_like_a_whole_second(style: str) -> None:
    # Gateways that say the wait to the millisecond (Retry-After: 0.137, or Azure's
    # Retry-After-Ms beside whole seconds) are "too fast" answers like a whole second:
    # the pace slows and nobody pauses.
    config = GatewayConfig(
        rps_limit=100, rate_limiter="token-bucket", rate_burst=5, retry_after_format=style
    )
    run = await _validate_for(config, 5.0)
    ok, state = run.ok, run.state
    assert ok >= 0.5 * (5 + 100 * 5.0), (ok, state)
    refused, later = _refused_after_the_first_second(run)
    assert refused <= 0.03 * later, (refused, later)
    assert run.cooldowns == 0


def test_sends_behind_an_announced_budget_catch_up_as_far_as_half_of_what_remains() -> None:
    # 100/s announced, 60 remaining: a schedule 0.25 s behind (a descheduled process) is
    # made up at once, as far as 30 sends (0.3 s); without a budget only 0.05 s is.
    def behind(budget: Budget | None) -> int:
        pacer = Pacer(cap=None if budget is not None else 100.0)
        pacer.sent(0.0)
        pacer.admitted(0.0, 0.005, budget)
        pacer.sent(0.01)  # paced from here: the schedule is at 0.01 + 1/rate
        now = 0.26  # woken a quarter second late
        sends = 0
        while pacer.ready_at(now) <= now:
            pacer.sent(now)
            sends += 1
        return sends

    assert behind(Budget(rate=100 / 0.99, remaining=60)) == 25  # the quarter second made up
    assert behind(None) == 1  # 0.25 s > 0.05 s: the schedule starts again from now
    # Half of what remains bounds it: 10 remaining allow 0.05 s, no more than without.
    assert behind(Budget(rate=100 / 0.99, remaining=10)) == 1


async def test_nodes_behind_a_random_balancer_few_429s_after_the_first_second() -> None:
    # Four gateway nodes of 25/s with a burst of 5 each, dealt requests at random: a
    # steady client is refused whenever one node gets a bunch, below the 100/s they sum
    # to. The pacer must settle where such refusals are rare, not give up or hammer.
    config = GatewayConfig(
        rps_limit=100, rate_limiter="token-bucket", rate_burst=20, rate_nodes=4, seed=2
    )
    run = await _validate_for(config, 8.0)
    ok, state = run.ok, run.state
    # A floor against collapse, as for one bucket above (timing on a loaded test machine
    # decides how close to the nodes' sum a pace can stay).
    assert ok >= 0.5 * (20 + 100 * 8.0), (ok, state)
    refused, later = _refused_after_the_first_second(run)
    assert refused <= 0.05 * later, (refused, later)
    assert run.cooldowns == 0


@pytest.mark.parametrize(("limit", "window", "most_refused"), [(20, 4.0, 90), (50, 10.0, 125)])
def test_a_gateway_that_admits_a_few_a_second_costs_few_refusals(
    limit: int, window: float, most_refused: int
) -> None:
    # Fixed windows of a few requests a second; one send at a time, answered in 1 ms,
    # for 40 s. A spent window is probed at a pace halved after every eight refusals, so
    # a gateway this slow is not probed faster than it admits. (A rule that halved after
    # three refusals, down to twenty probes a window, was tried: it passed the faster
    # shapes above and cost 106 and 135 refusals here.)
    pacer, shape = Pacer(), FixedWindow(limit, window)
    admitted = refused = 0
    now = 0.0
    while (now := max(now, pacer.ready_at(now))) < 40.0:
        pacer.sent(now)
        if shape.admit(now).admitted:
            pacer.admitted(now, now + 0.001)
            admitted += 1
        else:
            pacer.refused(now, now + 0.001)
            refused += 1
        now += 0.001
    assert admitted >= 0.95 * limit * 40 / window, admitted
    assert refused <= most_refused, refused
