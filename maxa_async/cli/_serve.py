"""``maxa serve --fhir``: MAXA as a FHIR R4 terminology server, online, offline or hybrid."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import click

from ..snapshot import HybridValidator, SnapshotStore
from ._app import Duration, _options, global_options, snapshot_option
from ._errors import EXIT_CODES_HELP, ExitCode, UsageProblem
from ._session import connect, run_async
from ._settings import GlobalOptions, resolve_settings
from ._snapshot import open_existing, snapshot_path

__all__ = ["serve"]


def _require_credentials(options: GlobalOptions, mode: str) -> None:
    if options.emulator:
        return
    try:
        resolve_settings(options).require_credentials()
    except UsageProblem as exc:
        hint = "; --offline needs no credentials" if mode == "hybrid" else ""
        raise UsageProblem(f"{mode} mode asks the gateway: {exc}{hint}") from None


@contextlib.asynccontextmanager
async def _validator(
    options: GlobalOptions, mode: str, concurrency: int, max_age: float | None
) -> AsyncIterator[tuple[object, SnapshotStore | None]]:
    """The validator behind the server, and the snapshot store if there is one."""
    if mode == "offline":
        async with open_existing(snapshot_path(options)) as store:
            yield store, store
    elif mode == "hybrid":
        async with (
            open_existing(snapshot_path(options)) as store,
            connect(options, max_concurrency=concurrency) as connection,
        ):
            yield HybridValidator(store, connection.client, max_age=max_age), store
    else:
        async with connect(options, max_concurrency=concurrency) as connection:
            yield connection.client, None


async def _until_terminated() -> None:
    """Wait for SIGTERM (a clean stop: exit 0); Ctrl-C still interrupts (exit 130)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Windows, or not the main thread: no handler; SIGTERM then cancels (run_async's)
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _serve(
    options: GlobalOptions,
    *,
    mode: str,
    host: str,
    port: int,
    concurrency: int,
    max_age: float | None,
) -> int:
    from ..fhir import FhirServer, FhirTerminology

    async with _validator(options, mode, concurrency, max_age) as (validator, store):
        terminologies: list[str] = []
        if store is not None:
            infos = await store.snapshots()
            if not infos:
                raise UsageProblem(
                    f"the snapshot file {store.path} holds no terminology; "
                    "pull one first (maxa snapshot pull TERMINOLOGY)"
                )
            terminologies = [info.terminology_id for info in infos]
            await store.load(*terminologies)  # the first requests must not wait for a load
        terminology = FhirTerminology(validator)
        server = FhirServer(terminology, host=host, port=port)
        try:
            await server.start()
        except OSError as exc:
            raise UsageProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            ready: dict[str, Any] = {
                "base_url": server.base_url,
                "mode": mode,
                "snapshot": None if store is None else store.path,
                "terminologies": terminologies,
            }
            sys.stdout.write(json.dumps(ready, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            where = f" from {store.path}" if store is not None else ""
            sys.stderr.write(
                f"FHIR terminology server ({mode}{where}) at {server.base_url}/ "
                f"(GET {server.base_url}/metadata; Ctrl-C to stop)\n"
            )
            sys.stderr.flush()
            await _until_terminated()
        finally:
            await server.close()
    return ExitCode.OK


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
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=1000),
    default=32,
    show_default=True,
    help="most gateway requests in flight (online and hybrid)",
)
@snapshot_option
@global_options
def _serve_command(
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
    options = _options()
    if not fhir:
        raise UsageProblem("maxa serve speaks FHIR only: add --fhir")
    if offline and hybrid:
        raise UsageProblem("--offline and --hybrid exclude each other; pick one")
    if max_age is not None and not hybrid:
        raise UsageProblem("--max-age applies to --hybrid only")
    if offline and options.emulator:
        raise UsageProblem("--offline asks no gateway; drop --emulator (or use --hybrid)")
    mode = "offline" if offline else "hybrid" if hybrid else "online"
    if mode != "offline":
        _require_credentials(options, mode)
    return run_async(
        lambda: _serve(
            options, mode=mode, host=host, port=port, concurrency=concurrency, max_age=max_age
        )
    )


#: Annotated: ``_app`` imports this module while it is itself being imported.
serve: click.Command = _serve_command
