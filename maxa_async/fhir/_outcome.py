"""Errors as FHIR ``OperationOutcome`` resources: the one table from error to issue code
and HTTP status.

::

    maxa_async.errors class        issue code    HTTP status
    InvalidInputError              invalid       400
    BadRequestError                invalid       400
    NoSnapshotError                not-found     404
    NotFoundError                  not-found     404
    RateLimitedError               throttled     429  (+ Retry-After when the gateway sent one)
    ServiceError                   transient     503  (+ Retry-After when the gateway sent one)
    TransportError                 transient     503
    AuthenticationError            security      502  (the gateway refused *this server*)
    ForbiddenError                 security      502
    HttpsRequiredError             exception     502
    ProtocolError                  exception     502
    SnapshotError (others)         exception     500
    MaxaError (others)             exception     500

Problems of the FHIR request itself that no MAXA error describes (an operation the
mode cannot do, a batch too large) are :class:`FhirOperationError`, which names its
issue code and status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ..errors import (
    RETRY_AFTER_STATUSES,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    HttpsRequiredError,
    InvalidInputError,
    MaxaError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServiceError,
    TransportError,
)
from ..snapshot import NoSnapshotError, SnapshotError

__all__ = [
    "ERROR_CODE_SYSTEM",
    "ERROR_RULES",
    "FhirOperationError",
    "FhirResponse",
    "IssueRule",
    "operation_outcome",
    "response_for_error",
]

#: The code system of ``OperationOutcome.issue.details.coding``: the error's class name.
ERROR_CODE_SYSTEM: Final = "urn:maxa-async:CodeSystem:error"


@attrs.frozen
class FhirResponse:
    """A FHIR answer: the HTTP ``status``, the ``resource`` (a JSON-compatible dict) and
    any extra HTTP ``headers`` (``Retry-After`` for a throttled request)."""

    status: int
    resource: dict[str, Any]
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400


@attrs.frozen
class IssueRule:
    """How one kind of error is told to a FHIR client."""

    code: str
    status: int


#: The one table: the first class an error is an instance of decides (subclasses first).
ERROR_RULES: Final[tuple[tuple[type[MaxaError], IssueRule], ...]] = (
    (InvalidInputError, IssueRule("invalid", 400)),
    (BadRequestError, IssueRule("invalid", 400)),
    (NoSnapshotError, IssueRule("not-found", 404)),
    (NotFoundError, IssueRule("not-found", 404)),
    (RateLimitedError, IssueRule("throttled", 429)),
    (ServiceError, IssueRule("transient", 503)),
    (TransportError, IssueRule("transient", 503)),
    (AuthenticationError, IssueRule("security", 502)),
    (ForbiddenError, IssueRule("security", 502)),
    (HttpsRequiredError, IssueRule("exception", 502)),
    (ProtocolError, IssueRule("exception", 502)),
    (SnapshotError, IssueRule("exception", 500)),
    (MaxaError, IssueRule("exception", 500)),
)


class FhirOperationError(Exception):
    """A FHIR request this server will not answer as asked, with its issue code
    (``not-supported``, ``not-found``, ``invalid``, ``too-costly`` ...) and HTTP status."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def operation_outcome(
    code: str, diagnostics: str, *, details: str | None = None, severity: str = "error"
) -> dict[str, Any]:
    """An OperationOutcome with one issue."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if details is not None:
        issue["details"] = {"coding": [{"system": ERROR_CODE_SYSTEM, "code": details}]}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def rule_for_error(error: MaxaError) -> IssueRule:
    for cls, rule in ERROR_RULES:
        if isinstance(error, cls):
            return rule
    raise AssertionError("MaxaError is the last rule")  # pragma: no cover


def response_for_error(error: MaxaError | FhirOperationError) -> FhirResponse:
    """The OperationOutcome answer for an error (see the table in this module)."""
    if isinstance(error, FhirOperationError):
        return FhirResponse(error.status, operation_outcome(error.code, error.message))
    rule = rule_for_error(error)
    diagnostics = str(error)  # the gateway's request id helps support; never a secret
    if rule.status == 502:
        diagnostics = f"the MAXA gateway refused or garbled this server's request: {diagnostics}"
    headers: dict[str, str] = {}
    if error.retry_after is not None and rule.status in RETRY_AFTER_STATUSES:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    resource = operation_outcome(rule.code, diagnostics, details=type(error).__name__)
    return FhirResponse(rule.status, resource, headers)
