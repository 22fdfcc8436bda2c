"""The ``maxa`` command: the click group, its commands, and how a failure is told.

Where things go:

- a new command (or group of commands): a module in ``commands/``, registered below with
  ``cli.add_command``; its options, help text and option checks live there, the work it
  does in a module of its own one level up (as ``_validate``, ``_snapshot``, ``_serve``);
- an option every command takes, ``--snapshot``, ``--concurrency``, a value type:
  ``_options.py``;
- opening a client (the gateway or ``--emulator``) and running a coroutine: ``_session.py``;
- where a setting comes from (flag, environment, ``.env``): ``_settings.py``;
- exit codes and the one-line message for each failure: ``_errors.py``.

The run's global options live in the root click context (``ctx.obj``, a
:class:`GlobalOptions` that :func:`main` creates), never in a module variable: ``--debug``
(or ``MAXA_DEBUG``) is read from there when an error is printed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import click

from .. import __version__
from ._errors import EXIT_CODES_HELP, ExitCode, describe, exit_code_for
from ._options import global_options
from ._output import ensure_utf8_streams
from ._settings import GlobalOptions
from .commands.demo import demo, emulator
from .commands.lookups import lookup, search, terminologies, terms, versions
from .commands.serve import serve
from .commands.snapshot import snapshot
from .commands.token import token
from .commands.validate import validate

__all__ = ["cli", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="maxa")
@global_options
def cli() -> None:
    """maxa: look codes up in MAXA (Iran's health coding reference) and validate
    prescription files, through the DITAS gateway.

    Credentials come from flags, then MAXA_CLIENT_ID, MAXA_CLIENT_SECRET, MAXA_USERNAME,
    MAXA_PASSWORD, MAXA_PID (and MAXA_BASE_URL) in the environment, then ./.env.
    Try it without any: `maxa demo`, or any command with --emulator.
    """


# `maxa --help` lists the commands by name, whatever the order here.
cli.add_command(demo)
cli.add_command(emulator)
cli.add_command(token)
cli.add_command(terminologies)
cli.add_command(versions)
cli.add_command(lookup)
cli.add_command(search)
cli.add_command(terms)
cli.add_command(snapshot)
cli.add_command(validate)
cli.add_command(serve)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``maxa`` console script. Returns the exit code (see ``maxa --help``)."""
    ensure_utf8_streams()
    # A failure is told in one line by the handler below; without this, logging's
    # last-resort handler would print the library's warnings about it too (--debug shows
    # every record through the root logger).
    library = logging.getLogger("maxa_async")
    if not any(isinstance(handler, logging.NullHandler) for handler in library.handlers):
        library.addHandler(logging.NullHandler())
    options = GlobalOptions()  # the root context's obj: filled in as the options are parsed
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="maxa",
            standalone_mode=False,
            obj=options,
        )
    except click.exceptions.Abort:
        sys.stderr.write("maxa: interrupted\n")
        return ExitCode.INTERRUPTED
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `maxa`: the help, not an error
        sys.stdout.write(exc.format_message() + "\n")
        return ExitCode.OK
    except click.ClickException as exc:
        sys.stderr.write(f"maxa: error: {exc.format_message()}\n")
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            sys.stderr.write(f"try '{exc.ctx.command_path} --help'\n")
        return ExitCode.USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("maxa: interrupted\n")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # UsageProblem, MaxaError and anything unexpected: one line
        debug = options.debug or bool(os.environ.get("MAXA_DEBUG"))
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"maxa: {describe(exc, debug=debug)}\n")
        return exit_code_for(exc)
    return int(result) if isinstance(result, int) else ExitCode.OK
