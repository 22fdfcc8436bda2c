"""The fake's /oauth/token: grants, failures, lifetimes, refresh behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fakewire import Wire

from maxa_async.testing import DEFAULT_CLIENT_ID, FakeGateway

INVALID_GRANT = {"error": "invalid_grant", "error_description": "Bad credentials"}


async def test_password_grant_success_shape(wire: Wire, gw: FakeGateway) -> None:
    cfg = gw.config
    reply = await wire.token(
        {"grant_type": "password", "username": cfg.username, "password": cfg.password}
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["requestId"]
    body = reply.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["scope"] == "trust read write"
    assert body["expires_in"] == 899
    assert body["access_token"] != body["refresh_token"]
    assert gw.stats.password_grants == 1
    assert gw.stats.token_responses_by_status == {200: 1}


async def test_default_credentials_are_documented(gw: FakeGateway) -> None:
    creds = gw.credentials
    assert (creds.client_id, creds.client_secret, creds.username, creds.password, creds.pid) == (
        "maxa-test-client",
        "maxa-test-secret",
        "maxa-test-user",
        "maxa-test-password",
        "maxa-test-pid",
    )
    assert gw.base_url.startswith("http://127.0.0.1:")
    assert not gw.base_url.endswith("/")


async def test_wrong_password_is_invalid_grant(wire: Wire, gw: FakeGateway) -> None:
    reply = await wire.token(
        {"grant_type": "password", "username": gw.config.username, "password": "nope"}
    )
    assert reply.status == 400
    assert reply.json() == INVALID_GRANT
    reply = await wire.token({"grant_type": "password", "password": gw.config.password})
    assert reply.status == 400
    assert reply.json() == INVALID_GRANT
    assert gw.stats.rejected_grants == 2
    assert gw.stats.password_grants == 0


async def test_bad_client_is_401_unauthorized(wire: Wire, gw: FakeGateway) -> None:
    form = {"grant_type": "password", "username": gw.config.username, "password": "x"}
    wrong = await wire.token(form, client=(DEFAULT_CLIENT_ID, "wrong-secret"))
    assert wrong.status == 401
    assert wrong.json()["error"] == "unauthorized"
    missing = await wire.raw("POST", "/oauth/token", data=form)
    assert missing.status == 401
    assert missing.json()["error"] == "unauthorized"
    garbage = await wire.raw(
        "POST", "/oauth/token", data=form, headers={"Authorization": "Basic !!!"}
    )
    assert garbage.status == 401
    assert gw.stats.rejected_grants == 3


async def test_missing_and_unsupported_grant_type(wire: Wire, gw: FakeGateway) -> None:
    missing = await wire.token({"username": "u"})
    assert (missing.status, missing.json()["error"]) == (400, "invalid_request")
    other = await wire.token({"grant_type": "client_credentials"})
    assert (other.status, other.json()["error"]) == (400, "unsupported_grant_type")
    as_json = await wire.raw(
        "POST",
        "/oauth/token",
        data=b'{"grant_type": "password"}',
        headers={
            "Authorization": "Basic bWF4YS10ZXN0LWNsaWVudDptYXhhLXRlc3Qtc2VjcmV0",
            "Content-Type": "application/json",
        },
    )
    assert as_json.status == 400  # the form body is what counts


async def test_get_on_token_endpoint_is_405(wire: Wire) -> None:
    reply = await wire.raw("GET", "/oauth/token")
    assert reply.status == 405
    assert reply.json()["error"] == "method_not_allowed"
    assert reply.headers["requestId"]


async def test_refresh_grant_keeps_refresh_token_and_old_access(
    wire: Wire, gw: FakeGateway
) -> None:
    first = await wire.login()
    refresh = wire.refresh
    reply = await wire.refresh_grant()
    assert reply.status == 200
    body = reply.json()
    assert body["refresh_token"] == refresh
    assert body["access_token"] != first
    assert body["expires_in"] == 899
    # by default the previous access token still works
    assert (await wire.validate(token=first)).status == 200
    assert (await wire.validate()).status == 200
    assert gw.stats.refresh_grants == 1
    assert gw.stats.password_grants == 1


async def test_refresh_invalidates_old(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(refresh_invalidates_old=True)
    wire = wire_for(gw)
    first = await wire.login()
    assert (await wire.validate()).status == 200
    assert (await wire.refresh_grant()).status == 200
    old = await wire.validate(token=first)
    assert old.status == 401
    assert old.json() == {"status": 0, "code": 401, "msg": "", "violations": []}
    assert (await wire.validate()).status == 200


async def test_rotate_refresh_token(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(rotate_refresh_token=True)
    wire = wire_for(gw)
    await wire.login()
    old_refresh = wire.refresh
    assert old_refresh is not None
    reply = await wire.refresh_grant()
    assert reply.status == 200
    assert reply.json()["refresh_token"] != old_refresh
    again = await wire.refresh_grant(old_refresh)
    assert (again.status, again.json()) == (400, INVALID_GRANT)
    assert (await wire.refresh_grant()).status == 200


async def test_unknown_refresh_token(wire: Wire, gw: FakeGateway) -> None:
    reply = await wire.refresh_grant("not-a-token")
    assert (reply.status, reply.json()) == (400, INVALID_GRANT)
    assert gw.stats.rejected_grants == 1


async def test_access_token_expires_after_ttl(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(token_ttl=0.2)
    wire = wire_for(gw)
    reply = await wire.token(
        {"grant_type": "password", "username": gw.config.username, "password": gw.config.password}
    )
    assert reply.json()["expires_in"] == 1  # ceil(0.2)
    wire.access = reply.json()["access_token"]
    assert (await wire.validate()).status == 200
    await asyncio.sleep(0.25)
    expired = await wire.validate()
    assert expired.status == 401
    assert expired.json()["code"] == 401
    # the refresh token outlives it
    assert (await wire.refresh_grant(reply.json()["refresh_token"])).status == 200
    assert (await wire.validate()).status == 200


async def test_refresh_token_expires_after_its_ttl(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(refresh_token_ttl=0.2)
    wire = wire_for(gw)
    await wire.login()
    await asyncio.sleep(0.25)
    reply = await wire.refresh_grant()
    assert (reply.status, reply.json()) == (400, INVALID_GRANT)


async def test_reuse_access_token_counts_down(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(reuse_access_token=True, token_ttl=3)
    wire = wire_for(gw)
    first = await wire.login()
    await asyncio.sleep(0.05)
    reply = await wire.token(
        {"grant_type": "password", "username": gw.config.username, "password": gw.config.password}
    )
    assert reply.json()["access_token"] == first
    assert reply.json()["expires_in"] == 3  # ceil(2.95)
    gw.revoke_all_tokens()
    assert await wire.login() != first


async def test_blocked_ip_blocks_token_endpoint(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(blocked_ip=True)
    wire = wire_for(gw)
    reply = await wire.token({"grant_type": "password"})
    assert reply.status == 403
    assert reply.json() == {
        "status": {"statusCode": 403, "message": "Your origin IP is permanently blocked!"}
    }


async def test_token_error_rate(
    maxa_gateway_factory: Any, wire_for: Callable[[FakeGateway], Wire]
) -> None:
    gw = await maxa_gateway_factory(token_error_rate=1.0, error_statuses=[503])
    wire = wire_for(gw)
    reply = await wire.token({"grant_type": "password"})
    assert reply.status == 503
    assert reply.json() == {"status": {"statusCode": 503, "message": "Service provider error!"}}
    gw.config.token_error_rate = 0.0
    assert isinstance(await wire.login(), str)
    assert gw.stats.token_responses_by_status == {503: 1, 200: 1}
    assert gw.stats.token_requests == 2
