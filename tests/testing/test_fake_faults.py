"""Each misbehaviour knob, with exact, deterministic counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from fakewire import Wire, wait_for_window_start

from maxa_async.testing import ERROR_STATUSES, FakeGateway

RATE_LIMITED = {"status": {"statusCode": 429, "message": "Too many requests or Access denied!"}}

Factory = Any
WireFor = Callable[[FakeGateway], Wire]


async def test_rps_limit_exact_count_in_one_window(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(rps_limit=10)
    wire = wire_for(gw)
    await wire.login()
    wait_for_window_start()
    replies = [await wire.validate() for _ in range(15)]
    statuses = [reply.status for reply in replies]
    assert statuses == [200] * 10 + [429] * 5
    for reply in replies[10:]:
        assert reply.json() == RATE_LIMITED
        assert reply.headers["Retry-After"] == "1"
        assert reply.headers["requestId"]
    assert gw.stats.rate_limited == 5
    assert gw.stats.responses_by_status == {200: 10, 429: 5}
    # the next wall-clock second opens a new window
    await asyncio.sleep(1.0 - time.time() % 1.0 + 0.02)
    assert (await wire.validate()).status == 200


async def test_rps_limit_under_concurrency(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(rps_limit=20)
    wire = wire_for(gw)
    await wire.login()
    wait_for_window_start()
    replies = await asyncio.gather(*(wire.validate() for _ in range(30)))
    assert sorted(reply.status for reply in replies) == [200] * 20 + [429] * 10


async def test_rps_limit_without_retry_after_and_changed_while_running(
    wire: Wire, gw: FakeGateway
) -> None:
    await wire.login()
    gw.config.rps_limit = 2
    gw.config.retry_after = False
    wait_for_window_start()
    replies = [await wire.validate() for _ in range(3)]
    assert [reply.status for reply in replies] == [200, 200, 429]
    assert "Retry-After" not in replies[2].headers
    gw.config.rps_limit = None
    assert (await wire.validate()).status == 200


async def test_rate_limit_comes_after_authentication(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(permanent_429=True)
    wire = wire_for(gw)
    assert (await wire.validate(token="bogus")).status == 401


async def test_permanent_429(maxa_gateway_factory: Factory, wire_for: WireFor) -> None:
    gw = await maxa_gateway_factory(permanent_429=True)
    wire = wire_for(gw)
    for _ in range(3):
        reply = await wire.validate()
        assert (reply.status, reply.json()) == (429, RATE_LIMITED)
        assert "Retry-After" not in reply.headers
    assert gw.stats.rate_limited == 3
    assert gw.stats.password_grants == 1  # the token endpoint is not affected


async def test_blocked_ip(maxa_gateway_factory: Factory, wire_for: WireFor) -> None:
    gw = await maxa_gateway_factory()
    wire = wire_for(gw)
    await wire.login()
    gw.config.blocked_ip = True
    reply = await wire.call("Terminology")
    assert reply.status == 403
    assert reply.json() == {
        "status": {"statusCode": 403, "message": "Your origin IP is permanently blocked!"}
    }
    assert (await wire.validate(token="bogus")).status == 403
    assert (await wire.raw("GET", "/__stats")).status == 200  # control endpoints stay open
    assert gw.stats.responses_by_status == {403: 2}


@pytest.mark.parametrize("code", sorted(ERROR_STATUSES))
async def test_error_rate_one_gives_the_chosen_status(
    maxa_gateway_factory: Factory, wire_for: WireFor, code: int
) -> None:
    gw = await maxa_gateway_factory(error_rate=1.0, error_statuses=[code])
    wire = wire_for(gw)
    reply = await wire.validate()
    assert reply.status == code
    assert reply.json() == {"status": {"statusCode": code, "message": ERROR_STATUSES[code]}}
    assert reply.headers["requestId"]


async def test_error_retry_after_goes_on_the_503s_only(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(
        error_rate=1.0, error_statuses=[500, 503], error_retry_after=2.5, seed=5
    )
    wire = wire_for(gw)
    replies = [await wire.validate() for _ in range(20)]
    by_status = {reply.status: reply for reply in replies}
    assert set(by_status) == {500, 503}
    assert all(r.headers.get("Retry-After") == "3" for r in replies if r.status == 503)
    assert all("Retry-After" not in r.headers for r in replies if r.status == 500)
    gw.config.update(retry_after_format="fractional")  # changeable while it runs
    gw.config.error_statuses = (503,)
    assert (await wire.validate()).headers["Retry-After"] == "2.500"
    gw.config.retry_after_format = "milliseconds"  # the same headers as its 429s
    said = (await wire.validate()).headers
    assert (said["Retry-After"], said["Retry-After-Ms"]) == ("3", "2500")
    gw.config.error_retry_after = None
    assert "Retry-After" not in (await wire.validate()).headers


async def test_error_rate_draws_from_all_default_statuses(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(error_rate=1.0, seed=3)
    wire = wire_for(gw)
    statuses = {(await wire.validate()).status for _ in range(40)}
    assert statuses == {500, 503, 504, 520}
    assert sum(gw.stats.responses_by_status.values()) == 40


async def test_faults_are_deterministic_under_a_seed(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    async def run(seed: int) -> list[int]:
        gw = await maxa_gateway_factory(error_rate=0.5, html_rate=0.2, seed=seed)
        wire = wire_for(gw)
        return [(await wire.validate()).status for _ in range(40)]

    first, again, other = await run(42), await run(42), await run(43)
    assert first == again
    assert first != other
    assert 200 in first and 502 in first and set(first) - {200, 502}


async def test_changing_the_seed_reseeds(wire: Wire, gw: FakeGateway) -> None:
    gw.config.update(error_rate=0.5, seed=9)
    first = [(await wire.validate()).status for _ in range(20)]
    gw.config.seed = 10
    gw.config.seed = 9
    assert [(await wire.validate()).status for _ in range(20)] == first


async def test_drop_rate_one_closes_without_a_response(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(drop_rate=1.0)
    wire = wire_for(gw)
    await wire.login()  # the token endpoint is not affected
    for _ in range(2):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await wire.validate()
    assert gw.stats.dropped == 2
    assert gw.stats.requests == 2
    assert gw.stats.responses_by_status == {}
    gw.config.drop_rate = 0.0
    assert (await wire.validate()).status == 200


async def test_html_rate_one_sends_a_proxy_page(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(html_rate=1.0)
    wire = wire_for(gw)
    reply = await wire.validate(token="not-even-checked")
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"<title>502 Bad Gateway</title>" in reply.body
    assert reply.headers["requestId"]


async def test_latency_fixed(maxa_gateway_factory: Factory, wire_for: WireFor) -> None:
    gw = await maxa_gateway_factory(latency=0.2)
    wire = wire_for(gw)
    await wire.login()
    started = time.perf_counter()
    assert (await wire.validate()).status == 200
    assert time.perf_counter() - started >= 0.2


async def test_latency_jitter_is_bounded(maxa_gateway_factory: Factory, wire_for: WireFor) -> None:
    gw = await maxa_gateway_factory(latency=0.05, latency_jitter=0.05)
    wire = wire_for(gw)
    await wire.login()
    for _ in range(5):
        started = time.perf_counter()
        await wire.validate()
        assert time.perf_counter() - started >= 0.05


async def test_latency_is_concurrent_and_shows_in_peak_in_flight(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(latency=0.2)
    wire = wire_for(gw)
    await wire.login()
    replies = await asyncio.gather(*(wire.validate() for _ in range(10)))
    assert all(reply.status == 200 for reply in replies)
    assert gw.stats.peak_in_flight == 10
    assert gw.stats.in_flight == 0


async def test_revoke_every(maxa_gateway_factory: Factory, wire_for: WireFor) -> None:
    gw = await maxa_gateway_factory(revoke_every=3)
    wire = wire_for(gw)
    for generation in range(2):
        await wire.login()
        assert [(await wire.validate()).status for _ in range(4)] == [200, 200, 200, 401]
        assert gw.stats.revocations == generation + 1
    # a refresh token survives revocation
    assert (await wire.refresh_grant()).status == 200
    assert (await wire.validate()).status == 200


async def test_revoke_all_tokens_by_hand(wire: Wire, gw: FakeGateway) -> None:
    await wire.login()
    assert (await wire.validate()).status == 200
    gw.revoke_all_tokens()
    assert (await wire.validate()).status == 401
    assert gw.stats.revocations == 1


async def test_a_client_hanging_up_ends_its_request(
    maxa_gateway_factory: Factory, wire_for: WireFor
) -> None:
    gw = await maxa_gateway_factory(latency=0.5)
    wire = wire_for(gw)
    await wire.login()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wire.validate(), timeout=0.1)
    for _ in range(50):  # bounded: at most ~0.5 s
        if gw.stats.client_closed:
            break
        await asyncio.sleep(0.01)
    assert gw.stats.client_closed == 1
    assert gw.stats.in_flight == 0
    assert gw.stats.responses_by_status == {}
