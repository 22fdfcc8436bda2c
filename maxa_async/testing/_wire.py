"""Literal wire bodies of DITAS/MAXA, written from the guide (not from the client's converter)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from ._config import ERROR_STATUSES

__all__ = [
    "BAD_REQUEST",
    "BLOCKED",
    "FALSE",
    "HTML_502",
    "MESSAGES",
    "NOT_FOUND",
    "NO_ROUTE",
    "OPERATIONS_PREFIX",
    "RATE_LIMITED",
    "TRUE",
    "UNAUTHORIZED",
    "gateway_error",
    "ok",
]

OPERATIONS_PREFIX = "/api/client/apim/v1/maksaservice/gwmaksa/"

#: The guide's gateway messages (outer ``status.message``).
MESSAGES: Mapping[int, str] = {
    400: "Bad request.",
    401: "Credential is not valid!",
    403: "Your origin IP is permanently blocked!",
    404: "Not Found!",
    410: "All resources are moved permanently to HTTPS",
    429: "Too many requests or Access denied!",
    **ERROR_STATUSES,
}

_OK_HEAD = b'{"result":{"data":'
_OK_TAIL = b',"status":{"statusCode":200}},"status":{"statusCode":200,"message":"OK"}}'


def ok(data_json: bytes) -> bytes:
    """The success envelope around an already-encoded ``result.data``."""
    return _OK_HEAD + data_json + _OK_TAIL


def gateway_error(code: int) -> bytes:
    """A gateway-level failure: ``{"status": {"statusCode": code, "message": ...}}``."""
    return orjson.dumps({"status": {"statusCode": code, "message": MESSAGES[code]}})


TRUE = ok(b'"true"')
FALSE = ok(b'"false"')
NOT_FOUND = b'{"result":{"status":{"statusCode":404}},"status":{"statusCode":200,"message":"OK"}}'
UNAUTHORIZED = b'{"status":0,"code":401,"msg":"","violations":[]}'
BAD_REQUEST = gateway_error(400)
BLOCKED = gateway_error(403)
NO_ROUTE = gateway_error(404)
RATE_LIMITED = gateway_error(429)

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
