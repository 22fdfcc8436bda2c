"""``maxa serve --fhir`` at work: MAXA as a FHIR R4 terminology server, online, offline or
hybrid, until SIGTERM or Ctrl-C. The command itself is ``commands/serve.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from ..snapshot import HybridValidator, SnapshotStore
from ._errors import ExitCode, UsageProblem
from ._session import connect
from ._settings import GlobalOptions, Mode
from ._snapshot import open_existing, snapshot_path

__all__ = ["run_server"]


@contextlib.asynccontextmanager
async def _validator(
    options: GlobalOptions, mode: Mode, concurrency: int, max_age: float | None
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


async def run_server(
    options: GlobalOptions,
    *,
    mode: Mode,
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
