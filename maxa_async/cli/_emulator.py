"""``maxa emulator``: the fake gateway in the foreground, with the fake's own options."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Sequence

from ._errors import ExitCode

__all__ = ["run_emulator"]


def run_emulator(argv: Sequence[str]) -> int:
    """Parse the fake gateway's options (``--port``, ``--rps-limit``, ...), serve until
    Ctrl-C or SIGTERM. stdout gets the fake's one JSON ready line; stderr a note for people."""
    from ..testing import FakeGateway, build_arg_parser, config_from_args, data_from_args, serve

    parser = build_arg_parser(prog="maxa emulator")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse: --help exits 0, a bad option 2
        return ExitCode.OK if exc.code in (0, None) else ExitCode.USAGE
    try:
        config = config_from_args(args)
        data = data_from_args(args)
    except (TypeError, ValueError, OSError) as exc:
        sys.stderr.write(f"maxa: {exc}\n")
        return ExitCode.USAGE

    def ready(gateway: FakeGateway) -> None:
        cfg = gateway.config
        line = {
            "base_url": gateway.base_url,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "username": cfg.username,
            "password": cfg.password,
            "pid": cfg.pid,
        }
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        # These are the fake's test credentials, not secrets.
        sys.stderr.write(
            f"fake MAXA gateway listening on {gateway.base_url} (Ctrl-C to stop)\n"
            f"  export MAXA_BASE_URL={gateway.base_url} MAXA_CLIENT_ID={cfg.client_id} "
            f"MAXA_CLIENT_SECRET={cfg.client_secret} MAXA_USERNAME={cfg.username} "
            f"MAXA_PASSWORD={cfg.password} MAXA_PID={cfg.pid}\n"
        )
        sys.stderr.flush()

    gateway = FakeGateway(config, host=args.host, port=args.port, data=data)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(gateway, on_ready=ready))
    except OSError as exc:  # e.g. the port is taken
        sys.stderr.write(f"maxa: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
        return ExitCode.USAGE
    return ExitCode.OK
