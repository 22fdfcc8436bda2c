"""Errors raised by maxa_async, and the one table that maps gateway statuses to them.

The tree::

    MaxaError                       every error this library raises on purpose
    ├── InvalidInputError           (also a ValueError) bad argument; nothing was sent
    │   └── ConfigError             a setting (client option, policy field) is wrong
    ├── AuthenticationError         401, invalid_grant: credentials or token rejected
    ├── ForbiddenError              403: the source IP is not registered with DITAS
    ├── BadRequestError             400: the gateway refused the input
    ├── NotFoundError               404 (often inner 404 inside an outer 200)
    ├── HttpsRequiredError          410: plain http was used
    ├── RateLimitedError            429 that did not clear within the retry budget
    │   └── ClientLimitError        a limit of the client itself, not the gateway's
    ├── ServiceError                499, 5xx, 520 (and 202 with no data) after retries
    ├── TransportError              connection failures and time-outs after retries
    ├── ProtocolError               a response we cannot read
    └── ClientClosedError           (also a RuntimeError) the client was closed

Every error carries ``status`` (the gateway's code, or None), ``operation`` (the wire
name, e.g. ``"ValidateCts"``), ``request_id`` (the DITAS ``requestId`` header),
``retryable`` (whether replaying the same request may succeed) and ``retry_after`` (the
seconds the gateway's ``Retry-After`` asked for, on a 429 or a 503; else None). Messages
never carry credentials or tokens.

How an answer reads is decided here only: :data:`STATUS_TABLE` for MAXA operations and
the token endpoint alike (:func:`rule_for_token_answer` adds OAuth's rejected grants).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "REJECTED_GRANT_ERRORS",
    "RETRY_AFTER_STATUSES",
    "STATUS_TABLE",
    "TOKEN_STATUS_TABLE",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ClientLimitError",
    "ConfigError",
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
    "error_for_token_answer",
    "quote_detail",
    "rule_for_status",
    "rule_for_token_answer",
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
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.operation = operation
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        #: Seconds the gateway asked the client to wait (``Retry-After``), if it did.
        self.retry_after = retry_after

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


class ConfigError(InvalidInputError):
    """A setting is wrong: an option of the client, a field of a policy (``RetryPolicy``,
    ``Timeout``, ``GrantPolicy`` ...). Raised where the setting is made, before anything is
    sent; ``field`` names it (``"RetryPolicy.attempts"``). Also a ValueError."""


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
            retry_after=retry_after,
        )


class ClientLimitError(RateLimitedError):
    """A limit this client enforces itself was reached (e.g. the token grants allowed per
    minute): nothing was sent, the gateway refused nothing. ``status`` is None and it is
    not retryable (a retry would meet the same limit); ``retry_after`` says when the
    limit lifts, when known."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        operation: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message,
            retry_after=retry_after,
            status=None,
            operation=operation,
            retryable=retryable,
        )


class ServiceError(MaxaError):
    """The gateway or the service behind it failed (499, 5xx, 520). A 503 may carry
    ``retry_after``: how long the gateway said it would be unavailable."""

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
    """How the client reads one gateway status code.

    ``proxy_page``: a body that is not JSON under this status is most likely the page of
    a proxy or load balancer in front of the gateway (nginx's 502), not the gateway's own
    answer; it reads as a ProtocolError carrying the status, retryable as ``retryable``
    says. Statuses without it keep their meaning whatever the body (a 403 is a 403).
    """

    error: type[MaxaError] | None
    retryable: bool
    message: str
    proxy_page: bool = False


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
    500: StatusRule(ServiceError, True, "gateway internal error", proxy_page=True),
    502: StatusRule(ServiceError, True, "bad gateway", proxy_page=True),
    503: StatusRule(ServiceError, True, "the service behind the gateway failed", proxy_page=True),
    504: StatusRule(
        ServiceError, True, "the service behind the gateway timed out", proxy_page=True
    ),
    520: StatusRule(ServiceError, True, "unknown gateway error", proxy_page=True),
}


#: The statuses whose ``Retry-After`` the client reads (RFC 6585 and RFC 9110 give it a
#: meaning there): how long until the limit lifts, or the service is back.
RETRY_AFTER_STATUSES: frozenset[int] = frozenset({429, 503})


def rule_for_status(status: int) -> StatusRule:
    """The rule for ``status``; codes the guide does not list fall back by class."""
    rule = STATUS_TABLE.get(status)
    if rule is not None:
        return rule
    if 200 <= status < 300:
        return STATUS_TABLE[200]
    if status >= 500:
        return StatusRule(ServiceError, True, f"unexpected gateway status {status}")
    # An unknown 4xx is still the gateway refusing; anything else (1xx, 3xx) is not an
    # answer we can read, whoever wrote it.
    return StatusRule(
        ProtocolError, False, f"unexpected gateway status {status}", proxy_page=status < 400
    )


#: OAuth error codes (RFC 6749 5.2) by which the token endpoint rejects the grant or the
#: client: whatever the HTTP status, the credentials are at fault.
REJECTED_GRANT_ERRORS: frozenset[str] = frozenset(
    {"invalid_grant", "invalid_token", "unauthorized", "invalid_client", "unauthorized_client"}
)

_REJECTED_GRANT = StatusRule(AuthenticationError, False, "the token endpoint rejected the grant")

#: The token endpoint's statuses that read otherwise than in STATUS_TABLE when the answer
#: carries an OAuth ``error`` (RFC 6749 5.2: the endpoint's error answers are 400 or 401):
#: a rejected grant, not bad input.
TOKEN_STATUS_TABLE: Mapping[int, StatusRule] = {400: _REJECTED_GRANT, 401: _REJECTED_GRANT}


def rule_for_token_answer(status: int, oauth_error: str | None = None) -> StatusRule:
    """How an answer of the token endpoint reads: an OAuth ``error`` that rejects the grant
    (:data:`REJECTED_GRANT_ERRORS`, any status) or any OAuth error under a status of
    :data:`TOKEN_STATUS_TABLE` is an AuthenticationError; the rest reads as STATUS_TABLE
    says."""
    if oauth_error is not None:
        if oauth_error in REJECTED_GRANT_ERRORS:
            return _REJECTED_GRANT
        rule = TOKEN_STATUS_TABLE.get(status)
        if rule is not None:
            return rule
    return rule_for_status(status)


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
    return _error(rule_for_status(status), status, operation, request_id, detail, retry_after)


def error_for_token_answer(
    status: int,
    *,
    oauth_error: str | None,
    description: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> MaxaError:
    """Build the typed error for a failed answer of the token endpoint (operation
    ``"token"``); a rejected grant quotes the OAuth error and its description."""
    rule = rule_for_token_answer(status, oauth_error)
    if rule is _REJECTED_GRANT and oauth_error is not None:
        said = oauth_error + (f": {description}" if description else "")
        return AuthenticationError(
            f"{rule.message} ({quote_detail(said)})",
            status=status,
            operation="token",
            request_id=request_id,
            retryable=rule.retryable,
        )
    return _error(rule, status, "token", request_id, None, retry_after)


def _error(
    rule: StatusRule,
    status: int,
    operation: str | None,
    request_id: str | None,
    detail: str | None,
    retry_after: float | None,
) -> MaxaError:
    cls = rule.error or ProtocolError
    message = rule.message
    detail = quote_detail(detail) if detail else None
    if detail and detail.rstrip("!.").lower() not in message.lower():
        message = f"{message} [gateway said: {detail}]"
    return cls(
        message,
        status=status,
        operation=operation,
        request_id=request_id,
        retryable=rule.retryable,
        retry_after=retry_after if status in RETRY_AFTER_STATUSES else None,
    )
