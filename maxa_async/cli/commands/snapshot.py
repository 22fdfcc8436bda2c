"""``maxa snapshot pull|sync|info``: whole terminology versions in a local SQLite file."""

from __future__ import annotations

import click

from .._errors import EXIT_CODES_HELP
from .._options import current_options, global_options, snapshot_option
from .._output import Output
from .._session import run_async
from .._snapshot import run_info, run_pull, run_sync, snapshot_path

__all__ = ["snapshot"]


@click.group(epilog=EXIT_CODES_HELP)
@snapshot_option
@global_options
def snapshot() -> None:
    """Offline snapshots: whole terminology versions in one local SQLite file.

    Pull a terminology once, keep it current with `maxa snapshot sync` (from cron, say),
    and validate against it with `maxa validate FILE --offline` (no network, no
    credentials) or `--hybrid` (the gateway only for codes the snapshot lacks).

    The file is --snapshot PATH, else MAXA_SNAPSHOT (environment or .env), else
    ./maxa-snapshot.db. Several processes may read it while one pulls or syncs.
    """


@snapshot.command("pull")
@click.argument("terminology")
@click.option(
    "--version",
    "version",
    default=None,
    help="a version, as `maxa versions TERMINOLOGY` lists them [default: the latest]",
)
@snapshot_option
@global_options
def snapshot_pull(terminology: str, version: str | None) -> int:
    """Fetch a whole version of TERMINOLOGY into the snapshot file (created if missing).

    TerminologyVersions picks the version, TerminologiesTermByVersion fetches its terms,
    and one transaction replaces the terminology's previous snapshot: a failed or
    interrupted pull leaves the previous one intact. Prints the terms, the version, the
    time taken and the file's size.
    """
    options = current_options()
    output = Output(json_mode=options.json)
    path = snapshot_path(options)
    return run_async(lambda: run_pull(options, path, terminology, version, output))


@snapshot.command("sync")
@click.argument("terminologies", nargs=-1, metavar="[TERMINOLOGY]...")
@snapshot_option
@global_options
def snapshot_sync(terminologies: tuple[str, ...]) -> int:
    """Bring the snapshots up to date (every terminology in the file, or those named).

    If TerminologyVersions marks a newer version latest, it is pulled whole (repulled);
    otherwise SearchTerminology returns the terms created since the last sync (minus a
    5-minute margin) and they are written in: counted as added (new codes), changed (new
    value) or unchanged. Codes deleted within a version go unnoticed until the next one.
    """
    options = current_options()
    output = Output(json_mode=options.json)
    path = snapshot_path(options)
    return run_async(lambda: run_sync(options, path, terminologies, output))


@snapshot.command("info")
@snapshot_option
@global_options
def snapshot_info() -> int:
    """List the snapshots in the file: terminology, version, terms, last sync, age, gateway.

    Reads the file only: no gateway, no credentials.
    """
    options = current_options()
    output = Output(json_mode=options.json)
    path = snapshot_path(options)
    return run_async(lambda: run_info(path, output))
