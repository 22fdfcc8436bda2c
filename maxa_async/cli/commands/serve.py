"""``maxa serve --fhir``: MAXA as a FHIR R4 terminology server, online, offline or hybrid."""

from __future__ import annotations

import click

from .._errors import EXIT_CODES_HELP, UsageProblem
from .._options import (
    Duration,
    answer_mode,
    concurrency_option,
    current_options,
    global_options,
    snapshot_option,
)
from .._serve import run_server
from .._session import require_gateway_credentials, run_async

__all__ = ["serve"]


@click.command("serve", epilog=EXIT_CODES_HELP)
@click.option("--fhir", is_flag=True, help="serve FHIR R4 terminology operations (required)")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to bind; another than loopback exposes the server to the network",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8080,
    show_default=True,
    help="port to listen on (0: any free one; the ready line says which)",
)
@click.option("--offline", is_flag=True, help="answer from the snapshot file only")
@click.option(
    "--hybrid",
    is_flag=True,
    help="answer from the snapshot file, asking the gateway only for what it lacks",
)
@click.option(
    "--max-age",
    type=Duration(),
    default=None,
    help="with --hybrid: ask the gateway about a display the snapshot calls invalid if "
    "the snapshot was synced longer ago than this (e.g. 12h, 7d)",
)
@concurrency_option(32, "most gateway requests in flight (online and hybrid)")
@snapshot_option
@global_options
def serve(
    fhir: bool,
    host: str,
    port: int,
    offline: bool,
    hybrid: bool,
    max_age: float | None,
    concurrency: int,
) -> int:
    """Serve MAXA as a FHIR R4 terminology server until Ctrl-C or SIGTERM.

    GET /metadata (?mode=terminology), CodeSystem/$validate-code, ValueSet/$validate-code,
    CodeSystem/$lookup and ValueSet/$expand (GET with query parameters or POST a
    Parameters resource), and batch Bundles POSTed to the base. Online by default (the
    gateway, with the same settings as the other commands, or --emulator); --offline
    answers from the snapshot file without network or credentials; --hybrid asks the
    gateway only about what the snapshot lacks. $expand needs a snapshot.

    Code systems: SNOMEDCT, LNC, ICD10, ATC and UCUM are HL7's URIs
    (http://snomed.info/sct ...); every other MAXA terminology is
    urn:maxa-async:CodeSystem:<id> (e.g. urn:maxa-async:CodeSystem:eRx), a URN local to
    maxa-async until the ministry publishes its own.

    stdout gets one JSON ready line (base_url, mode, snapshot, terminologies).
    """
    options = current_options()
    if not fhir:
        raise UsageProblem("maxa serve speaks FHIR only: add --fhir")
    mode = answer_mode(options, offline=offline, hybrid=hybrid, max_age=max_age)
    if mode != "offline":
        require_gateway_credentials(
            options,
            why=f"{mode} mode asks the gateway",
            hint="; --offline needs no credentials" if mode == "hybrid" else "",
        )
    return run_async(
        lambda: run_server(
            options, mode=mode, host=host, port=port, concurrency=concurrency, max_age=max_age
        )
    )
