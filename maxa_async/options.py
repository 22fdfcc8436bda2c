"""ClientOptions: every keyword option of :class:`~maxa_async.MaxaClient`, in one checked
value.

Each option is checked where it is set, by its field's validator or converter, and a bad
one raises :class:`~maxa_async.errors.ConfigError` naming it, before any part of the
client exists and before anything is sent. The client takes the options as keywords (and
builds this object from them) or whole::

    options = maxa.ClientOptions(max_concurrency=16, retry=maxa.RetryPolicy(attempts=3))
    client = maxa.MaxaClient(creds, options=options)
    quieter = maxa.MaxaClient(creds, options=attrs.evolve(options, max_concurrency=4))

Messages never echo a URL (``base_url``, ``proxy``, ``redis_url``): it may carry a password.
"""

from __future__ import annotations

import os
import ssl as ssl_module
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import attrs
from yarl import URL

from .auth import TokenStore
from .cache import ResponseCache
from .errors import ConfigError, InvalidInputError
from .events import RequestEvent, ResponseEvent
from .limits import RateGate
from .retry import RetryBudget, RetryPolicy, Timeout
from .retry import finite_number as _finite
from .transport import check_base_url, response_limits

if TYPE_CHECKING:
    from aiohttp import ClientMiddlewareType

    from .fleet import Fleet

__all__ = ["DEFAULT_BASE_URL", "FLEET_OPTION_NAMES", "ClientOptions"]

DEFAULT_BASE_URL: Final = "https://apigateway.behdasht.gov.ir"

#: The keys ``fleet_options`` may hold: the options of ``maxa_async.fleet.Fleet`` that
#: the client does not set itself (it sets the URL, the credentials and the rate limit).
FLEET_OPTION_NAMES: Final = frozenset(
    {"burst", "key_prefix", "lease_seconds", "poll_interval", "retry_after", "redis_timeout"}
)

_REDIS_SCHEMES: Final = ("redis", "rediss", "unix")

Validator = Callable[[object, "attrs.Attribute[Any]", Any], None]


# -- small checks, each naming the option it checks ---------------------------------------------


def _reraised(check: Callable[[Any], object]) -> Validator:
    """A validator running a check shared with the rest of the library (which raises
    InvalidInputError), raising it again as the ConfigError it is here."""

    def validate(_inst: object, _attr: attrs.Attribute[Any], value: Any) -> None:
        try:
            check(value)
        except ConfigError:
            raise
        except InvalidInputError as exc:
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise ConfigError(exc.field, message) from None

    return validate


def _flag(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(attr.name, "must be True or False")


def _optional(kind: type | tuple[type, ...], message: str) -> Validator:
    """None, or an instance of ``kind`` (a runtime-checkable protocol counts)."""

    def validate(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, kind):
            raise ConfigError(attr.name, message)

    return validate


def _optional_positive(message: str) -> Validator:
    def validate(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
        if value is not None and (not _finite(value) or value <= 0):  # type: ignore[operator]
            raise ConfigError(attr.name, f"{message}, got {value!r}")

    return validate


def _optional_callable(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(attr.name, "must be callable or None")


def _max_concurrency(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(attr.name, "must be an int")
    if not 1 <= value <= 10_000:
        raise ConfigError(attr.name, "must be between 1 and 10000")


def _ssl(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool | ssl_module.SSLContext):
        raise ConfigError(attr.name, "must be True, False or an ssl.SSLContext")


def _ca_bundle(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(attr.name, "must be the path of a PEM file")
    path = os.fspath(value)
    if not os.path.isfile(path):
        raise ConfigError(attr.name, f"no such file: {path!r}")


def _refresh_fraction(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not _finite(value) or not 0.0 < value < 1.0:  # type: ignore[operator]
        raise ConfigError(attr.name, f"must be between 0 and 1, got {value!r}")


def _latency_tolerance(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not _finite(value) or value <= 1):  # type: ignore[operator]
        raise ConfigError(
            attr.name, f"must be a factor > 1 over the best latency seen, got {value!r:.40}"
        )


def _redis_url(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or urllib.parse.urlsplit(value).scheme not in _REDIS_SCHEMES:
        # The URL is not echoed: it may carry a password.
        raise ConfigError(attr.name, "must start with redis://, rediss:// or unix://")


def _fleet(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    try:
        from .fleet import Fleet  # optional dependency: a Fleet given means it is installed
    except ImportError:
        raise ConfigError(attr.name, "must be a maxa_async.fleet.Fleet or None") from None
    if not isinstance(value, Fleet):
        raise ConfigError(attr.name, "must be a maxa_async.fleet.Fleet or None")


def _redacted(url: str | None) -> str:
    """A URL for repr, its password (a proxy's, Redis's) replaced."""
    if url is None:
        return "None"
    try:
        parsed = URL(url)
    except ValueError:
        return "'<not a URL>'"
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    return repr(str(parsed))


# -- converters: one spelling for values that have several ---------------------------------------


def timeout_from(value: Timeout | float | None) -> Timeout:
    """A :class:`Timeout` from a Timeout, a number of seconds (the per-attempt limit; the
    connect limit is the same, at most 10 s) or None (the defaults)."""
    if value is None:
        return Timeout()
    if isinstance(value, Timeout):
        return value
    if not _finite(value) or value <= 0:
        raise ConfigError("timeout", "must be a Timeout or a positive number")
    return Timeout(request=float(value), connect=min(10.0, float(value)))


def proxy_from(value: str | None) -> str | None:
    """An ``http://`` or ``https://`` proxy URL, normalised; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("proxy", "must be a URL such as http://proxy.internal:3128")
    url = URL(value.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError("proxy", "must be an http:// or https:// URL with a host")
    return str(url)


def middlewares_from(
    value: Sequence[ClientMiddlewareType] | None,
) -> tuple[ClientMiddlewareType, ...]:
    """aiohttp client middlewares as a tuple (the options do not change when the caller's
    list does); each must be callable, and the installed aiohttp must have them."""
    if value is None:
        return ()
    if callable(value) or isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigError("middlewares", "must be a list or tuple of aiohttp client middlewares")
    middlewares = tuple(value)
    for index, middleware in enumerate(middlewares):
        if not callable(middleware):
            raise ConfigError(
                f"middlewares[{index}]",
                "must be an aiohttp client middleware, an async callable "
                f"(request, handler) -> response; got {type(middleware).__name__}",
            )
    if middlewares and not hasattr(aiohttp, "ClientMiddlewareType"):
        raise ConfigError(
            "middlewares",
            f"client middlewares need aiohttp >= 3.12 (installed: {aiohttp.__version__}); "
            "upgrade aiohttp, or use the on_request/on_response hooks",
        )
    return middlewares


def _fleet_options_from(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A copy (the options do not change when the caller's mapping does) of known keys."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError("fleet_options", "must be a mapping of Fleet options or None")
    unknown = sorted(str(key) for key in value if key not in FLEET_OPTION_NAMES)
    if unknown:
        known = ", ".join(sorted(FLEET_OPTION_NAMES))
        raise ConfigError("fleet_options", f"unknown option(s) {unknown}; known: {known}")
    return dict(value)


def ssl_context_from(
    ca_bundle: str | os.PathLike[str], ssl: ssl_module.SSLContext | bool
) -> ssl_module.SSLContext:
    """A context trusting the CA certificates of ``ca_bundle`` (a PEM file) only."""
    if ssl is not True:
        raise ConfigError("ca_bundle", "give either ca_bundle or ssl, not both")
    try:
        return ssl_module.create_default_context(cafile=os.fspath(ca_bundle))
    except (ssl_module.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            "ca_bundle", f"not a readable PEM file of CA certificates: {exc}"
        ) from None


@attrs.frozen(kw_only=True)
class ClientOptions:
    """The keyword options of :class:`~maxa_async.MaxaClient`, checked.

    Same names, defaults and meanings as the client's keywords (see its docstring), plus
    ``fleet``. ``timeout`` is kept as a :class:`Timeout` (a number of seconds or None is
    turned into one); ``proxy`` is kept normalised; ``middlewares`` is kept as a tuple.
    Build variants with ``attrs.evolve``.

    Fleet mode is either ``fleet`` (a :class:`maxa_async.fleet.Fleet` you made, used as it
    is: its token store, rate gate and stats) or ``redis_url`` (the client makes the Fleet,
    with ``fleet_rate_limit`` and ``fleet_options``), not both. An explicit
    ``token_store`` or ``rate_gate`` wins over the fleet's.
    """

    base_url: str = attrs.field(default=DEFAULT_BASE_URL, validator=_reraised(check_base_url))
    max_concurrency: int = attrs.field(default=64, validator=_max_concurrency)
    timeout: Timeout = attrs.field(factory=Timeout, converter=timeout_from)
    retry: RetryPolicy | None = attrs.field(
        default=None, validator=_optional(RetryPolicy, "must be a maxa.RetryPolicy or None")
    )
    retry_budget: RetryBudget | None = attrs.field(
        default=None, validator=_optional(RetryBudget, "must be a maxa.RetryBudget or None")
    )
    adaptive: bool = attrs.field(default=True, validator=_flag)
    rate_limit: float | None = attrs.field(
        default=None, validator=_optional_positive("must be positive requests/second")
    )
    fail_fast: bool = attrs.field(default=False, validator=_flag)
    coalesce: bool = attrs.field(default=True, validator=_flag)
    cache: ResponseCache | None = attrs.field(
        default=None, validator=_optional(ResponseCache, "must be a maxa.ResponseCache or None")
    )
    session: aiohttp.ClientSession | None = attrs.field(
        default=None,
        validator=_optional(aiohttp.ClientSession, "must be an aiohttp.ClientSession or None"),
    )
    ssl: ssl_module.SSLContext | bool = attrs.field(default=True, validator=_ssl)
    ca_bundle: str | os.PathLike[str] | None = attrs.field(default=None, validator=_ca_bundle)
    proxy: str | None = attrs.field(default=None, converter=proxy_from, repr=_redacted)
    trust_env: bool = attrs.field(default=False, validator=_flag)
    token_store: TokenStore | None = attrs.field(
        default=None,
        validator=_optional(
            TokenStore,
            "must implement maxa.TokenStore (load, save, invalidate, refresh_lease, aclose)",
        ),
    )
    rate_gate: RateGate | None = attrs.field(
        default=None,
        validator=_optional(
            RateGate,
            "must implement the RateGate protocol "
            "(acquire, observe, cool_down, learns_pace, aclose)",
        ),
    )
    fleet: Fleet | None = attrs.field(default=None, validator=_fleet)
    redis_url: str | None = attrs.field(default=None, validator=_redis_url, repr=_redacted)
    fleet_rate_limit: float | None = attrs.field(
        default=None, validator=_optional_positive("must be positive requests/second")
    )
    fleet_options: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_fleet_options_from
    )
    refresh_fraction: float = attrs.field(default=0.75, validator=_refresh_fraction)
    latency_tolerance: float | None = attrs.field(default=None, validator=_latency_tolerance)
    on_request: Callable[[RequestEvent], None] | None = attrs.field(
        default=None, validator=_optional_callable
    )
    on_response: Callable[[ResponseEvent], None] | None = attrs.field(
        default=None, validator=_optional_callable
    )
    max_response_bytes: int | Mapping[str, int] | None = attrs.field(
        default=None, validator=_reraised(response_limits)
    )
    middlewares: tuple[ClientMiddlewareType, ...] = attrs.field(
        default=(), converter=middlewares_from
    )

    def __attrs_post_init__(self) -> None:
        if self.ca_bundle is not None and self.ssl is not True:
            raise ConfigError("ca_bundle", "give either ca_bundle or ssl, not both")
        if self.middlewares and self.session is not None:
            # The session is the caller's: its middlewares are set where it is made.
            raise ConfigError(
                "middlewares",
                "give middlewares to your own session (aiohttp.ClientSession(middlewares=...)),"
                " not with session=",
            )
        if self.fleet is not None:
            for name in ("redis_url", "fleet_rate_limit", "fleet_options"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        name, "give either a Fleet (fleet=) or the options to make one, not both"
                    )
