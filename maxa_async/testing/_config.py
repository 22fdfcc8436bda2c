"""The knobs of the fake gateway: credentials, token lifetimes and misbehaviour."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._limiters import (
    Balanced,
    ConcurrencyCap,
    FixedWindow,
    LeakyBucket,
    Quota,
    RateLimiter,
    SlidingCounter,
    SlidingLog,
    TokenBucket,
)

__all__ = [
    "CONCURRENCY_STATUSES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_PASSWORD",
    "DEFAULT_PID",
    "DEFAULT_USERNAME",
    "ERROR_STATUSES",
    "RATE_HEADER_STYLES",
    "RATE_LIMITER_SHAPES",
    "RETRY_AFTER_FORMATS",
    "GatewayConfig",
    "KnobSpec",
]

DEFAULT_CLIENT_ID = "maxa-test-client"
DEFAULT_CLIENT_SECRET = "maxa-test-secret"
DEFAULT_USERNAME = "maxa-test-user"
DEFAULT_PASSWORD = "maxa-test-password"
DEFAULT_PID = "maxa-test-pid"

#: The gateway error statuses ``error_rate`` may pick from, with the guide's messages.
ERROR_STATUSES: Mapping[int, str] = {
    499: "Client Closed Request!",
    500: "Internal server error!",
    503: "Service provider error!",
    504: "Backend timeout!",
    520: "Unknown error!",
}

#: ``rate_limiter`` values: the shape ``rps_limit`` is enforced with.
RATE_LIMITER_SHAPES = ("fixed", "sliding-log", "sliding-counter", "token-bucket", "leaky-bucket")
#: ``retry_after_format`` values.
RETRY_AFTER_FORMATS = ("seconds", "http-date", "fractional", "milliseconds")
#: ``rate_headers`` values: which budget headers every answer past the limiters carries.
RATE_HEADER_STYLES = ("none", "spring", "ietf", "kong")
#: ``concurrency_status`` values.
CONCURRENCY_STATUSES = (429, 503)

KnobKind = Literal["str", "float", "int", "bool", "statuses"]


@attrs.frozen
class KnobSpec:
    """How one knob is typed, so a command line can be built from the knob list."""

    name: str
    kind: KnobKind
    optional: bool
    default: Any
    help: str

    @property
    def option(self) -> str:
        """The command-line spelling, e.g. ``--token-ttl``."""
        return "--" + self.name.replace("_", "-")


# -- validators and converters ------------------------------------------------------------------


def _non_empty_str(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attr.name} must be a non-empty string, got {value!r}")


def _to_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"expected a finite number, got {value!r}")
    return result


def _to_optional_float(value: object) -> float | None:
    return None if value is None else _to_float(value)


def _to_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _to_optional_int(value: object) -> int | None:
    return None if value is None else _to_int(value)


def _to_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _to_statuses(value: object) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list of status codes, got {value!r}")
    return tuple(int(item) for item in value)


def _positive(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attr.name} must be > 0, got {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must be >= 0, got {value!r}")


def _rate(_inst: object, attr: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attr.name} must be within [0, 1], got {value!r}")


def _at_least_one(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attr.name} must be >= 1 (or None to disable), got {value!r}")


def _known_statuses(_inst: object, attr: attrs.Attribute[Any], value: tuple[int, ...]) -> None:
    if not value:
        raise ValueError(f"{attr.name} must name at least one status")
    unknown = [code for code in value if code not in ERROR_STATUSES]
    if unknown:
        raise ValueError(f"{attr.name}: {unknown} not among {sorted(ERROR_STATUSES)}")


def _count_reseed(inst: Any, _attr: attrs.Attribute[Any], value: int) -> int:
    inst._seed_epoch += 1
    return value


def _one_of(choices: tuple[Any, ...]) -> Any:
    def check(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            allowed = ", ".join(repr(choice) for choice in choices)
            raise ValueError(f"{attr.name} must be one of {allowed}, got {value!r}")

    return check


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@attrs.define(kw_only=True)
class GatewayConfig:
    """Everything the fake gateway can be told: who may log in and how it misbehaves.

    Mutable and validated on every assignment: ``gw.config.rps_limit = 500`` takes
    effect on the next request. ``update(**knobs)`` changes several knobs at once,
    all or nothing. Faults (latency, drops, HTML pages, 429s, 5xx) apply to the MAXA
    operations only; the token endpoint has ``blocked_ip`` and ``token_error_rate``.
    """

    client_id: str = attrs.field(
        default=DEFAULT_CLIENT_ID, validator=_non_empty_str, metadata=_help("OAuth2 client id")
    )
    client_secret: str = attrs.field(
        default=DEFAULT_CLIENT_SECRET,
        validator=_non_empty_str,
        metadata=_help("OAuth2 client secret"),
    )
    username: str = attrs.field(
        default=DEFAULT_USERNAME, validator=_non_empty_str, metadata=_help("password-grant user")
    )
    password: str = attrs.field(
        default=DEFAULT_PASSWORD,
        validator=_non_empty_str,
        metadata=_help("password-grant password"),
    )
    pid: str = attrs.field(
        default=DEFAULT_PID,
        validator=_non_empty_str,
        metadata=_help("required value of the pid header"),
    )
    token_ttl: float = attrs.field(
        default=899.0,
        converter=_to_float,
        validator=_positive,
        metadata=_help("access-token lifetime in seconds (expires_in is its ceiling)"),
    )
    refresh_token_ttl: float = attrs.field(
        default=30 * 24 * 3600.0,
        converter=_to_float,
        validator=_positive,
        metadata=_help("refresh-token lifetime in seconds"),
    )
    refresh_invalidates_old: bool = attrs.field(
        default=False,
        converter=_to_bool,
        metadata=_help("a refresh grant revokes the access token issued before it"),
    )
    rotate_refresh_token: bool = attrs.field(
        default=False,
        converter=_to_bool,
        metadata=_help("a refresh grant returns a new refresh token; the old one stops working"),
    )
    reuse_access_token: bool = attrs.field(
        default=False,
        converter=_to_bool,
        metadata=_help("a password grant returns the user's current unexpired token (Spring)"),
    )
    revoke_every: int | None = attrs.field(
        default=None,
        converter=_to_optional_int,
        validator=_at_least_one,
        metadata=_help("revoke all access tokens after every N authenticated MAXA requests"),
    )
    rps_limit: float | None = attrs.field(
        default=None,
        converter=_to_optional_float,
        validator=_at_least_one,
        metadata=_help("the rate R of the rate limiter in MAXA requests/s (HTTP 429 beyond)"),
    )
    rate_limiter: str = attrs.field(
        default="fixed",
        validator=_one_of(RATE_LIMITER_SHAPES),
        metadata=_help("the shape rps_limit is enforced with: " + " | ".join(RATE_LIMITER_SHAPES)),
    )
    rate_window: float = attrs.field(
        default=1.0,
        converter=_to_float,
        validator=_positive,
        metadata=_help("window of the window shapes in seconds (they admit R*window per window)"),
    )
    rate_burst: float | None = attrs.field(
        default=None,
        converter=_to_optional_float,
        validator=_at_least_one,
        metadata=_help("token-bucket capacity in requests (None: R, one second's worth)"),
    )
    rate_nodes: int = attrs.field(
        default=1,
        converter=_to_int,
        validator=_at_least_one,
        metadata=_help(
            "gateway nodes behind a random balancer, each limiting its own share R/n "
            "(and burst/n) of the requests it is dealt"
        ),
    )
    concurrency_limit: int | None = attrs.field(
        default=None,
        converter=_to_optional_int,
        validator=_at_least_one,
        metadata=_help("at most N MAXA requests in flight; the N+1st is refused"),
    )
    concurrency_status: int = attrs.field(
        default=429,
        converter=_to_int,
        validator=_one_of(CONCURRENCY_STATUSES),
        metadata=_help("the status of a concurrency refusal: 429 or 503"),
    )
    quota: int | None = attrs.field(
        default=None,
        converter=_to_optional_int,
        validator=_at_least_one,
        metadata=_help("MAXA requests admitted per quota_period, then HTTP 429 to its end"),
    )
    quota_period: float = attrs.field(
        default=86400.0,
        converter=_to_float,
        validator=_positive,
        metadata=_help("the quota's period in seconds, from the first request"),
    )
    retry_after: bool = attrs.field(
        default=True,
        converter=_to_bool,
        metadata=_help("send Retry-After with rate-limit 429s"),
    )
    retry_after_format: str = attrs.field(
        default="seconds",
        validator=_one_of(RETRY_AFTER_FORMATS),
        metadata=_help(
            "Retry-After as whole seconds rounded up, an HTTP-date, seconds to the "
            "millisecond, or whole seconds with Retry-After-Ms beside them (as Azure API "
            "Management answers): seconds | http-date | fractional | milliseconds"
        ),
    )
    rate_headers: str = attrs.field(
        default="none",
        validator=_one_of(RATE_HEADER_STYLES),
        metadata=_help(
            "budget headers on answers past the limiters: " + " | ".join(RATE_HEADER_STYLES)
        ),
    )
    permanent_429: bool = attrs.field(
        default=False,
        converter=_to_bool,
        metadata=_help("answer every MAXA request 429 (no permission for the service)"),
    )
    blocked_ip: bool = attrs.field(
        default=False,
        converter=_to_bool,
        metadata=_help("answer everything, token endpoint included, 403 (IP not registered)"),
    )
    error_rate: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=_rate,
        metadata=_help("fraction of MAXA requests answered with a random error status"),
    )
    error_statuses: tuple[int, ...] = attrs.field(
        default=(500, 503, 504, 520),
        converter=_to_statuses,
        validator=_known_statuses,
        metadata=_help("the statuses error_rate picks from (comma-separated)"),
    )
    error_retry_after: float | None = attrs.field(
        default=None,
        converter=_to_optional_float,
        validator=_positive,
        metadata=_help(
            "Retry-After (seconds, in retry_after_format) on the 503s error_rate picks: "
            "the gateway saying when it is back"
        ),
    )
    drop_rate: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=_rate,
        metadata=_help("fraction of MAXA requests whose connection is closed without a reply"),
    )
    html_rate: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=_rate,
        metadata=_help("fraction of MAXA requests answered with a proxy's HTML 502 page"),
    )
    latency: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=_non_negative,
        metadata=_help("seconds added to every MAXA request"),
    )
    latency_jitter: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=_non_negative,
        metadata=_help("up to this many further seconds, uniformly random"),
    )
    token_error_rate: float = attrs.field(
        default=0.0,
        converter=_to_float,
        validator=_rate,
        metadata=_help("fraction of token requests answered with a random error status"),
    )
    empty_as_not_found: bool = attrs.field(
        default=True,
        converter=_to_bool,
        metadata=_help("an empty list result is answered as inner 404 (else an empty array)"),
    )
    seed: int = attrs.field(
        default=0,
        converter=_to_int,
        on_setattr=[attrs.setters.convert, attrs.setters.validate, _count_reseed],
        metadata=_help("seed of the fault randomness (assigning it restarts the sequence)"),
    )
    _seed_epoch: int = attrs.field(default=0, init=False, repr=False, eq=False)

    @property
    def seed_epoch(self) -> int:
        """How many times ``seed`` was assigned: the gateway re-seeds when this changes."""
        return self._seed_epoch

    # -- introspection --------------------------------------------------------------------------

    @classmethod
    def knob_names(cls) -> tuple[str, ...]:
        """Every knob's name, in declaration order."""
        return tuple(field.name for field in _knob_fields(cls))

    @classmethod
    def knob_specs(cls) -> tuple[KnobSpec, ...]:
        """Every knob with its kind, default and help, for building command lines."""
        specs = []
        for field in _knob_fields(cls):
            kind, optional = _KINDS[field.name]
            specs.append(
                KnobSpec(
                    name=field.name,
                    kind=kind,
                    optional=optional,
                    default=field.default,
                    help=field.metadata.get("help", ""),
                )
            )
        return tuple(specs)

    # -- the limiters these knobs describe --------------------------------------------------------

    def make_rate_limiter(self) -> RateLimiter | None:
        """A fresh limiter of ``rate_limiter``'s shape at ``rps_limit`` (None without one).

        Window shapes admit ``max(1, floor(R * rate_window))`` per window; the token
        bucket holds ``rate_burst`` (default R); the leaky bucket spaces by ``1/R``. With
        ``rate_nodes`` n > 1, n such limiters at R/n (and a burst of ``rate_burst``/n)
        behind a random balancer seeded by ``seed``.
        A benchmark can ask it for ``capacity(start, end)``.
        """
        if self.rps_limit is None:
            return None
        if self.rate_nodes == 1:
            return self._make_node(self.rps_limit, self.rate_burst)
        share = 1.0 / self.rate_nodes
        burst = None if self.rate_burst is None else max(1.0, self.rate_burst * share)
        return Balanced(
            [self._make_node(self.rps_limit * share, burst) for _ in range(self.rate_nodes)],
            seed=self.seed,
        )

    def _make_node(self, rate: float, burst: float | None) -> RateLimiter:
        if self.rate_limiter == "token-bucket":
            return TokenBucket(rate, rate if burst is None else burst)
        if self.rate_limiter == "leaky-bucket":
            return LeakyBucket(rate)
        # The guard absorbs products such as 0.29 * 100 landing a hair below 29.
        per_window = max(1, math.floor(rate * self.rate_window + 1e-9))
        if self.rate_limiter == "sliding-log":
            return SlidingLog(per_window, self.rate_window)
        if self.rate_limiter == "sliding-counter":
            return SlidingCounter(per_window, self.rate_window)
        return FixedWindow(per_window, self.rate_window)

    def make_concurrency_cap(self) -> RateLimiter | None:
        """A fresh cap of ``concurrency_limit`` requests in flight (None without one)."""
        return None if self.concurrency_limit is None else ConcurrencyCap(self.concurrency_limit)

    def make_quota(self) -> RateLimiter | None:
        """A fresh ``quota`` per ``quota_period`` (None without one)."""
        return None if self.quota is None else Quota(self.quota, self.quota_period)

    def as_dict(self) -> dict[str, Any]:
        """The knobs as plain JSON-able values."""
        result = {name: getattr(self, name) for name in self.knob_names()}
        result["error_statuses"] = list(self.error_statuses)
        return result

    def update(self, **knobs: Any) -> None:
        """Change several knobs at once; on any invalid value, change none.

        Raises ``TypeError`` for an unknown knob or a wrongly typed value and
        ``ValueError`` for a value out of range.
        """
        unknown = sorted(set(knobs) - set(self.knob_names()))
        if unknown:
            raise TypeError(f"unknown knob(s): {', '.join(unknown)}")
        checked = attrs.evolve(self, **knobs)
        for name in knobs:
            setattr(self, name, getattr(checked, name))

    @classmethod
    def from_dict(cls, knobs: Mapping[str, Any]) -> GatewayConfig:
        """Build a config from a mapping of knob names to values (unknown names fail)."""
        config = cls()
        config.update(**dict(knobs))
        return config


def _knob_fields(cls: type[GatewayConfig]) -> list[attrs.Attribute[Any]]:
    return [field for field in attrs.fields(cls) if not field.name.startswith("_")]


_KINDS: dict[str, tuple[KnobKind, bool]] = {
    "client_id": ("str", False),
    "client_secret": ("str", False),
    "username": ("str", False),
    "password": ("str", False),
    "pid": ("str", False),
    "token_ttl": ("float", False),
    "refresh_token_ttl": ("float", False),
    "refresh_invalidates_old": ("bool", False),
    "rotate_refresh_token": ("bool", False),
    "reuse_access_token": ("bool", False),
    "revoke_every": ("int", True),
    "rps_limit": ("float", True),
    "rate_limiter": ("str", False),
    "rate_window": ("float", False),
    "rate_burst": ("float", True),
    "rate_nodes": ("int", False),
    "concurrency_limit": ("int", True),
    "concurrency_status": ("int", False),
    "quota": ("int", True),
    "quota_period": ("float", False),
    "retry_after": ("bool", False),
    "retry_after_format": ("str", False),
    "rate_headers": ("str", False),
    "permanent_429": ("bool", False),
    "blocked_ip": ("bool", False),
    "error_rate": ("float", False),
    "error_statuses": ("statuses", False),
    "error_retry_after": ("float", True),
    "drop_rate": ("float", False),
    "html_rate": ("float", False),
    "latency": ("float", False),
    "latency_jitter": ("float", False),
    "token_error_rate": ("float", False),
    "empty_as_not_found": ("bool", False),
    "seed": ("int", False),
}
