"""Read a MAXA response: ``(status, headers, body) -> data``, or the right typed error.

Sans-I/O: no aiohttp, no asyncio. The shapes (MAXA_API.md, "The envelope")::

    {"result": {"data": ..., "status": {"statusCode": 200}},
     "status": {"statusCode": 200, "message": "OK"}}          # outer = gateway, inner = service
    {"result": {"status": {"statusCode": 404}}, "status": {"statusCode": 200, ...}}  # not found
    {"status": 0, "code": 401, "msg": "", "violations": []}  # the gateway's other error shape

Bodies a proxy wrote (an HTML page) under a status the table marks ``proxy_page`` (500, 502,
503, 504, 520) become :class:`ProtocolError` carrying the HTTP status, retryable as the
table says; under any other failing status they keep the status's meaning.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Any, Final

import orjson
from multidict import istr

from .errors import (
    RETRY_AFTER_STATUSES,
    MaxaError,
    ProtocolError,
    ServiceError,
    error_for_status,
    rule_for_status,
)

__all__ = ["header", "loads", "parse_envelope", "parse_retry_after", "read_envelope"]

_SUCCESS = (200, 202)


#: Header names as multidict ``istr``: an aiohttp response's headers are looked up without
#: case-folding the name again at every lookup (as aiohttp's own ``hdrs`` names are).
REQUEST_ID: Final = istr("requestId")
RETRY_AFTER: Final = istr("Retry-After")
RETRY_AFTER_MS: Final = istr("Retry-After-Ms")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts and multidicts alike."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` in seconds, from delta-seconds or an HTTP-date (RFC 9110 10.2.3,
    taken against ``now``, the wall clock by default); None if absent or unreadable.

    A readable ``Retry-After-Ms`` (milliseconds, as Azure API Management sends beside a
    whole-second ``Retry-After``) wins: it is the same wait, said more precisely."""
    millis = header(headers, RETRY_AFTER_MS)
    if millis is not None:
        try:
            wait = float(millis.strip()) / 1000
        except ValueError:
            wait = math.nan
        if math.isfinite(wait) and wait >= 0:
            return wait
    raw = header(headers, RETRY_AFTER)
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=datetime.UTC)
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def loads(body: bytes) -> Any:
    """JSON, tolerating raw control characters inside strings (seen in gateway bodies).
    Objects come back as plain dicts (the parsers here rely on it).

    Raises ValueError if the body is not JSON at all.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8", errors="strict"), strict=False)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def _status_code(node: object) -> int | None:
    """``{"statusCode": N}`` -> N; tolerant of numeric strings."""
    if not isinstance(node, dict):
        return None
    code = node.get("statusCode")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        try:
            return int(code.strip())
        except ValueError:  # "²" passes isdigit() but not int(); so do 4300+ digits
            return None
    return None


def _message(node: object) -> str | None:
    if isinstance(node, dict):
        message = node.get("message") or node.get("msg")
        if isinstance(message, str):
            return message
    return None


def parse_envelope(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    operation: str | None = None,
) -> Any:
    """Return ``result.data`` of a successful response, or raise the matching MaxaError."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = _NOT_PARSED
    else:
        # The hot path: HTTP 200, both status codes 200, data present. Anything else
        # takes the full reading below, which gives the same answer for this shape.
        if status == 200 and type(payload) is dict:
            outer = payload.get("status")
            result = payload.get("result")
            if type(outer) is dict and type(result) is dict and outer.get("statusCode") == 200:
                inner = result.get("status")
                if inner is None or (type(inner) is dict and inner.get("statusCode") == 200):
                    data = result.get("data")
                    if data is not None:
                        return data
    return read_envelope(status, headers, body, payload, operation=operation)


#: parse_envelope's mark for a body orjson could not read (read_envelope tries again).
_NOT_PARSED: Any = object()


def read_envelope(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    payload: Any = _NOT_PARSED,
    *,
    operation: str | None = None,
) -> Any:
    """The full reading of an envelope (every shape, every error); ``payload`` is the
    body already decoded, if it was."""
    request_id = header(headers, REQUEST_ID)

    def fail(code: int, detail: str | None = None) -> MaxaError:
        return error_for_status(  # it keeps retry_after where the status gives it a meaning
            code,
            operation=operation,
            request_id=request_id,
            detail=detail,
            retry_after=parse_retry_after(headers),
        )

    if payload is _NOT_PARSED:
        try:
            payload = loads(body)
        except ValueError:
            rule = rule_for_status(status)
            failed = rule.error is not None
            if failed and not rule.proxy_page:
                # A typed status (401, 403, 404, 429 ...) keeps its meaning even when a
                # proxy replaced the body.
                raise fail(status) from None
            raise ProtocolError(
                f"the gateway answered HTTP {status} with a body that is not JSON "
                f"({_snippet(body)})",
                status=status,
                operation=operation,
                request_id=request_id,
                retryable=failed and rule.retryable,
                # A proxy's maintenance page (a 503) may still say when to come back.
                retry_after=(
                    parse_retry_after(headers) if status in RETRY_AFTER_STATUSES else None
                ),
            ) from None

    if not isinstance(payload, dict):
        raise ProtocolError(
            f"expected a JSON object, got {type(payload).__name__}",
            status=status,
            operation=operation,
            request_id=request_id,
        )

    # The gateway's other shape: {"status": 0, "code": 401, "msg": "", "violations": []}
    code = payload.get("code")
    if (
        isinstance(code, int)
        and not isinstance(code, bool)
        and not isinstance(payload.get("status"), dict)
    ):
        raise fail(code if code >= 400 else max(status, 400), _message(payload))

    outer = _status_code(payload.get("status"))
    if outer is None:
        outer = status
    if status >= 400 and outer in _SUCCESS:
        outer = status  # the HTTP status is the stronger signal of failure
    if outer not in _SUCCESS:
        raise fail(outer, _message(payload.get("status")))

    result = payload.get("result")
    if result is None:
        if outer == 202:
            raise _accepted_no_data(operation, request_id)
        raise ProtocolError(
            "the envelope has no 'result'",
            status=status,
            operation=operation,
            request_id=request_id,
        )
    if not isinstance(result, dict):
        raise ProtocolError(
            f"'result' should be an object, got {type(result).__name__}",
            status=status,
            operation=operation,
            request_id=request_id,
        )
    inner = _status_code(result.get("status"))
    if inner is not None and inner not in _SUCCESS:
        raise fail(inner, _message(result.get("status")))
    if "data" not in result or result["data"] is None:
        if (inner or outer) == 202:
            raise _accepted_no_data(operation, request_id)
        raise ProtocolError(
            "the envelope reports success but carries no 'data'",
            status=status,
            operation=operation,
            request_id=request_id,
        )
    return result["data"]


def _accepted_no_data(operation: str | None, request_id: str | None) -> ServiceError:
    return ServiceError(
        "the gateway accepted the request (202) but has no data yet",
        status=202,
        operation=operation,
        request_id=request_id,
    )


def _snippet(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", errors="replace").replace("\n", " ").strip()
    return repr(text + ("..." if len(body) > limit else ""))
