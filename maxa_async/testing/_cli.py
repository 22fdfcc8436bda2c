"""Process mode: ``python -m maxa_async.testing``; ``maxa emulator`` reuses these functions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ._config import GatewayConfig, KnobSpec
from ._data import GatewayData
from ._server import FakeGateway

__all__ = ["build_arg_parser", "config_from_args", "data_from_args", "run_from_args", "serve"]


def _knob_argument(parser: argparse._ActionsContainer, spec: KnobSpec) -> None:
    text = f"{spec.help} (default: {spec.default})"
    if spec.kind == "bool":
        parser.add_argument(
            spec.option,
            dest=spec.name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=text,
        )
        return
    converters: dict[str, Callable[[str], Any]] = {"str": str, "float": float, "int": int}
    if spec.kind == "statuses":
        parser.add_argument(spec.option, dest=spec.name, default=None, metavar="CODES", help=text)
        return
    parser.add_argument(
        spec.option,
        dest=spec.name,
        type=converters[spec.kind],
        default=None,
        metavar=spec.name.split("_")[-1].upper() if spec.kind == "str" else spec.kind.upper(),
        help=text,
    )


def build_arg_parser(prog: str = "python -m maxa_async.testing") -> argparse.ArgumentParser:
    """Options: ``--host``, ``--port``, ``--data FILE``, ``--data-seed N``, ``--no-generated``,
    and one option per :meth:`GatewayConfig.knob_specs` knob (``--token-ttl``, ``--rps-limit``,
    ``--blocked-ip/--no-blocked-ip`` ...)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the fake DITAS/MAXA gateway. Prints one JSON line with base_url and "
        "credentials when ready; serves until SIGINT/SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="FILE",
        help="add terms from a CSV or JSON file (repeatable)",
    )
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated eRx/IRC")
    parser.add_argument(
        "--no-generated",
        action="store_true",
        help="skip the generated eRx and IRC (samples only)",
    )
    knobs = parser.add_argument_group("knobs")
    for spec in GatewayConfig.knob_specs():
        _knob_argument(knobs, spec)
    return parser


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    """The GatewayConfig of the knob options that were given (others keep their defaults)."""
    given = {
        name: getattr(args, name)
        for name in GatewayConfig.knob_names()
        if getattr(args, name, None) is not None
    }
    return GatewayConfig.from_dict(given)


def data_from_args(args: argparse.Namespace) -> GatewayData:
    """The default data for ``--data-seed`` (and ``--no-generated``), plus each ``--data`` file."""
    data = GatewayData.default(args.data_seed, generated=not args.no_generated)
    for path in args.data:
        data.load_file(path)
    return data


def ready_line(gateway: FakeGateway) -> str:
    """The JSON line printed when the gateway listens."""
    cfg = gateway.config
    return orjson.dumps(
        {
            "base_url": gateway.base_url,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "username": cfg.username,
            "password": cfg.password,
            "pid": cfg.pid,
        }
    ).decode()


async def serve(
    gateway: FakeGateway, *, on_ready: Callable[[FakeGateway], None] | None = None
) -> None:
    """Run ``gateway`` until SIGINT or SIGTERM (or cancellation), then close it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        async with gateway:
            if on_ready is not None:
                on_ready(gateway)
            await stop.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def _print_ready(gateway: FakeGateway) -> None:
    sys.stdout.write(ready_line(gateway) + "\n")
    sys.stdout.flush()


def run_from_args(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until SIGINT/SIGTERM, return the exit status (0)."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        data = data_from_args(args)
    except (TypeError, ValueError, OSError) as exc:
        parser.error(str(exc))
    gateway = FakeGateway(config, host=args.host, port=args.port, data=data)
    # KeyboardInterrupt: a Ctrl-C before the signal handlers are installed.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(gateway, on_ready=_print_ready))
    return 0
