"""No secret leaks: a full run at DEBUG, with every kind of failure, is searched for them.

The run goes through a relay that records the token endpoint's real answers, so the
search knows every access and refresh token the gateway ever issued. Searched: every
log record (message, arguments, exception text) of every logger at DEBUG, the str, repr
and formatted traceback of every exception the caller saw, the reprs of the client,
its credentials, its tokens and token requests, ``client.stats.as_dict()``, every
``ValidationOutcome``; and the working and home directories stay empty (nothing is
written to disk).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import traceback
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web

import maxa_async as maxa
from maxa_async.oauth import password_grant, refresh_grant
from maxa_async.testing import FakeGateway, GatewayConfig

from ._proxy import FaultProxy

CLIENT_SECRET = "cs-5e3f1c9a-client-secret"
PASSWORD = "pw-Zr7!q2-hospital-password"
WRONG_PASSWORD = "pw-wrong-8841-guess"
WRONG_SECRET = "cs-wrong-0097-secret"

RELIGION = ("thritaEHR.Religion", "1")


def _tokens(answers: list[bytes]) -> set[str]:
    found: set[str] = set()
    for raw in answers:
        try:
            payload = json.loads(raw)
        except ValueError:
            continue
        if isinstance(payload, dict):
            for key in ("access_token", "refresh_token"):
                if isinstance(payload.get(key), str):
                    found.add(payload[key])
    return found


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(repr(record.msg))
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
        if record.exc_text:
            texts.append(record.exc_text)
    return texts


def _exception_texts(errors: list[BaseException]) -> list[str]:
    texts = []
    for exc in errors:
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        texts += [repr(vars(exc))]
    return texts


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _call(client: maxa.MaxaClient, errors: list[BaseException]) -> Any:
    try:
        return await client.terminology(*RELIGION)
    except maxa.MaxaError as exc:
        errors.append(exc)
        return exc


async def test_a_full_debug_run_leaks_no_secret(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    caplog.set_level(logging.DEBUG)  # root
    caplog.set_level(logging.DEBUG, logger="maxa_async")

    config = GatewayConfig(
        seed=5,
        client_secret=CLIENT_SECRET,
        password=PASSWORD,
        token_ttl=1.0,
        refresh_token_ttl=2.5,
    )
    errors: list[BaseException] = []
    shown: list[str] = []
    async with FakeGateway(config) as gw, FaultProxy(gw.base_url) as relay:
        creds = gw.credentials
        policy = maxa.RetryPolicy(attempts=2, backoff=False, deadline=5.0)
        async with maxa.MaxaClient(
            creds, base_url=relay.base_url, retry=policy, refresh_fraction=0.5
        ) as client:
            # password grant, then refresh-ahead grants while calls go on
            assert await client.terminology(*RELIGION) == "اسلام"
            for _ in range(4):
                await asyncio.sleep(0.3)
                assert await client.terminology(*RELIGION) == "اسلام"
            # revocation: 401s, replays with a refreshed token
            gw.revoke_all_tokens()
            outcomes = [
                o
                async for o in client.validate_many(
                    maxa.CodedText(v, "ContactType", "1") for v in ("تلفن منزل", "x", "y")
                )
            ]
            assert [o.valid for o in outcomes] == [True, False, False]
            shown += [repr(o) for o in outcomes]
            # refresh rejected: the refresh token outlives nothing; password grant again
            await asyncio.sleep(2.6)
            gw.revoke_all_tokens()
            assert await client.terminology(*RELIGION) == "اسلام"
            # every kind of failure on MAXA calls
            for knobs in (
                {"blocked_ip": True},
                {"permanent_429": True},
                {"rps_limit": 1.0},
                {"error_rate": 1.0, "error_statuses": (500, 503, 504, 520)},
                {"drop_rate": 1.0},
                {"html_rate": 1.0},
            ):
                gw.config.update(**knobs)
                await asyncio.gather(*(_call(client, errors) for _ in range(3)))
                gw.config.update(
                    blocked_ip=False,
                    permanent_429=False,
                    rps_limit=None,
                    error_rate=0.0,
                    drop_rate=0.0,
                    html_rate=0.0,
                )
            for fault in ("410", "400", "401", "truncated-json", "not-json-200"):
                relay.arm(fault, times=2)
                await _call(client, errors)
                relay.disarm()
            outcomes = [
                o
                async for o in client.validate_many(
                    [maxa.CodedText("v", "ContactType", "1"), "not a coded text"]  # type: ignore[list-item]
                )
            ]
            shown += [repr(o) for o in outcomes]
            errors += [o.error for o in outcomes if o.error is not None]
            # the token endpoint failing: 5xx, then blocked
            gw.revoke_all_tokens()
            gw.config.token_error_rate = 1.0
            await _call(client, errors)
            gw.config.token_error_rate = 0.0
            gw.config.blocked_ip = True
            gw.revoke_all_tokens()
            await _call(client, errors)
            gw.config.blocked_ip = False

            token = client.tokens.token
            shown += [
                repr(client),
                str(client),
                repr(creds),
                str(creds),
                repr(token),
                str(token),
                repr(password_grant(creds)),
                repr(refresh_grant(creds, "rt-" + CLIENT_SECRET)),
                json.dumps(client.stats.as_dict(), ensure_ascii=False),
                repr(client.stats.__dict__),
                repr(client.limiter.__dict__),
            ]

        # wrong password, wrong client secret: rejected grants
        for bad in (
            attrs.evolve(creds, password=WRONG_PASSWORD),
            attrs.evolve(creds, client_secret=WRONG_SECRET),
        ):
            async with maxa.MaxaClient(bad, base_url=relay.base_url, retry=policy) as other:
                await _call(other, errors)
                shown += [repr(other), repr(bad), json.dumps(other.stats.as_dict())]

        issued = _tokens(relay.token_answers)
        stats = gw.stats

    # the run did what it claims to have done
    assert stats.password_grants >= 2 and stats.refresh_grants >= 2
    assert stats.rejected_grants >= 3  # one refresh, the wrong password, the wrong secret
    assert stats.revocations >= 3
    kinds = {type(e).__name__ for e in errors}
    assert {
        "ForbiddenError",
        "RateLimitedError",
        "ServiceError",
        "TransportError",
        "ProtocolError",
        "HttpsRequiredError",
        "BadRequestError",
        "AuthenticationError",
        "InvalidInputError",
    } <= kinds, kinds
    assert len(issued) >= 8
    assert any(r.name.startswith("maxa_async") for r in caplog.records)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)

    basic = base64.b64encode(f"{creds.client_id}:{CLIENT_SECRET}".encode()).decode()
    secrets = {CLIENT_SECRET, PASSWORD, WRONG_PASSWORD, WRONG_SECRET, basic, *issued}
    haystacks = _record_texts(caplog.records) + _exception_texts(errors) + shown
    for secret in secrets:
        for text in haystacks:
            assert secret not in text, f"a secret leaked into: {text[:300]!r}"
    # nothing written to disk
    assert _listing(tmp_path) == ["home"]
    assert _listing(home) == []


async def test_credentials_from_env_keep_secrets_out_of_errors() -> None:
    env = {
        "MAXA_CLIENT_ID": "cid",
        "MAXA_CLIENT_SECRET": CLIENT_SECRET,
        "MAXA_USERNAME": "user",
        "MAXA_PASSWORD": PASSWORD,
        "MAXA_PID": "pid\n",
    }
    creds = maxa.Credentials.from_env(env)  # surrounding white space is stripped
    assert creds.pid == "pid"
    for text in (repr(creds), str(creds), repr(attrs.asdict(creds).keys())):
        assert CLIENT_SECRET not in text and PASSWORD not in text
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.Credentials.from_env({**env, "MAXA_PASSWORD": " "})
    assert info.value.field == "MAXA_PASSWORD"
    assert CLIENT_SECRET not in str(info.value) and CLIENT_SECRET not in repr(info.value)
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.Credentials("cid", CLIENT_SECRET, "user", PASSWORD, "p\r\nid")
    assert info.value.field == "pid"
    assert PASSWORD not in str(info.value) and CLIENT_SECRET not in str(info.value)


@pytest.mark.parametrize("access_token", ["abc\r\nX-Injected: 1", "abc\n", "tok\x00", "é", "a b"])
async def test_a_token_that_cannot_be_a_header_is_a_protocol_error(access_token: str) -> None:
    """A token endpoint answering a token with CR/LF (header injection), NUL, non-ASCII or a
    space: the grant fails as a ProtocolError; nothing is sent with it, and validate_many
    reports it per item instead of dying with aiohttp's bare ValueError."""
    sent: list[str] = []

    async def token(request: web.Request) -> web.Response:
        return web.json_response(
            {"access_token": access_token, "refresh_token": "r", "expires_in": 60}
        )

    async def operation(request: web.Request) -> web.Response:
        sent.append(request.path)
        return web.json_response({"result": {"data": "true"}, "status": {"statusCode": 200}})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_route("*", "/{tail:.*}", operation)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        creds = maxa.Credentials("cid", CLIENT_SECRET, "user", PASSWORD, "pid")
        policy = maxa.RetryPolicy(attempts=1)
        async with maxa.MaxaClient(creds, base_url=url, retry=policy) as client:
            with pytest.raises(maxa.ProtocolError) as info:
                await client.terminology(*RELIGION)
            items = [maxa.CodedText("v", "eRx", str(code)) for code in range(3)]
            outcomes = [o async for o in client.validate_many(items)]
    finally:
        await runner.cleanup()
    assert info.value.operation == "token"
    assert access_token not in str(info.value) and access_token not in repr(info.value)
    assert [type(o.error) for o in outcomes] == [maxa.ProtocolError] * 3
    assert sent == []
