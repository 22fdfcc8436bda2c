"""Value objects of the public API. Wire names live only in :mod:`maxa_async.converter`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .errors import InvalidInputError, MaxaError
from .jalali import JalaliDateTime

__all__ = [
    "CodedText",
    "Credentials",
    "JalaliDateTime",
    "TerminologyVersion",
    "Token",
    "ValidationOutcome",
    "latest_version",
]

_REDACTED = "***"

_ENV_NAMES: Mapping[str, str] = {
    "client_id": "MAXA_CLIENT_ID",
    "client_secret": "MAXA_CLIENT_SECRET",
    "username": "MAXA_USERNAME",
    "password": "MAXA_PASSWORD",
    "pid": "MAXA_PID",
}


def _non_empty_str(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(attribute.name, "must be a non-empty string")


def _header_value(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    # Sent as an HTTP header on every call: a control character would fail each send
    # (aiohttp refuses it as header injection) instead of failing here, once.
    _non_empty_str(instance, attribute, value)
    if isinstance(value, str) and any(not " " <= ch <= "~" for ch in value):
        raise InvalidInputError(
            attribute.name, "must be printable ASCII (it is sent as an HTTP header)"
        )


@attrs.frozen(repr=False)
class Credentials:
    """What DITAS issues to a calling centre. ``repr``/``str`` never show the secrets."""

    client_id: str = attrs.field(validator=_non_empty_str)
    client_secret: str = attrs.field(validator=_non_empty_str)
    username: str = attrs.field(validator=_non_empty_str)
    password: str = attrs.field(validator=_non_empty_str)
    pid: str = attrs.field(validator=_header_value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``MAXA_CLIENT_ID``, ``MAXA_CLIENT_SECRET``, ``MAXA_USERNAME``,
        ``MAXA_PASSWORD`` and ``MAXA_PID``."""
        env = os.environ if environ is None else environ
        missing = [name for name in _ENV_NAMES.values() if not env.get(name, "").strip()]
        if missing:
            raise InvalidInputError(
                missing[0], f"environment variable(s) not set: {', '.join(missing)}"
            )
        return cls(**{field: env[name].strip() for field, name in _ENV_NAMES.items()})

    def __repr__(self) -> str:
        return (
            f"Credentials(client_id={self.client_id!r}, client_secret={_REDACTED!r}, "
            f"username={self.username!r}, password={_REDACTED!r}, pid={self.pid!r})"
        )

    __str__ = __repr__


@attrs.frozen
class CodedText:
    """A coded term: ``value`` (the text), ``terminology_id``, ``coded_string`` (the code)."""

    value: str
    terminology_id: str
    coded_string: str


@attrs.frozen
class TerminologyVersion:
    """One version of a terminology, as TerminologyVersions lists it."""

    id: int
    terminology_id: str
    version: str
    version_id: int
    is_last: bool


def latest_version(versions: Iterable[TerminologyVersion]) -> TerminologyVersion | None:
    """The latest of a terminology's versions: the one marked ``is_last``, the highest
    ``version_id`` among several so marked (or among all when none is); None if empty.

    The one rule for "latest" in the library: snapshot pulls, ``maxa terms`` and the demo.
    """
    listed = list(versions)
    marked = [v for v in listed if v.is_last] or listed
    return max(marked, key=lambda v: v.version_id, default=None)


@attrs.frozen(repr=False)
class Token:
    """An OAuth2 access token. ``expires_at`` is wall-clock epoch seconds; ``lifetime`` is
    the ``expires_in`` the server gave, so refresh-ahead can be relative to it."""

    access_token: str
    refresh_token: str | None
    token_type: str
    scope: str | None
    expires_at: float
    lifetime: float

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def refresh_due_at(self, fraction: float) -> float:
        """The moment to refresh: after ``fraction`` of the lifetime has passed."""
        return self.expires_at - self.lifetime * (1.0 - fraction)

    def __repr__(self) -> str:
        return (
            f"Token(access_token={_REDACTED!r}, refresh_token="
            f"{None if self.refresh_token is None else _REDACTED!r}, "
            f"token_type={self.token_type!r}, scope={self.scope!r}, "
            f"expires_at={self.expires_at!r}, lifetime={self.lifetime!r})"
        )

    __str__ = __repr__


@attrs.frozen
class ValidationOutcome:
    """One item of a bulk validation (``MaxaClient.validate_many``, the snapshot store, the
    hybrid validator): ``valid`` is None when ``error`` is set."""

    item: Any
    valid: bool | None
    error: MaxaError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
