"""``maxa demo`` and ``maxa emulator``: the fake gateway, driven by a generated batch or
served in the foreground."""

from __future__ import annotations

import click

from .._demo import DemoOptions, print_demo, run_demo
from .._errors import ExitCode, UsageProblem
from .._options import concurrency_option, current_options, global_options
from .._output import Output
from .._session import connect, run_async

__all__ = ["demo", "emulator"]


@click.command()
@click.option(
    "--items",
    type=click.IntRange(min=1),
    default=30_000,
    show_default=True,
    help="prescription lines to check",
)
@concurrency_option(64)
@click.option("--seed", default=0, show_default=True, help="seed of the batch and the faults")
@click.option(
    "--rps-limit",
    default=2000.0,
    show_default=True,
    help="the fake gateway's requests/second limit, answered with 429 (0: none)",
)
@click.option(
    "--token-ttl", default=3.0, show_default=True, help="the fake's token lifetime, seconds"
)
@click.option(
    "--error-rate", default=0.002, show_default=True, help="share of requests answered 5xx"
)
@click.option("--drop-rate", default=0.001, show_default=True, help="share of connections dropped")
@click.option("--latency", default=0.0, show_default=True, help="seconds added per request")
@global_options
def demo(
    items: int,
    concurrency: int,
    seed: int,
    rps_limit: float,
    token_ttl: float,
    error_rate: float,
    drop_rate: float,
    latency: float,
) -> int:
    """Bulk-validate a generated batch against a fake gateway started in this process.

    The batch repeats popular drugs (Zipf) and plants 8% invalid lines; the fake gateway
    limits the request rate, expires tokens every few seconds and fails a few requests,
    so the summary shows the client backing off, refreshing and retrying.
    """
    from ...testing import GatewayConfig

    try:
        config = GatewayConfig(
            seed=seed,
            rps_limit=rps_limit or None,
            token_ttl=token_ttl,
            error_rate=error_rate,
            drop_rate=drop_rate,
            latency=latency,
        )
    except (TypeError, ValueError) as exc:
        raise UsageProblem(str(exc)) from None
    options = current_options()
    output = Output(json_mode=options.json)

    async def main() -> int:
        async with connect(options, max_concurrency=concurrency, emulator=config) as connection:
            report = await run_demo(
                connection.client,
                DemoOptions(items=items, concurrency=concurrency, seed=seed),
                output,
            )
            if connection.gateway is not None:
                report.gateway = connection.gateway.stats.as_dict()
                report.gateway_knobs = connection.gateway.config.as_dict()
        print_demo(report, output)
        return ExitCode.ERROR if report.mismatches else ExitCode.OK

    return run_async(main)


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def emulator(args: tuple[str, ...]) -> int:
    """Run the fake gateway in the foreground: [--host H] [--port N] [knobs...].

    `maxa emulator --help` lists every knob (token lifetime, rate limit, error rates...).
    """
    from .._emulator import run_emulator

    return run_emulator(args)
