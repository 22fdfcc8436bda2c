"""Counters in Python and at /__stats, the reset, and /__config, /__revoke, /__terms."""

from __future__ import annotations

import orjson
import pytest
from fakewire import SAMPLE_BODIES, Wire, wait_for_window_start

from maxa_async.testing import FakeGateway, GatewayConfig, GatewayStats


async def test_counters_after_a_mixed_session(wire: Wire, gw: FakeGateway) -> None:
    await wire.login()
    await wire.token({"grant_type": "password", "username": "x", "password": "y"})
    await wire.refresh_grant()
    for operation in SAMPLE_BODIES:
        await wire.call(operation)
    await wire.validate()
    await wire.call("Terminology", {"terminologyId": "eRx", "codedString": "1"})  # not found
    await wire.call("ValidateCts", {"DoCodedText": 1})  # 400
    await wire.validate(token="bogus")  # 401
    stats = gw.stats
    assert stats.password_grants == 1
    assert stats.refresh_grants == 1
    assert stats.rejected_grants == 1
    assert stats.token_requests == 3
    assert stats.token_responses_by_status == {200: 2, 400: 1}
    assert stats.requests == 11
    assert stats.requests_by_operation == {
        "Terminology": 2,
        "SearchTerminology": 1,
        "ValidateCts": 4,
        "CtsTerminologies": 1,
        "TerminologyValueByVersion": 1,
        "TerminologiesTermByVersion": 1,
        "TerminologyVersions": 1,
    }
    assert stats.responses_by_status == {200: 9, 400: 1, 401: 1}
    assert stats.not_found == 1
    assert stats.rate_limited == stats.revocations == stats.dropped == 0
    assert stats.in_flight == 0
    assert stats.peak_in_flight == 1


async def test_stats_endpoint_matches_python_and_needs_no_credentials(
    wire: Wire, gw: FakeGateway
) -> None:
    await wire.validate()
    await wire.validate(token="bogus")
    over_http = await wire.stats()
    assert over_http["requests"] == 2
    assert over_http["responses_by_status"] == {"200": 1, "401": 1}
    assert over_http["requests_by_operation"] == {"ValidateCts": 2}
    assert over_http == orjson.loads(
        orjson.dumps(gw.stats.as_dict(), option=orjson.OPT_NON_STR_KEYS)
    )
    assert set(over_http) == {
        "password_grants",
        "refresh_grants",
        "rejected_grants",
        "token_requests",
        "token_responses_by_status",
        "requests",
        "requests_by_operation",
        "responses_by_status",
        "not_found",
        "rate_limited",
        "revocations",
        "dropped",
        "client_closed",
        "in_flight",
        "peak_in_flight",
        "cap_holds",
        "cap_hold_seconds",
    }
    # control endpoints are not counted
    assert (await wire.stats())["requests"] == 2


async def test_reset_over_http_and_in_python(wire: Wire, gw: FakeGateway) -> None:
    await wire.validate()
    reply = await wire.raw("POST", "/__stats/reset")
    assert reply.status == 200
    assert reply.json()["requests"] == 0
    assert gw.stats == GatewayStats()
    await wire.validate()  # the token survives a reset
    assert gw.stats.requests == 1
    gw.reset_stats()
    assert gw.stats.as_dict() == GatewayStats().as_dict()


async def test_config_endpoint_get_and_post(wire: Wire, gw: FakeGateway) -> None:
    got = (await wire.raw("GET", "/__config")).json()
    assert got == GatewayConfig().as_dict()
    assert set(got) == set(GatewayConfig.knob_names())
    reply = await wire.raw("POST", "/__config", data=orjson.dumps({"rps_limit": 1, "latency": 0}))
    assert reply.status == 200
    assert reply.json()["rps_limit"] == 1.0
    assert gw.config.rps_limit == 1.0
    await wire.login()
    wait_for_window_start()
    assert [(await wire.validate()).status for _ in range(2)] == [200, 429]


@pytest.mark.parametrize(
    "body",
    [
        b'{"no_such_knob": 1}',
        b'{"error_rate": 2}',
        b'{"token_ttl": "fast"}',
        b'{"rps_limit": 0.5}',
        b'{"error_statuses": [418]}',
        b'{"error_rate": 0.5, "blocked_ip": "yes"}',
        b"[1, 2]",
        b"not json",
    ],
)
async def test_config_endpoint_rejects_bad_knobs_atomically(
    wire: Wire, gw: FakeGateway, body: bytes
) -> None:
    reply = await wire.raw("POST", "/__config", data=body)
    assert reply.status == 400
    assert "error" in reply.json()
    assert gw.config == GatewayConfig()


async def test_revoke_endpoint(wire: Wire, gw: FakeGateway) -> None:
    await wire.login()
    reply = await wire.raw("POST", "/__revoke")
    assert reply.json() == {"revocations": 1}
    assert (await wire.validate()).status == 401


async def test_terms_endpoint_adds_terms(wire: Wire) -> None:
    payload = {
        "terminology": "ContactType",
        "terms": [{"code": "15", "value": "تلفن اضطراری", "created": "1403/01/01"}],
    }
    reply = await wire.raw("POST", "/__terms", data=orjson.dumps(payload))
    assert reply.json() == {"added": 1}
    body = {"terminologyId": "contacttype", "codedString": "15"}
    assert orjson.loads((await wire.call("Terminology", body)).data) == "تلفن اضطراری"
    bad = await wire.raw("POST", "/__terms", data=b'{"terminology": "x"}')
    assert bad.status == 400


async def test_peak_in_flight_resets_to_current(wire: Wire, gw: FakeGateway) -> None:
    await wire.validate()
    assert gw.stats.peak_in_flight == 1
    gw.reset_stats()
    assert gw.stats.peak_in_flight == 0
