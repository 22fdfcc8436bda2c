"""The rate-limiter shapes on a fake clock: exact admissions, waits and capacities."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

import pytest

from maxa_async.testing import GatewayConfig
from maxa_async.testing._limiters import (
    Balanced,
    ConcurrencyCap,
    FixedWindow,
    LeakyBucket,
    Quota,
    RateLimiter,
    SlidingCounter,
    SlidingLog,
    TokenBucket,
    Verdict,
)


def drive(limiter: RateLimiter, per_second: int, seconds: float, start: float = 0.0) -> list[float]:
    """Attempt at a steady ``per_second`` for ``seconds``; the times admitted."""
    admitted = []
    for k in range(round(per_second * seconds)):
        now = start + k / per_second
        if limiter.admit(now).admitted:
            admitted.append(now)
    return admitted


def greedy(limiter: RateLimiter, start: float, end: float) -> int:
    """A client that asks at ``start`` and again exactly when ``retry_after`` says."""
    now, admitted = start, 0
    for _ in range(1_000_000):
        if now >= end:
            return admitted
        verdict = limiter.admit(now)
        if verdict.admitted:
            admitted += 1
            continue
        assert verdict.retry_after is not None
        assert verdict.retry_after > 0
        now = now + verdict.retry_after
    raise AssertionError("the greedy client did not finish")


# -- fixed window -------------------------------------------------------------------------------


def test_fixed_window_admits_limit_per_aligned_window() -> None:
    limiter = FixedWindow(7, 10.0)
    admitted = drive(limiter, 100, 60.0, start=3.0)  # windows [0,10) ... [60,70) are touched
    per_window: dict[int, int] = {}
    for t in admitted:
        per_window[math.floor(t / 10)] = per_window.get(math.floor(t / 10), 0) + 1
    assert per_window == {w: 7 for w in range(7)}
    assert limiter.capacity(3.0, 63.0) == 7 * 7


def test_fixed_window_verdicts_and_default_window() -> None:
    limiter = FixedWindow(2)
    assert limiter.window == 1.0
    first = limiter.admit(100.25)
    assert first == Verdict(True, 0.0, 1, 2, 1.0, 0.75)
    assert limiter.admit(100.5).remaining == 0
    refused = limiter.admit(100.75)
    assert refused == Verdict(False, 0.25, 0, 2, 1.0, 0.25)
    assert limiter.admit(101.0).admitted  # the next window starts whole


# -- sliding log --------------------------------------------------------------------------------


def test_sliding_log_never_exceeds_limit_in_any_trailing_window() -> None:
    limiter = SlidingLog(5, 2.0)
    rng = random.Random(7)
    times = sorted(rng.uniform(0.0, 30.0) for _ in range(2_000))
    admitted = [t for t in times if limiter.admit(t).admitted]
    for i, t in enumerate(admitted):
        inside = [u for u in admitted[: i + 1] if u > t - 2.0]
        assert len(inside) <= 5
    # Each 2 s window from a burst start is fully used by 2,000 attempts in 30 s.
    assert len(admitted) >= 5 * 14


def test_sliding_log_retry_after_is_when_the_oldest_leaves() -> None:
    limiter = SlidingLog(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        assert limiter.admit(t).admitted
    refused = limiter.admit(4.0)
    assert (refused.admitted, refused.retry_after, refused.reset) == (False, 6.0, 8.0)
    assert not limiter.admit(9.5).admitted
    assert limiter.admit(10.0).admitted
    assert not limiter.admit(10.5).admitted


# -- sliding counter ----------------------------------------------------------------------------


def test_sliding_counter_weights_the_previous_window() -> None:
    limiter = SlidingCounter(10, 1.0)
    assert len([k for k in range(10) if limiter.admit(0.5).admitted]) == 10
    refused = limiter.admit(1.0)  # previous 10 weighted 1.0
    assert not refused.admitted
    assert refused.retry_after == pytest.approx(0.1)  # weight 0.9 leaves room for one
    assert limiter.admit(1.1).admitted
    assert not limiter.admit(1.1).admitted
    # Halfway: 10 * 0.5 + 1 = 6, so four more fit.
    assert [limiter.admit(1.5).admitted for _ in range(5)] == [True] * 4 + [False]


def test_sliding_counter_steady_drive_stays_within_the_estimate() -> None:
    limiter = SlidingCounter(20, 2.0)
    admitted = drive(limiter, 200, 40.0)
    counts: dict[int, int] = {}
    for t in admitted:
        counts[math.floor(t / 2)] = counts.get(math.floor(t / 2), 0) + 1
    assert max(counts.values()) <= 20
    # Over a long run a sliding counter admits about its limit per window.
    assert 20 * 20 * 0.9 <= len(admitted) <= 20 * 20 + 20


# -- token bucket -------------------------------------------------------------------------------


def test_token_bucket_burst_then_rate() -> None:
    limiter = TokenBucket(500, 5)
    admitted = drive(limiter, 2_000, 10.0)
    assert abs(len(admitted) - (5 + 5_000)) <= 1


def test_token_bucket_verdicts() -> None:
    limiter = TokenBucket(2.0, 3.0)
    verdicts = [limiter.admit(0.0) for _ in range(4)]
    assert [v.admitted for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert (verdicts[0].limit, verdicts[0].window) == (3, 1.5)
    assert verdicts[3].retry_after == 0.5
    assert verdicts[3].reset == 1.5
    assert not limiter.admit(0.25).admitted
    assert limiter.admit(0.5).admitted


# -- leaky bucket -------------------------------------------------------------------------------


def test_leaky_bucket_paces_without_burst() -> None:
    limiter = LeakyBucket(10.0)
    admitted = drive(limiter, 1_000, 1.0)
    assert len(admitted) == 10
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(admitted))
    first = LeakyBucket(4.0)
    assert first.admit(0.0).admitted
    refused = first.admit(0.1)
    assert not refused.admitted
    assert refused.retry_after == pytest.approx(0.15)


# -- concurrency cap and quota ------------------------------------------------------------------


def test_concurrency_cap_refuses_the_next_one_until_finished() -> None:
    cap = ConcurrencyCap(2)
    assert [cap.admit(0.0).admitted for _ in range(3)] == [True, True, False]
    assert cap.admit(0.0).retry_after is None
    cap.finished(0.1)
    assert cap.admit(0.2).admitted
    assert not cap.admit(0.2).admitted
    assert cap.capacity(0.0, 10.0) is None


def test_quota_runs_out_until_the_period_ends() -> None:
    quota = Quota(3, 6 * 3600.0)
    start = 1_000.0
    assert [quota.admit(start + t).admitted for t in (0.0, 1.0, 2.0)] == [True] * 3
    refused = quota.admit(start + 10.0)
    assert not refused.admitted
    assert refused.retry_after == 6 * 3600.0 - 10.0
    assert (refused.limit, refused.window) == (3, 6 * 3600.0)
    assert not quota.admit(start + 6 * 3600.0 - 1).admitted
    assert quota.admit(start + 6 * 3600.0).admitted
    assert quota.capacity(0.0, 13 * 3600.0) == 9


# -- capacity is what a greedy client gets ------------------------------------------------------

SHAPES: dict[str, Callable[[], RateLimiter]] = {
    "fixed-1s": lambda: FixedWindow(50, 1.0),
    "fixed-10s": lambda: FixedWindow(300, 10.0),
    "fixed-60s": lambda: FixedWindow(1_000, 60.0),
    "sliding-log": lambda: SlidingLog(40, 10.0),
    "sliding-counter": lambda: SlidingCounter(40, 10.0),
    "sliding-counter-1s": lambda: SlidingCounter(7, 1.0),
    "token-bucket": lambda: TokenBucket(100.0, 5.0),
    "token-bucket-big": lambda: TokenBucket(30.0, 90.0),
    "token-bucket-fractional": lambda: TokenBucket(2.5, 1.5),
    "leaky-bucket": lambda: LeakyBucket(40.0),
    "quota": lambda: Quota(10, 7.0),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(
    ("start", "end"),
    # Ends off every shape's grid of admission times, where float rounding could tip a count.
    [(0.0, 30.013), (2.5, 95.2537), (1_700_000_000.3, 1_700_000_061.0071)],
)
def test_capacity_matches_a_greedy_client(shape: str, start: float, end: float) -> None:
    capacity = SHAPES[shape]().capacity(start, end)
    assert capacity is not None
    assert greedy(SHAPES[shape](), start, end) == capacity


def test_capacity_of_an_empty_span_is_zero() -> None:
    for make in SHAPES.values():
        assert make().capacity(5.0, 5.0) == 0


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: FixedWindow(0, 1.0), "limit"),
        (lambda: FixedWindow(5, 0.0), "window"),
        (lambda: SlidingLog(5, -1.0), "window"),
        (lambda: SlidingCounter(2.5, 1.0), "limit"),  # type: ignore[arg-type]
        (lambda: TokenBucket(0.0, 5.0), "rate"),
        (lambda: TokenBucket(10.0, 0.5), "burst"),
        (lambda: LeakyBucket(math.inf), "rate"),
        (lambda: ConcurrencyCap(True), "limit"),
        (lambda: Quota(3, 0.0), "period"),
    ],
)
def test_constructors_name_the_bad_argument(make: Callable[[], object], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} "):
        make()


# -- several nodes behind a balancer --------------------------------------------------------------


def test_balanced_nodes_each_admit_their_own_share_of_what_they_are_dealt() -> None:
    # 4 nodes of 10 per fixed window; 100 requests at once, dealt at random: each node
    # admits the first 10 it is dealt, so the total is sum(min(dealt, 10)).
    balanced = Balanced([FixedWindow(10, 1.0) for _ in range(4)], seed=5)
    admitted = sum(balanced.admit(0.5).admitted for _ in range(100))
    expected_dealt = [0] * 4
    deal = random.Random(5)
    for _ in range(100):
        expected_dealt[deal.randrange(4)] += 1
    assert balanced.dealt == expected_dealt
    assert admitted == sum(min(count, 10) for count in expected_dealt) == 40
    assert balanced.capacity(0.0, 3.0) == 4 * 10 * 3


def test_balanced_nodes_refuse_a_steady_drive_below_their_sum() -> None:
    # 4 buckets of 100/s with a burst of 2: a drive at 300/s, three quarters of the sum,
    # is evenly spaced, but a random deal bunches requests on one node now and then.
    # One bucket of 400/s with a burst of 8 takes all of it.
    def refused(limiter: RateLimiter) -> int:
        return 3000 - len(drive(limiter, 300, 10.0))

    assert refused(TokenBucket(400, 8)) == 0
    bunched = refused(Balanced([TokenBucket(100, 2) for _ in range(4)], seed=1))
    assert 0 < bunched < 3000
    again = refused(Balanced([TokenBucket(100, 2) for _ in range(4)], seed=1))
    assert again == bunched  # the same seed deals the same way


def test_rate_nodes_split_the_rate_and_the_burst() -> None:
    single = GatewayConfig(rps_limit=400, rate_limiter="token-bucket", rate_burst=40)
    assert isinstance(single.make_rate_limiter(), TokenBucket)
    config = GatewayConfig(
        rps_limit=400, rate_limiter="token-bucket", rate_burst=40, rate_nodes=4, seed=3
    )
    nodes = config.make_rate_limiter()
    assert isinstance(nodes, Balanced)
    assert [(node.rate, node.burst) for node in nodes.nodes] == [(100.0, 10.0)] * 4  # type: ignore[attr-defined]
    windows = GatewayConfig(rps_limit=300, rate_nodes=3).make_rate_limiter()
    assert isinstance(windows, Balanced)
    assert [node.limit for node in windows.nodes] == [100, 100, 100]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="rate_nodes"):
        GatewayConfig(rate_nodes=0)
    with pytest.raises(TypeError):
        GatewayConfig(rate_nodes=True)
    with pytest.raises(ValueError, match="nodes"):
        Balanced([])
