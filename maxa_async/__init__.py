"""maxa_async: an asyncio client for MAXA, Iran's Health Coding Reference, over DITAS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ClientLimitError,
    ConfigError,
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
from .jalali import TEHRAN, JalaliDateTime
from .models import CodedText, Credentials, TerminologyVersion, Token

if TYPE_CHECKING:
    from .auth import MemoryTokenStore, TokenStore
    from .cache import ResponseCache
    from .client import DEFAULT_BASE_URL, MaxaClient, ValidationOutcome
    from .options import ClientOptions
    from .retry import RetryBudget, RetryPolicy, Timeout
    from .stats import ClientStats

# The I/O layers (aiohttp, asyncio) load on first use, so that importing the sans-I/O
# core (`maxa_async.operations`, `.envelope`, ...) through the package stays free of them.
_LAZY = {
    "MemoryTokenStore": "auth",
    "TokenStore": "auth",
    "ResponseCache": "cache",
    "DEFAULT_BASE_URL": "client",
    "MaxaClient": "client",
    "ValidationOutcome": "client",
    "ClientOptions": "options",
    "RetryBudget": "retry",
    "RetryPolicy": "retry",
    "Timeout": "retry",
    "ClientStats": "stats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maxa_async' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_BASE_URL",
    "TEHRAN",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ClientLimitError",
    "ClientOptions",
    "ClientStats",
    "CodedText",
    "ConfigError",
    "Credentials",
    "ForbiddenError",
    "HttpsRequiredError",
    "InvalidInputError",
    "JalaliDateTime",
    "MaxaClient",
    "MaxaError",
    "MemoryTokenStore",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ResponseCache",
    "RetryBudget",
    "RetryPolicy",
    "ServiceError",
    "TerminologyVersion",
    "Timeout",
    "Token",
    "TokenStore",
    "TransportError",
    "ValidationOutcome",
    "__version__",
]
