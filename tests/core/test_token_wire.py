"""The token endpoint's wire: grant requests and token responses (oauth.py)."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import pytest

from maxa_async.errors import (
    AuthenticationError,
    ForbiddenError,
    MaxaError,
    ProtocolError,
    RateLimitedError,
    ServiceError,
)
from maxa_async.models import Credentials
from maxa_async.oauth import TOKEN_PATH, parse_token_response, password_grant, refresh_grant

from . import _samples as s

CREDS = Credentials(
    client_id="hospital-7",
    client_secret="sécret:with colon",
    username="user@clinic",
    password="p&ss=w rd+%",
    pid="pid-1",
)
GOOD = s.load("token.password.response")


def _body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_password_grant_form_and_basic_auth() -> None:
    request = password_grant(CREDS)
    assert (request.method, request.path, request.grant_type) == ("POST", TOKEN_PATH, "password")
    assert parse_qsl(request.body.decode("ascii"), strict_parsing=True) == [
        ("grant_type", "password"),
        ("username", "user@clinic"),
        ("password", "p&ss=w rd+%"),
    ]
    scheme, encoded = request.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode("utf-8") == "hospital-7:sécret:with colon"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_refresh_grant_form() -> None:
    request = refresh_grant(CREDS, "f998a112-b166-4177-8e2e-c2d89fedb352")
    assert request.grant_type == "refresh_token"
    assert parse_qsl(request.body.decode("ascii")) == [
        ("grant_type", "refresh_token"),
        ("refresh_token", "f998a112-b166-4177-8e2e-c2d89fedb352"),
    ]
    assert request.headers["Authorization"] == password_grant(CREDS).headers["Authorization"]


def test_token_requests_never_show_secrets() -> None:
    for request in (password_grant(CREDS), refresh_grant(CREDS, "refresh-secret-1")):
        shown = repr(request) + str(request)
        for secret in ("sécret", "p&ss", "refresh-secret-1", request.headers["Authorization"]):
            assert secret not in shown
        assert request.grant_type in shown


def test_defaults_for_optional_fields() -> None:
    token = parse_token_response(200, {}, _body({"access_token": "a", "expires_in": 60}), now=5.0)
    assert token.token_type == "bearer"
    assert token.refresh_token is None and token.scope is None
    assert (token.lifetime, token.expires_at) == (60.0, 65.0)
    empty_refresh = parse_token_response(200, {}, _body({**GOOD, "refresh_token": ""}), now=0.0)
    assert empty_refresh.refresh_token is None
    odd_scope = parse_token_response(200, {}, _body({**GOOD, "scope": ["read"]}), now=0.0)
    assert odd_scope.scope is None


def test_snake_case_wins_when_both_spellings_are_present() -> None:
    both = {**GOOD, "accessToken": "other", "expiresIn": 5}
    token = parse_token_response(200, {}, _body(both), now=0.0)
    assert token.access_token == GOOD["access_token"] and token.lifetime == 763.0


@pytest.mark.parametrize(
    "payload",
    [
        {"token_type": "bearer", "expires_in": 763},  # no access_token
        {**GOOD, "access_token": ""},
        {**GOOD, "access_token": 12345},
        {**GOOD, "refresh_token": 12345},
        {**GOOD, "token_type": 1},
        {k: v for k, v in GOOD.items() if k != "expires_in"},
        {**GOOD, "expires_in": 0},
        {**GOOD, "expires_in": -5},
        {**GOOD, "expires_in": True},
        {**GOOD, "expires_in": "soon"},
        {**GOOD, "expires_in": "NaN"},
        {**GOOD, "expires_in": "inf"},
        {**GOOD, "expires_in": [763]},
        [GOOD],
        "token",
    ],
    ids=repr,
)
def test_unreadable_token_responses_are_protocol_errors(payload: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_token_response(200, {"requestId": "t-1"}, _body(payload), now=0.0)
    assert (caught.value.operation, caught.value.request_id) == ("token", "t-1")
    assert caught.value.retryable is False


def test_tokens_never_appear_in_token_errors() -> None:
    payload = {**GOOD, "expires_in": "soon"}
    with pytest.raises(ProtocolError) as caught:
        parse_token_response(200, {}, _body(payload), now=0.0)
    assert GOOD["access_token"] not in str(caught.value) + repr(caught.value)
    assert GOOD["refresh_token"] not in str(caught.value) + repr(caught.value)


@pytest.mark.parametrize(
    "error",
    ["invalid_grant", "invalid_token", "unauthorized", "invalid_client", "unauthorized_client"],
)
def test_rejected_grants_are_authentication_errors_whatever_the_status(error: str) -> None:
    for status in (200, 400, 401, 403):
        with pytest.raises(AuthenticationError) as caught:
            parse_token_response(status, {}, _body({"error": error}), now=0.0)
        assert error in str(caught.value) and caught.value.status == status


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (
            401,
            b'{"status": 0, "code": 401, "msg": "", "violations": []}',
            AuthenticationError,
            False,
        ),
        (
            200,
            b'{"status": 0, "code": 401, "msg": "", "violations": []}',
            AuthenticationError,
            False,
        ),
        (200, b'{"status": 0, "code": 429, "msg": "", "violations": []}', RateLimitedError, True),
        (403, b"", ForbiddenError, False),
        (500, b'{"error": "server_error"}', ServiceError, True),
        (503, b"<html>Service Unavailable</html>", ServiceError, True),
        (200, b"<html>login page</html>", ProtocolError, False),
    ],
)
def test_gateway_failures_at_the_token_endpoint(
    status: int, body: bytes, cls: type[MaxaError], retryable: bool
) -> None:
    with pytest.raises(cls) as caught:
        parse_token_response(status, {"requestId": "t-2"}, body, now=0.0)
    assert type(caught.value) is cls
    assert caught.value.retryable is retryable
    assert (caught.value.operation, caught.value.request_id) == ("token", "t-2")


def test_429_at_the_token_endpoint_carries_retry_after() -> None:
    with pytest.raises(RateLimitedError) as caught:
        parse_token_response(429, {"Retry-After": "3"}, b"", now=0.0)
    assert caught.value.retry_after == 3.0 and caught.value.retryable is True
    assert "permission" in str(caught.value)
