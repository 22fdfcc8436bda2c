"""maxa_async: an asyncio client for MAXA, Iran's Health Coding Reference, over DITAS."""

from __future__ import annotations

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
from .models import CodedText, Credentials, TerminologyVersion, Token

__version__ = "0.1.0"

DEFAULT_BASE_URL = "https://apigateway.behdasht.gov.ir"

__all__ = [
    "DEFAULT_BASE_URL",
    "TEHRAN",
    "AuthenticationError",
    "BadRequestError",
    "CodedText",
    "Credentials",
    "ForbiddenError",
    "HttpsRequiredError",
    "InvalidInputError",
    "JalaliDateTime",
    "MaxaError",
    "NotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "ServiceError",
    "TerminologyVersion",
    "Token",
    "TransportError",
    "__version__",
]
