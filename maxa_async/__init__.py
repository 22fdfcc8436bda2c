"""maxa_async: an asyncio client for MAXA, Iran's Health Coding Reference, over DITAS."""

from __future__ import annotations

from .auth import MemoryTokenStore, TokenStore
from .cache import ResponseCache
from .client import DEFAULT_BASE_URL, MaxaClient, ValidationOutcome
from .errors import (
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
from .jalali import TEHRAN, JalaliDateTime
from .limits import RetryBudget, RetryPolicy, Timeout
from .models import CodedText, Credentials, TerminologyVersion, Token
from .stats import ClientStats

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "TEHRAN",
    "AuthenticationError",
    "BadRequestError",
    "ClientStats",
    "CodedText",
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
