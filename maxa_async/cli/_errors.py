"""Exit codes, and how each failure becomes one line on stderr."""

from __future__ import annotations

import enum
import shlex
import sqlite3

from ..errors import (
    AuthenticationError,
    ForbiddenError,
    HttpsRequiredError,
    InvalidInputError,
    MaxaError,
    NotFoundError,
    RateLimitedError,
    ServiceError,
    TransportError,
)
from ..snapshot import NoSnapshotError, SnapshotError

__all__ = [
    "EXIT_CODES_HELP",
    "ExitCode",
    "UsageProblem",
    "describe",
    "exit_code_for",
    "no_snapshot_message",
]


class ExitCode(enum.IntEnum):
    OK = 0
    INVALID = 1  # validate: some rows are invalid (none errored)
    ERROR = 2  # validate: some rows errored; other commands: the gateway or network failed
    USAGE = 3  # bad options or configuration, rejected credentials, unreadable files
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


EXIT_CODES_HELP = (
    "Exit codes: 0 success (validate: every row valid); "
    "1 validate: some rows invalid, none errored; "
    "2 validate: some rows errored (takes precedence over 1), other commands: the call "
    "failed (not found, rate limited, gateway or network error); "
    "3 usage or configuration error (bad option, missing or rejected credentials, "
    "blocked IP, unreadable file, missing or damaged snapshot file); 130 interrupted."
)


class UsageProblem(Exception):
    """A mistake in options, configuration or files: exit 3, one line, no traceback."""


# Failures that mean "fix your configuration", not "try again later".
_CONFIG_ERRORS = (AuthenticationError, ForbiddenError, HttpsRequiredError, InvalidInputError)


def _busy(error: SnapshotError) -> bool:
    """The file is locked by another writer (SQLite gave up waiting): try again later."""
    cause = error.__cause__
    name = getattr(cause, "sqlite_errorname", "") if isinstance(cause, sqlite3.Error) else ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, (UsageProblem, *_CONFIG_ERRORS)):
        return ExitCode.USAGE
    if isinstance(error, SnapshotError):
        # Missing, damaged or too new a file, or a terminology never pulled: fix and rerun.
        return ExitCode.ERROR if _busy(error) else ExitCode.USAGE
    return ExitCode.ERROR


_HINTS: tuple[tuple[type[MaxaError], str], ...] = (
    (
        AuthenticationError,
        "check MAXA_CLIENT_ID, MAXA_CLIENT_SECRET, MAXA_USERNAME, MAXA_PASSWORD and MAXA_PID",
    ),
    (ForbiddenError, "ask DITAS to register this machine's public IP address"),
    (NotFoundError, "check the terminology id, code and version (maxa versions TERMINOLOGY)"),
    (RateLimitedError, "try again later, or with a lower --concurrency"),
    (TransportError, "check MAXA_BASE_URL and the network"),
    (ServiceError, "the gateway or the service behind it failed; try again later"),
)

_LABELS: tuple[tuple[type[MaxaError], str], ...] = (
    (AuthenticationError, "authentication failed"),
    (ForbiddenError, "forbidden"),
    (NotFoundError, "not found"),
    (RateLimitedError, "rate limited"),
    (TransportError, "connection failed"),
    (ServiceError, "gateway error"),
    (HttpsRequiredError, "https required"),
    (InvalidInputError, "invalid input"),
)


def no_snapshot_message(error: NoSnapshotError) -> str:
    """A terminology never pulled, in the command line's words (the library's message
    names its Python API). The id comes from the input file: the command is quoted so that
    pasting it into a shell runs exactly that command."""
    where = f" in {error.path}" if error.path else ""
    name = error.terminology_id
    command = f"maxa snapshot pull {shlex.quote(name)}"
    return f"no snapshot of terminology {name!r}{where}; pull it first: {command}"


def describe(error: BaseException, *, debug: bool = False) -> str:
    """One line for stderr. MaxaError messages never carry secrets (the library's promise).
    With ``debug`` the traceback was printed already: no hint to rerun with --debug."""
    if isinstance(error, UsageProblem):
        return str(error)
    if isinstance(error, NoSnapshotError):
        return no_snapshot_message(error)
    if isinstance(error, SnapshotError):
        return str(error)  # names the file and what to do
    if isinstance(error, MaxaError):
        label = next((text for cls, text in _LABELS if isinstance(error, cls)), "error")
        hint = next((text for cls, text in _HINTS if isinstance(error, cls)), None)
        message = str(error)
        said = label.split()[0] in message.lower()  # "not found (...)" needs no label
        line = message if said else f"{label}: {message}"
        return f"{line}; {hint}" if hint else line
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    name = type(error).__name__
    if debug:
        return f"unexpected {name}: {text}"
    return f"unexpected {name}: {text} (rerun with --debug for the traceback)"
