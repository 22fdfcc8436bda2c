"""What every command shares about its options: the global ones, ``--snapshot``,
``--concurrency``, the online/offline/hybrid choice, and the DURATION and DATE types.

The global options are gathered, as they are parsed, into one :class:`GlobalOptions` in the
root context's ``obj`` (``maxa`` before or after the command's name both land there);
:func:`current_options` hands it to a command.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from ..errors import InvalidInputError
from ..jalali import JalaliDateTime
from ._errors import UsageProblem
from ._settings import DEFAULT_SNAPSHOT, GlobalOptions, Mode

__all__ = [
    "Duration",
    "JalaliDate",
    "answer_mode",
    "concurrency_option",
    "current_options",
    "global_options",
    "snapshot_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def current_options(ctx: click.Context | None = None) -> GlobalOptions:
    """The global options of this run (the root context's ``obj``)."""
    root = (ctx or click.get_current_context()).find_root()
    options: GlobalOptions = root.ensure_object(GlobalOptions)
    return options


def _enable_debug_logging() -> None:
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _store(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """An option callback that records a given value in the run's :class:`GlobalOptions`."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False:
            return
        setattr(current_options(ctx), name, value)
        if name == "debug":
            _enable_debug_logging()

    return callback


_VALUE_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--client-id", "client_id", "OAuth2 client id [MAXA_CLIENT_ID]"),
    ("--client-secret", "client_secret", "client secret [MAXA_CLIENT_SECRET]; prefer the env"),
    ("--username", "username", "DITAS user name [MAXA_USERNAME]"),
    ("--password", "password", "DITAS password [MAXA_PASSWORD]; prefer the environment"),
    ("--pid", "pid", "service id sent as the pid header [MAXA_PID]"),
    ("--base-url", "base_url", "gateway URL [MAXA_BASE_URL; default the DITAS gateway]"),
    (
        "--redis-url",
        "redis_url",
        "fleet mode: share token and rate budget via Redis [MAXA_REDIS_URL]",
    ),
    ("--proxy", "proxy", "an http:// proxy for every request [MAXA_PROXY]"),
    ("--ca-bundle", "ca_bundle", "PEM file of the CAs to trust for the gateway [MAXA_CA_BUNDLE]"),
    ("--env-file", "env_file", "read MAXA_* settings from this file [default: ./.env if any]"),
)
_FLAG_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--emulator", "emulator", "talk to a fake gateway started in this process"),
    ("--json", "json", "print JSON (UTF-8) instead of tables"),
    ("--debug", "debug", "debug logging, and full tracebacks on errors"),
    ("--otel", "otel", "print an OpenTelemetry span per MAXA call to stderr (needs the SDK)"),
)


def global_options(command: F) -> F:
    """Connection and output options, accepted before or after a command's name."""
    for flag, name, text in reversed(_FLAG_OPTIONS):
        command = click.option(
            flag, is_flag=True, default=False, expose_value=False, callback=_store(name), help=text
        )(command)
    for flag, name, text in reversed(_VALUE_OPTIONS):
        command = click.option(
            flag,
            default=None,
            metavar="TEXT" if name != "env_file" else "PATH",
            expose_value=False,
            callback=_store(name),
            help=text,
        )(command)
    return command


def snapshot_option(command: F) -> F:
    """``--snapshot PATH``: the snapshot file (snapshot commands, validate and serve)."""
    return click.option(
        "--snapshot",
        default=None,
        metavar="PATH",
        expose_value=False,
        callback=_store("snapshot"),
        help=f"the snapshot file [MAXA_SNAPSHOT; default: ./{DEFAULT_SNAPSHOT}]",
    )(command)


def concurrency_option(default: int, text: str = "most requests in flight") -> Callable[[F], F]:
    """``--concurrency N``: the most requests in flight, 1 to 1000."""
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1, max=1000),
        default=default,
        show_default=True,
        help=text,
    )


def answer_mode(
    options: GlobalOptions, *, offline: bool, hybrid: bool, max_age: float | None
) -> Mode:
    """``--offline``, ``--hybrid`` or neither (online), once their combination is checked."""
    if offline and hybrid:
        raise UsageProblem("--offline and --hybrid exclude each other; pick one")
    if max_age is not None and not hybrid:
        raise UsageProblem("--max-age applies to --hybrid only")
    if offline and options.emulator:
        raise UsageProblem("--offline asks no gateway; drop --emulator (or use --hybrid)")
    return "offline" if offline else "hybrid" if hybrid else "online"


# ---------------------------------------------------------------------------- value types

_DURATION_UNITS: Mapping[str, float] = types.MappingProxyType(
    {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
)


class Duration(click.ParamType[float]):
    """Seconds: ``90``, ``90s``, ``30m``, ``12h`` or ``7d``."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number, scale = float(value), 1.0
        else:
            text = str(value).strip().lower()
            scale = _DURATION_UNITS.get(text[-1:], 1.0)
            if text[-1:] in _DURATION_UNITS:
                text = text[:-1].strip()
            try:
                number = float(text)
            except ValueError:
                self.fail(
                    f"{value!r}: expected seconds, or a number with s, m, h or d (e.g. 12h)",
                    param,
                    ctx,
                )
        if not math.isfinite(number) or number < 0:
            self.fail(f"{value!r}: must be zero or more", param, ctx)
        return number * scale


class JalaliDate(click.ParamType[JalaliDateTime]):
    """A Jalali date, ``1390/10/10`` or ``1390/10/10 10:10:10``; a Gregorian ISO date
    (year 1700 or later, e.g. ``2012-01-01``) is converted."""

    name = "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> JalaliDateTime:
        if isinstance(value, JalaliDateTime):
            return value
        text = str(value).strip()
        try:
            parsed = JalaliDateTime.parse(text)
        except InvalidInputError as exc:
            self.fail(exc.message, param, ctx)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if parsed.year < 1700:
            return parsed
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            self.fail(f"{text!r}: {exc}", param, ctx)
        return JalaliDateTime.from_datetime(moment)
