"""The token endpoint, sans-I/O: build grant requests, parse token responses.

``POST /oauth/token`` with HTTP Basic client credentials and a form body, for the
password grant and the refresh_token grant. Responses come snake_case in the guide's
samples and camelCase in one of its tables; ``expires_in`` is typed string but sent as a
number. Both are accepted.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import attrs

from .envelope import header, loads, parse_retry_after
from .errors import (
    InvalidInputError,
    ProtocolError,
    error_for_token_answer,
    quote_detail,
    rule_for_token_answer,
)
from .models import Credentials, Token

__all__ = [
    "TOKEN_PATH",
    "TokenRequest",
    "parse_token_response",
    "password_grant",
    "refresh_grant",
]

TOKEN_PATH: Final = "/oauth/token"
OPERATION: Final = "token"


@attrs.frozen(repr=False)
class TokenRequest:
    """A grant request. Its repr names the grant only: the body holds secrets."""

    grant_type: str
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"TokenRequest(grant_type={self.grant_type!r}, path={self.path!r})"


def _utf8(value: str, field: str) -> bytes:
    """``value`` as UTF-8, or InvalidInputError naming the field (never the value: it
    may be a secret) if it holds a lone surrogate, which no encoder takes."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            field, "has a character that cannot be sent (a lone surrogate)"
        ) from None


def _basic(credentials: Credentials) -> str:
    raw = (
        _utf8(credentials.client_id, "client_id")
        + b":"
        + _utf8(credentials.client_secret, "client_secret")
    )
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _grant(credentials: Credentials, grant_type: str, form: dict[str, str]) -> TokenRequest:
    for field, value in form.items():
        _utf8(value, field)  # urlencode would raise UnicodeEncodeError instead
    return TokenRequest(
        grant_type=grant_type,
        method="POST",
        path=TOKEN_PATH,
        headers={
            "Authorization": _basic(credentials),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        body=urlencode({"grant_type": grant_type, **form}).encode("ascii"),
    )


def password_grant(credentials: Credentials) -> TokenRequest:
    return _grant(
        credentials,
        "password",
        {"username": credentials.username, "password": credentials.password},
    )


def refresh_grant(credentials: Credentials, refresh_token: str) -> TokenRequest:
    return _grant(credentials, "refresh_token", {"refresh_token": refresh_token})


def _field(payload: Mapping[str, Any], snake: str, camel: str) -> Any:
    return payload[snake] if snake in payload else payload.get(camel)


def _expires_in(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError("expires_in is a boolean")
    if isinstance(raw, int | float):
        try:
            seconds = float(raw)
        except OverflowError:  # an int beyond float range, e.g. 10**400
            raise ValueError("expires_in is too large") from None
    elif isinstance(raw, str):
        seconds = float(raw.strip())
    else:
        raise ValueError(f"expires_in has type {type(raw).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expires_in must be a positive number of seconds, got {raw!r}")
    return seconds


def parse_token_response(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float
) -> Token:
    """A Token, or the error :func:`~maxa_async.errors.rule_for_token_answer` reads from the
    answer (AuthenticationError for a rejected grant, the status table's error for
    403/429/5xx ...), or ProtocolError for an unreadable answer. ``now`` is the wall-clock
    time of the request."""
    request_id = header(headers, "requestId")
    try:
        payload = loads(body)
    except ValueError:
        payload = None

    oauth_error = payload.get("error") if isinstance(payload, Mapping) else None
    gateway_code = payload.get("code") if isinstance(payload, Mapping) else None
    if isinstance(gateway_code, int) and not isinstance(gateway_code, bool) and gateway_code >= 400:
        # the gateway's other error shape, {"status": 0, "code": 401, ...}: its code wins
        # over the HTTP status (often a 200)
        status = gateway_code
    if not isinstance(oauth_error, str):
        oauth_error = None
    if rule_for_token_answer(status, oauth_error).error is not None:
        described = payload.get("error_description") if isinstance(payload, Mapping) else None
        raise error_for_token_answer(
            status,
            oauth_error=oauth_error,
            description=described if isinstance(described, str) and described else None,
            request_id=request_id,
            retry_after=parse_retry_after(headers),
        )
    if not isinstance(payload, Mapping):
        raise ProtocolError(
            "the token endpoint's answer is not a JSON object",
            status=status,
            operation=OPERATION,
            request_id=request_id,
        )

    access_token = _field(payload, "access_token", "accessToken")
    refresh_token = _field(payload, "refresh_token", "refreshToken")
    token_type = _field(payload, "token_type", "tokenType")
    if token_type is None:
        token_type = "bearer"  # absent: the guide's tokens are all bearer tokens
    scope = payload.get("scope")
    try:
        if not isinstance(access_token, str) or not access_token:
            raise ValueError("no access_token")
        if any(not "!" <= ch <= "~" for ch in access_token):
            # it goes into every request's Authorization header (RFC 6750: visible ASCII)
            raise ValueError("access_token has characters that cannot go in a header")
        if refresh_token is not None and not isinstance(refresh_token, str):
            raise ValueError("refresh_token is not a string")
        if refresh_token and any(not " " <= ch <= "~" for ch in refresh_token):
            # it goes back in a refresh grant's form (RFC 6749 A.17: visible ASCII); a
            # lone surrogate there could not even be encoded
            raise ValueError("refresh_token has characters outside visible ASCII")
        if not isinstance(token_type, str):
            raise ValueError("token_type is not a string")
        if token_type.lower() != "bearer":
            # The token goes out as "Bearer <token>"; a token of another type (mac, DPoP
            # ...) would be sent wrongly and mean the endpoint is not the one we know.
            raise ValueError(f"token_type is {token_type!r}, not bearer")
        lifetime = _expires_in(_field(payload, "expires_in", "expiresIn"))
    except ValueError as exc:
        raise ProtocolError(
            f"unreadable token response: {quote_detail(str(exc))}",
            status=status,
            operation=OPERATION,
            request_id=request_id,
        ) from None
    return Token(
        access_token=access_token,
        refresh_token=refresh_token or None,
        token_type=token_type,
        scope=scope if isinstance(scope, str) else None,
        expires_at=now + lifetime,
        lifetime=lifetime,
    )
