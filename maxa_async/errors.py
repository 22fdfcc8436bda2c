"""Errors raised by maxa_async, and the one table that maps gateway statuses to them.

The tree::

    MaxaError                       every error this library raises on purpose
    ├── InvalidInputError           (also a ValueError) bad argument; nothing was sent
    ├── AuthenticationError         401, invalid_grant: credentials or token rejected
    ├── ForbiddenError              403: the source IP is not registered with DITAS
    ├── BadRequestError             400: the gateway refused the input
    ├── NotFoundError               404 (often inner 404 inside an outer 200)
    ├── HttpsRequiredError          410: plain http was used
    ├── RateLimitedError            429 that did not clear within the retry budget
    ├── ServiceError                499, 5xx, 520 (and 202 with no data) after retries
    ├── TransportError              connection failures and time-outs after retries
    ├── ProtocolError               a response we cannot read
    └── ClientClosedError           (also a RuntimeError) the client was closed

Every error carries ``status`` (the gateway's code, or None), ``operation`` (the wire
name, e.g. ``"ValidateCts"``), ``request_id`` (the DITAS ``requestId`` header) and
``retryable`` (whether replaying the same request may succeed). Messages never carry
credentials or tokens.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "STATUS_TABLE",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ForbiddenError",
    "HttpsRequiredError",
    "InvalidInputError",
    "MaxaError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ServiceError",
    "StatusRule",
    "TransportError",
    "error_for_status",
    "quote_detail",
    "rule_for_status",
]


class MaxaError(Exception):
    """Root of every error raised by maxa_async."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        operation: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.operation = operation
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable

    def __str__(self) -> str:
        context = []
        if self.operation:
            context.append(f"operation={self.operation}")
        if self.status is not None:
            context.append(f"status={self.status}")
        if self.request_id:
            context.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(context)})" if context else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"operation={self.operation!r}, request_id={self.request_id!r})"
        )


class InvalidInputError(MaxaError, ValueError):
    """An argument failed validation before anything was sent. ``field`` names it."""

    def __init__(self, field: str, message: str, *, operation: str | None = None) -> None:
        super().__init__(f"{field}: {message}", operation=operation)
        self.field = field


class AuthenticationError(MaxaError):
    """The gateway rejected the credentials or the token (401, invalid_grant)."""


class ForbiddenError(MaxaError):
    """403: DITAS blocks the source IP; it must be registered with the gateway."""


class BadRequestError(MaxaError):
    """400: the gateway found the input data wrong."""


class NotFoundError(MaxaError):
    """404: no answer for the request (unknown terminology, code or version)."""


class HttpsRequiredError(MaxaError):
    """410: the gateway answers only over https."""


class RateLimitedError(MaxaError):
    """429 that did not clear. ``retry_after`` is the gateway's Retry-After, in seconds."""

    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        operation: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            operation=operation,
            request_id=request_id,
            retryable=retryable,
        )
        self.retry_after = retry_after


class ServiceError(MaxaError):
    """The gateway or the service behind it failed (499, 5xx, 520)."""

    default_retryable = True


class TransportError(MaxaError):
    """The connection failed or timed out."""

    default_retryable = True


class ClientClosedError(MaxaError, RuntimeError):
    """The client was closed: before this call, or while it was queued or in flight.
    Nothing is sent after :meth:`MaxaClient.aclose`."""


class ProtocolError(MaxaError):
    """A response that does not fit the protocol (not JSON, wrong shape, wrong types)."""


@attrs.frozen
class StatusRule:
    """How the client reads one gateway status code."""

    error: type[MaxaError] | None
    retryable: bool
    message: str


#: The one place where status codes become errors and retry decisions.
STATUS_TABLE: Mapping[int, StatusRule] = {
    200: StatusRule(None, False, "OK"),
    202: StatusRule(None, False, "Accepted"),
    400: StatusRule(BadRequestError, False, "the gateway found the input data wrong"),
    401: StatusRule(
        AuthenticationError, False, "credential is not valid (wrong user/password or token)"
    ),
    403: StatusRule(
        ForbiddenError,
        False,
        "your source IP is blocked: it must be registered with DITAS for this account",
    ),
    404: StatusRule(NotFoundError, False, "not found"),
    410: StatusRule(
        HttpsRequiredError, False, "the gateway answers only over https; use an https base_url"
    ),
    429: StatusRule(
        RateLimitedError,
        True,
        "too many requests, or no permission for this service "
        "(if it never clears, ask DITAS to grant this pid access to MAXA)",
    ),
    499: StatusRule(ServiceError, True, "client closed request"),
    500: StatusRule(ServiceError, True, "gateway internal error"),
    502: StatusRule(ServiceError, True, "bad gateway"),
    503: StatusRule(ServiceError, True, "the service behind the gateway failed"),
    504: StatusRule(ServiceError, True, "the service behind the gateway timed out"),
    520: StatusRule(ServiceError, True, "unknown gateway error"),
}


def rule_for_status(status: int) -> StatusRule:
    """The rule for ``status``; codes the guide does not list fall back by class."""
    rule = STATUS_TABLE.get(status)
    if rule is not None:
        return rule
    if 200 <= status < 300:
        return STATUS_TABLE[200]
    if status >= 500:
        return StatusRule(ServiceError, True, f"unexpected gateway status {status}")
    return StatusRule(ProtocolError, False, f"unexpected gateway status {status}")


_MAX_DETAIL = 200


def quote_detail(text: str) -> str:
    """A server's message as an error may quote it: one line, no control characters, and
    short (the body it came from can be megabytes; log lines must stay one line)."""
    cleaned = "".join(
        " " if ch < " " or "\x7f" <= ch <= "\x9f" or ch in "\u2028\u2029" else ch
        for ch in text[: _MAX_DETAIL + 1]
    ).strip()
    return cleaned[:_MAX_DETAIL] + "..." if len(cleaned) > _MAX_DETAIL else cleaned


def error_for_status(
    status: int,
    *,
    operation: str | None,
    request_id: str | None,
    detail: str | None = None,
    retry_after: float | None = None,
) -> MaxaError:
    """Build the typed error for a non-success ``status``."""
    rule = rule_for_status(status)
    cls = rule.error or ProtocolError
    message = rule.message
    detail = quote_detail(detail) if detail else None
    if detail and detail.rstrip("!.").lower() not in message.lower():
        message = f"{message} [gateway said: {detail}]"
    if cls is RateLimitedError:
        return RateLimitedError(
            message,
            retry_after=retry_after,
            status=status,
            operation=operation,
            request_id=request_id,
            retryable=rule.retryable,
        )
    return cls(
        message,
        status=status,
        operation=operation,
        request_id=request_id,
        retryable=rule.retryable,
    )
