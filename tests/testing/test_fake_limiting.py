"""The gateway's limiting stage on a fake clock: rebuilds, places in flight, header spelling."""

from __future__ import annotations

import email.utils

from maxa_async.testing import GatewayConfig
from maxa_async.testing._limiting import Limiting, retry_after_value


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_changed_limit_keeps_the_places_in_flight() -> None:
    config = GatewayConfig(concurrency_limit=3)
    limiting = Limiting(FakeClock())
    slots = [limiting.arrive(config) for _ in range(3)]
    assert [slot.admitted for slot in slots if slot is not None] == [True] * 3
    config.concurrency_limit = 4
    assert [
        slot.admitted for slot in (limiting.arrive(config), limiting.arrive(config)) if slot
    ] == [
        True,
        False,
    ]
    config.concurrency_limit = 2  # four held: nobody gets in until two leave
    limiting.leave(slots[0])
    third = limiting.arrive(config)
    assert third is not None
    assert not third.admitted
    limiting.leave(slots[1])
    limiting.leave(slots[2])
    fourth = limiting.arrive(config)
    assert fourth is not None
    assert fourth.admitted


def test_leaving_says_how_long_the_place_was_held() -> None:
    config = GatewayConfig(concurrency_limit=1)
    clock = FakeClock()
    limiting = Limiting(clock)
    held = limiting.arrive(config)
    refused = limiting.arrive(config)
    clock.now += 0.25
    assert limiting.leave(held) == 0.25
    assert limiting.leave(refused) is None  # refused: it held no place
    assert limiting.leave(None) is None  # no cap


def test_places_taken_before_the_cap_went_away_free_nothing_later() -> None:
    config = GatewayConfig(concurrency_limit=1)
    limiting = Limiting(FakeClock())
    old = limiting.arrive(config)
    config.concurrency_limit = None
    assert limiting.arrive(config) is None
    config.concurrency_limit = 1
    new = limiting.arrive(config)
    assert new is not None
    assert new.admitted
    limiting.leave(old)  # must not free the new cap's only place
    refused = limiting.arrive(config)
    assert refused is not None
    assert not refused.admitted


def test_a_refused_slot_is_answered_with_the_configured_status() -> None:
    config = GatewayConfig(concurrency_limit=1, concurrency_status=503)
    limiting = Limiting(FakeClock())
    limiting.arrive(config)
    refused = limiting.arrive(config)
    decision = limiting.check(config, refused)
    assert (decision.refused, decision.headers) == (503, ())


def test_the_rate_is_checked_before_the_quota_and_a_rate_refusal_spends_no_quota() -> None:
    clock = FakeClock()
    config = GatewayConfig(rps_limit=1, rate_limiter="leaky-bucket", quota=2, quota_period=100)
    limiting = Limiting(clock)
    assert limiting.check(config, None).refused is None
    for _ in range(5):
        assert limiting.check(config, None).refused == 429  # the rate, not the quota
    clock.now += 1
    assert limiting.check(config, None).refused is None  # quota 2 of 2
    clock.now += 1
    refused = limiting.check(config, None)
    assert refused.refused == 429
    assert dict(refused.headers)["Retry-After"] == "98"


def test_the_limiter_is_rebuilt_only_when_its_knobs_change() -> None:
    clock = FakeClock()
    config = GatewayConfig(rps_limit=2, rate_limiter="token-bucket")
    limiting = Limiting(clock)
    assert [limiting.check(config, None).refused for _ in range(3)] == [None, None, 429]
    config.latency = 0.5  # not a limiter knob: the empty bucket stays empty
    assert limiting.check(config, None).refused == 429
    config.rate_burst = 3
    assert [limiting.check(config, None).refused for _ in range(4)] == [None] * 3 + [429]


def test_retry_after_values() -> None:
    assert retry_after_value(0.001, "seconds", 0.0) == "1"
    assert retry_after_value(1.0, "seconds", 0.0) == "1"
    assert retry_after_value(1.0000000001, "seconds", 0.0) == "1"  # float noise is not a second
    assert retry_after_value(1.2, "seconds", 0.0) == "2"
    assert retry_after_value(21_599.5, "seconds", 0.0) == "21600"
    at = email.utils.parsedate_to_datetime(retry_after_value(0.2, "http-date", 784_111_777.9))
    assert at.timestamp() == 784_111_779
    assert retry_after_value(0.2, "http-date", 784_111_777.0) == "Sun, 06 Nov 1994 08:49:38 GMT"


def test_spring_headers_describe_the_limiter_that_refused() -> None:
    clock = FakeClock()
    config = GatewayConfig(rps_limit=10, quota=1, quota_period=50, rate_headers="spring")
    limiting = Limiting(clock)
    admitted = dict(limiting.check(config, None).headers)
    assert (admitted["X-RateLimit-Remaining"], admitted["X-RateLimit-Burst-Capacity"]) == (
        "9",
        "10",
    )
    refused = limiting.check(config, None)
    headers = dict(refused.headers)
    assert refused.refused == 429
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Burst-Capacity"] == "1"
    assert headers["X-RateLimit-Replenish-Rate"] == "0.02"
    assert headers["Retry-After"] == "50"
