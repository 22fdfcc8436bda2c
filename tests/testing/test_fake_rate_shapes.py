"""The limiter knobs against the real server: shapes, Retry-After forms, budget headers."""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakewire import Reply, Wire, wait_for_window_start

from maxa_async.testing import (
    FakeGateway,
    GatewayConfig,
    build_arg_parser,
    config_from_args,
    run_from_args,
)

Factory = Any
WireFor = Callable[[FakeGateway], Wire]

IMF_FIXDATE = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")


async def started(factory: Factory, wire_for: WireFor, **knobs: Any) -> tuple[FakeGateway, Wire]:
    gw = await factory(**knobs)
    wire = wire_for(gw)
    await wire.login()
    return gw, wire


def wait_for_long_window_start(window: float, margin: float = 2.0) -> None:
    """Sleep (< margin s) when the wall clock is within ``margin`` of a window's end."""
    left = window - time.time() % window
    if left < margin:
        time.sleep(left + 0.01)


# -- shapes -------------------------------------------------------------------------------------


async def test_nodes_behind_a_random_balancer_each_admit_their_own_window(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    # 4 requests/s in 10 s windows over 4 nodes: each node admits 10 per window of what
    # it is dealt, and the balancer deals with random.Random(seed).
    wait_for_long_window_start(10.0)
    gw, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=4, rate_window=10, rate_nodes=4, seed=11
    )
    statuses = [(await wire.validate()).status for _ in range(60)]
    deal = random.Random(11)
    dealt = [0] * 4
    expected = []
    for _ in range(60):
        node = deal.randrange(4)
        dealt[node] += 1
        expected.append(200 if dealt[node] <= 10 else 429)
    assert statuses == expected
    assert statuses.count(200) == sum(min(count, 10) for count in dealt)
    assert gw.stats.rate_limited == statuses.count(429) > 0


async def test_token_bucket_answers_its_burst_then_429_with_retry_after_1(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=1, rate_limiter="token-bucket", rate_burst=5
    )
    replies = [await wire.validate() for _ in range(6)]
    assert [reply.status for reply in replies] == [200] * 5 + [429]
    assert replies[5].headers["Retry-After"] == "1"
    assert replies[5].json() == {
        "status": {"statusCode": 429, "message": "Too many requests or Access denied!"}
    }
    assert gw.stats.rate_limited == 1
    assert gw.stats.responses_by_status == {200: 5, 429: 1}


async def test_token_bucket_burst_defaults_to_one_second_of_rate(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=3, rate_limiter="token-bucket"
    )
    statuses = [(await wire.validate()).status for _ in range(4)]
    assert statuses == [200] * 3 + [429]


async def test_leaky_bucket_refuses_the_second_at_once(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=1, rate_limiter="leaky-bucket"
    )
    first, second = [await wire.validate() for _ in range(2)]
    assert (first.status, second.status) == (200, 429)
    assert second.headers["Retry-After"] == "1"


async def test_sliding_log_of_ten_seconds(maxa_gateway_factory: Factory, wire_for: WireFor) -> None:
    gw, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=1, rate_window=10, rate_limiter="sliding-log"
    )
    replies = [await wire.validate() for _ in range(11)]
    assert [reply.status for reply in replies] == [200] * 10 + [429]
    # The oldest admission leaves the trailing window about 10 s after it came.
    assert 9 <= int(replies[10].headers["Retry-After"]) <= 10
    assert gw.stats.rate_limited == 1


async def test_fixed_window_of_ten_seconds_admits_r_times_window(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(maxa_gateway_factory, wire_for, rps_limit=2, rate_window=10)
    wait_for_long_window_start(10.0)
    replies = [await wire.validate() for _ in range(21)]
    sent_at = time.time()
    assert [reply.status for reply in replies] == [200] * 20 + [429]
    to_end = 10 - sent_at % 10
    assert 1 <= int(replies[20].headers["Retry-After"]) <= math.ceil(to_end) + 1
    assert gw.stats.rate_limited == 1


async def test_sliding_counter_of_ten_seconds(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=2, rate_window=10, rate_limiter="sliding-counter"
    )
    wait_for_long_window_start(10.0)
    statuses = [(await wire.validate()).status for _ in range(21)]
    assert statuses == [200] * 20 + [429]


async def test_changing_a_shape_knob_builds_a_fresh_limiter(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(
        maxa_gateway_factory, wire_for, rps_limit=1, rate_limiter="token-bucket", rate_burst=2
    )
    assert [(await wire.validate()).status for _ in range(3)] == [200, 200, 429]
    gw.config.update(rps_limit=4, rate_burst=None)  # double, and more: a bucket of 4
    assert [(await wire.validate()).status for _ in range(5)] == [200] * 4 + [429]
    gw.config.rps_limit = None
    assert [(await wire.validate()).status for _ in range(5)] == [200] * 5


# -- concurrency cap and quota ------------------------------------------------------------------


async def test_concurrency_cap_refuses_the_third_in_flight(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(
        maxa_gateway_factory, wire_for, concurrency_limit=2, concurrency_status=503, latency=1.0
    )
    replies = await asyncio.gather(*(wire.validate() for _ in range(3)))
    assert sorted(reply.status for reply in replies) == [200, 200, 503]
    refused = next(reply for reply in replies if reply.status == 503)
    assert refused.json() == {"status": {"statusCode": 503, "message": "Service provider error!"}}
    assert "Retry-After" not in refused.headers  # a cap cannot say when a place frees
    assert gw.stats.rate_limited == 1
    assert gw.stats.peak_in_flight == 3
    # Their places are free again once answered.
    gw.config.latency = 0.0
    assert [(await wire.validate()).status for _ in range(3)] == [200] * 3


async def test_the_stats_count_the_seconds_places_were_held(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(maxa_gateway_factory, wire_for, concurrency_limit=2, latency=0.2)
    replies = await asyncio.gather(*(wire.validate() for _ in range(3)))
    assert sorted(reply.status for reply in replies) == [200, 200, 429]
    assert gw.stats.cap_holds == 2  # the refused one held no place
    assert gw.stats.cap_hold_seconds >= 2 * 0.2  # each held its place through the latency
    assert gw.stats.as_dict()["cap_holds"] == 2


async def test_concurrency_cap_answers_429_by_default(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(maxa_gateway_factory, wire_for, concurrency_limit=1, latency=0.5)
    replies = await asyncio.gather(*(wire.validate() for _ in range(2)))
    assert sorted(reply.status for reply in replies) == [200, 429]
    assert gw.stats.rate_limited == 1


async def test_quota_refuses_with_a_retry_after_of_hours(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(maxa_gateway_factory, wire_for, quota=3, quota_period=6 * 3600)
    replies = [await wire.validate() for _ in range(4)]
    assert [reply.status for reply in replies] == [200] * 3 + [429]
    assert 21_000 <= int(replies[3].headers["Retry-After"]) <= 6 * 3600
    assert gw.stats.rate_limited == 1


async def test_refusals_before_the_limiters_spend_no_budget(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw, wire = await started(maxa_gateway_factory, wire_for, quota=2)
    assert (await wire.validate(token="bogus")).status == 401
    gw.config.permanent_429 = True
    assert (await wire.validate()).status == 429
    gw.config.permanent_429 = False
    assert [(await wire.validate()).status for _ in range(3)] == [200, 200, 429]


# -- Retry-After forms --------------------------------------------------------------------------


async def test_retry_after_as_an_http_date(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory,
        wire_for,
        quota=1,
        quota_period=3600,
        retry_after_format="http-date",
    )
    assert (await wire.validate()).status == 200
    before = time.time()
    refused = await wire.validate()
    assert refused.status == 429
    value = refused.headers["Retry-After"]
    assert IMF_FIXDATE.match(value), value
    moment = email.utils.parsedate_to_datetime(value).timestamp()
    assert before + 3500 <= moment <= before + 3602


async def test_retry_after_http_date_is_at_least_a_second_ahead(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory,
        wire_for,
        rps_limit=1,
        rate_limiter="leaky-bucket",
        retry_after_format="http-date",
    )
    await wire.validate()
    refused = await wire.validate()
    moment = email.utils.parsedate_to_datetime(refused.headers["Retry-After"]).timestamp()
    date = email.utils.parsedate_to_datetime(refused.headers["Date"]).timestamp()
    assert 1 <= moment - date <= 2


async def _refused_at_4_per_second(
    factory: Factory, wire_for: WireFor, retry_after_format: str
) -> Any:
    """4/s with no burst: a second request at once is refused, with a quarter of a
    second to wait."""
    _, wire = await started(
        factory,
        wire_for,
        rps_limit=4,
        rate_limiter="leaky-bucket",
        retry_after_format=retry_after_format,
    )
    assert (await wire.validate()).status == 200
    refused = await wire.validate()
    assert refused.status == 429
    return refused


async def test_retry_after_to_the_millisecond(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    # the quarter of a second said as such, not rounded up to a whole second
    refused = await _refused_at_4_per_second(maxa_gateway_factory, wire_for, "fractional")
    value = refused.headers["Retry-After"]
    assert re.fullmatch(r"\d+\.\d{3}", value), value
    assert 0.15 <= float(value) <= 0.25
    assert "Retry-After-Ms" not in refused.headers


async def test_retry_after_ms_beside_whole_seconds(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    refused = await _refused_at_4_per_second(maxa_gateway_factory, wire_for, "milliseconds")
    assert refused.headers["Retry-After"] == "1"
    assert 150 <= int(refused.headers["Retry-After-Ms"]) <= 250


async def test_retry_after_can_be_left_out(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory, wire_for, quota=1, retry_after=False, retry_after_format="http-date"
    )
    await wire.validate()
    refused = await wire.validate()
    assert refused.status == 429
    assert "Retry-After" not in refused.headers


# -- budget headers -----------------------------------------------------------------------------


async def test_spring_headers_on_every_answer_past_the_limiters(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(
        maxa_gateway_factory,
        wire_for,
        rps_limit=1,
        rate_limiter="token-bucket",
        rate_burst=4,
        rate_headers="spring",
    )
    replies = [await wire.validate() for _ in range(5)]
    assert [reply.status for reply in replies] == [200] * 4 + [429]
    assert [reply.headers["X-RateLimit-Remaining"] for reply in replies] == [
        "3",
        "2",
        "1",
        "0",
        "0",
    ]
    for reply in replies:
        assert reply.headers["X-RateLimit-Replenish-Rate"] == "1"
        assert reply.headers["X-RateLimit-Burst-Capacity"] == "4"
        assert reply.headers["X-RateLimit-Requested-Tokens"] == "1"
    assert replies[4].headers["Retry-After"] == "1"


async def test_ietf_headers_count_down_a_fixed_window(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(maxa_gateway_factory, wire_for, rps_limit=5, rate_headers="ietf")
    wait_for_window_start()
    replies = [await wire.validate() for _ in range(6)]
    assert [reply.status for reply in replies] == [200] * 5 + [429]
    for reply in replies:
        assert reply.headers["RateLimit-Policy"] == '"default";q=5;w=1'
    assert [reply.headers["RateLimit"] for reply in replies] == [
        f'"default";r={remaining};t=1' for remaining in (4, 3, 2, 1, 0, 0)
    ]


async def test_kong_headers_count_down_a_fixed_window(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(maxa_gateway_factory, wire_for, rps_limit=5, rate_headers="kong")
    wait_for_window_start()
    replies = [await wire.validate() for _ in range(6)]
    assert [reply.status for reply in replies] == [200] * 5 + [429]
    for reply in replies:
        assert reply.headers["X-RateLimit-Limit-Second"] == "5"
        assert reply.headers["RateLimit-Limit"] == "5"
        assert reply.headers["RateLimit-Reset"] == "1"
    remaining = [4, 3, 2, 1, 0, 0]
    assert [int(r.headers["X-RateLimit-Remaining-Second"]) for r in replies] == remaining
    assert [int(r.headers["RateLimit-Remaining"]) for r in replies] == remaining


async def _first_answer_of_a_bucket_and_an_hours_quota(
    factory: Factory, wire_for: WireFor, rate_headers: str
) -> Reply:
    """The headers of the first answer past a bucket of 100/s (burst 10) and a quota of
    50 an hour, in the style ``rate_headers``."""
    _, wire = await started(
        factory,
        wire_for,
        rps_limit=100,
        rate_limiter="token-bucket",
        rate_burst=10,
        quota=50,
        quota_period=3600,
        rate_headers=rate_headers,
    )
    return await wire.validate()


async def test_kong_headers_say_a_bucket_per_second_and_a_quota_per_hour(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    reply = await _first_answer_of_a_bucket_and_an_hours_quota(
        maxa_gateway_factory, wire_for, "kong"
    )
    # Kong counts in its own periods: the bucket is said as its rate per second (with
    # its tokens left), the quota in the hour it spans.
    assert reply.headers["X-RateLimit-Limit-Second"] == "100"
    assert reply.headers["X-RateLimit-Remaining-Second"] == "9"
    assert reply.headers["X-RateLimit-Limit-Hour"] == "50"
    assert reply.headers["X-RateLimit-Remaining-Hour"] == "49"
    # The older IETF draft's three fields: the limit nearest to running out (the bucket).
    assert (reply.headers["RateLimit-Limit"], reply.headers["RateLimit-Remaining"]) == ("10", "9")


async def test_ietf_headers_name_the_quota_too(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    reply = await _first_answer_of_a_bucket_and_an_hours_quota(
        maxa_gateway_factory, wire_for, "ietf"
    )
    assert reply.headers["RateLimit-Policy"] == '"default";q=10;w=0.1, "quota";q=50;w=3600'
    match = re.fullmatch(r'"default";r=(\d+);t=1, "quota";r=49;t=(\d+)', reply.headers["RateLimit"])
    assert match is not None, reply.headers["RateLimit"]
    assert int(match[1]) == 9
    assert 3590 <= int(match[2]) <= 3600


async def test_budget_headers_on_errors_past_the_limiters_not_before(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(maxa_gateway_factory, wire_for, quota=10, rate_headers="spring")
    bad = await wire.call("ValidateCts", {"DoCodedText": 1})
    assert bad.status == 400
    assert bad.headers["X-RateLimit-Remaining"] == "9"
    unauthorized = await wire.validate(token="bogus")
    assert unauthorized.status == 401
    assert "X-RateLimit-Remaining" not in unauthorized.headers


async def test_no_budget_headers_by_default(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    _, wire = await started(maxa_gateway_factory, wire_for, rps_limit=5, quota=10)
    reply = await wire.validate()
    assert not {"RateLimit", "RateLimit-Policy", "X-RateLimit-Remaining"} & set(reply.headers)


# -- knobs over HTTP and on the command line ----------------------------------------------------


async def test_limiter_knobs_over_the_config_endpoint(wire: Wire, gw: FakeGateway) -> None:
    knobs = {
        "rps_limit": 1,
        "rate_limiter": "token-bucket",
        "rate_burst": 2,
        "rate_headers": "ietf",
        "retry_after_format": "http-date",
    }
    reply = await wire.raw("POST", "/__config", data=orjson.dumps(knobs))
    assert reply.status == 200
    assert {name: reply.json()[name] for name in knobs} == {
        **knobs,
        "rps_limit": 1.0,
        "rate_burst": 2.0,
    }
    await wire.login()
    replies = [await wire.validate() for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 429]
    assert IMF_FIXDATE.match(replies[2].headers["Retry-After"])
    assert replies[0].headers["RateLimit-Policy"] == '"default";q=2;w=2'


@pytest.mark.parametrize(
    "knobs",
    [
        {"rate_limiter": "gcra"},
        {"rate_window": 0},
        {"rate_burst": 0.5},
        {"concurrency_limit": 0},
        {"concurrency_status": 500},
        {"quota": 0},
        {"quota_period": -1},
        {"retry_after_format": "ms"},
        {"rate_headers": "github"},
        {"rps_limit": 10, "rate_limiter": "token bucket"},
    ],
)
async def test_config_endpoint_rejects_bad_limiter_knobs(
    wire: Wire, gw: FakeGateway, knobs: dict[str, Any]
) -> None:
    reply = await wire.raw("POST", "/__config", data=orjson.dumps(knobs))
    assert reply.status == 400
    bad_name = next(name for name in knobs if name != "rps_limit")
    assert bad_name in reply.json()["error"]
    assert gw.config == GatewayConfig()


def test_limiter_knobs_on_the_command_line() -> None:
    args = build_arg_parser().parse_args(
        [
            "--rps-limit",
            "50",
            "--rate-limiter",
            "sliding-log",
            "--rate-window",
            "10",
            "--rate-burst",
            "3",
            "--concurrency-limit",
            "4",
            "--concurrency-status",
            "503",
            "--quota",
            "100",
            "--quota-period",
            "3600",
            "--retry-after-format",
            "http-date",
            "--rate-headers",
            "spring",
            "--rate-nodes",
            "3",
        ]
    )
    config = config_from_args(args)
    assert config.rate_nodes == 3
    assert (config.rate_limiter, config.rate_window, config.rate_burst) == (
        "sliding-log",
        10.0,
        3.0,
    )
    assert (config.concurrency_limit, config.concurrency_status) == (4, 503)
    assert (config.quota, config.quota_period) == (100, 3600.0)
    assert (config.retry_after_format, config.rate_headers) == ("http-date", "spring")


def test_a_bad_limiter_option_stops_the_process_before_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run_from_args(["--rate-limiter", "gcra"])
    assert stopped.value.code == 2
    assert "rate_limiter" in capsys.readouterr().err


# -- the limiter a benchmark measures against ---------------------------------------------------


def test_config_makes_the_limiter_it_enforces() -> None:
    assert GatewayConfig().make_rate_limiter() is None
    fixed = GatewayConfig(rps_limit=2.9, rate_window=10).make_rate_limiter()
    assert fixed is not None
    assert fixed.admit(0.0).limit == 29
    assert fixed.capacity(0.0, 60.0) == 29 * 6
    bucket = GatewayConfig(rps_limit=100, rate_limiter="token-bucket").make_rate_limiter()
    assert bucket is not None
    assert bucket.capacity(0.0, 10.0) == 100 + 1_000 - 1
    tiny = GatewayConfig(rps_limit=1.5, rate_window=0.1, rate_limiter="sliding-log")
    assert tiny.make_rate_limiter().admit(0.0).limit == 1  # type: ignore[union-attr]
    assert GatewayConfig(quota=5).make_quota() is not None
    assert GatewayConfig(concurrency_limit=5).make_concurrency_cap() is not None
