"""``maxa token``: check the credentials, and say where each setting came from."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from ...client import MaxaClient
from .._errors import ExitCode
from .._options import current_options, global_options
from .._output import Output
from .._session import client_call
from .._settings import resolve_settings

__all__ = ["token"]

_FAR_FUTURE = "far future (after the year 9999)"


def _expiry_text(expires_at: float) -> str | None:
    """The local expiry time, or None when the gateway's expires_in is so large (1e12,
    1e300) that no date can say it."""
    try:
        moment = dt.datetime.fromtimestamp(expires_at).astimezone()
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds")


@click.command()
@click.option("--show", is_flag=True, help="print the access token itself (keep it secret)")
@global_options
def token(show: bool) -> int:
    """Check the credentials: get a token and print its lifetime."""

    options = current_options()
    if options.emulator:
        sources = "the in-process fake gateway (--emulator)"
    else:
        found = resolve_settings(options).sources
        sources = ", ".join(f"{name}: {found[name]}" for name in sorted(found)) or "defaults"

    async def body(client: MaxaClient, output: Output) -> int:
        granted = await client.tokens.get()
        expires_at = _expiry_text(granted.expires_at)
        payload: dict[str, Any] = {
            "base_url": client.base_url,
            "token_type": granted.token_type,
            "expires_in": round(granted.lifetime),
            # JSON: null past what a date can say; a table says "far future"
            "expires_at": expires_at if expires_at or output.json_mode else _FAR_FUTURE,
            "scope": granted.scope,
        }
        payload["settings_from"] = sources
        if show:
            payload["access_token"] = granted.access_token
        if output.json_mode:
            output.json(payload)
        else:
            rows = [(key.replace("_", " "), value) for key, value in payload.items()]
            output.pairs(rows, title="token granted")
            if not show:
                output.note("the token itself is not shown; pass --show to print it")
        return ExitCode.OK

    return client_call(options, body)
