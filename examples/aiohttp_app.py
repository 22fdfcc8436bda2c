"""An aiohttp.web backend that checks a prescription's items against MAXA.

One ``MaxaClient`` per application, opened and closed by a ``cleanup_ctx``, shared by
every request handler.

Run it (credentials from MAXA_* environment variables)::

    export MAXA_CLIENT_ID=... MAXA_CLIENT_SECRET=... MAXA_USERNAME=... \\
           MAXA_PASSWORD=... MAXA_PID=...
    python examples/aiohttp_app.py --port 8080

    curl -s localhost:8080/prescriptions/validate -H 'content-type: application/json' \\
      -d '{"items": [{"terminology": "thritaEHR.Religion", "code": "1", "value": "اسلام"}]}'

Tests build the app with ``create_app(Settings(...))`` pointing at the fake gateway.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

import maxa_async as maxa

MAX_ITEMS = 500


@dataclass(frozen=True)
class Settings:
    credentials: maxa.Credentials
    base_url: str = maxa.DEFAULT_BASE_URL
    max_concurrency: int = 32


def settings_from_env() -> Settings:
    """MAXA_CLIENT_ID, MAXA_CLIENT_SECRET, MAXA_USERNAME, MAXA_PASSWORD, MAXA_PID and,
    optionally, MAXA_BASE_URL."""
    return Settings(
        credentials=maxa.Credentials.from_env(),
        base_url=os.environ.get("MAXA_BASE_URL", maxa.DEFAULT_BASE_URL),
    )


MAXA_CLIENT = web.AppKey("maxa_client", maxa.MaxaClient)


class BadPrescription(Exception):
    pass


def _parse_items(payload: Any) -> list[tuple[str, str, str]]:
    """``{"items": [{"terminology": "eRx", "code": "60002", "value": "..."}]}``."""
    items = payload.get("items") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise BadPrescription(f"'items' must be a list of 1 to {MAX_ITEMS} objects")
    parsed = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadPrescription(f"items[{index}] must be an object")
        fields = (item.get("terminology", "eRx"), item.get("code"), item.get("value"))
        if not all(isinstance(field, str) for field in fields):
            raise BadPrescription(f"items[{index}]: terminology, code and value must be strings")
        parsed.append((str(fields[0]), str(fields[1]), str(fields[2])))
    return parsed


def _message(error: maxa.MaxaError) -> str:
    if isinstance(error, maxa.InvalidInputError):
        return error.message
    return f"MAXA could not answer: {error}"


async def validate_prescription(request: web.Request) -> web.Response:
    try:
        items = _parse_items(await request.json())
    except (ValueError, BadPrescription) as exc:  # ValueError: the body is not JSON
        return web.json_response({"error": str(exc)}, status=400)
    client = request.app[MAXA_CLIENT]
    coded = [
        maxa.CodedText(value=value, terminology_id=terminology, coded_string=code)
        for terminology, code, value in items
    ]
    results: list[dict[str, Any]] = []
    async for outcome in client.validate_many(coded):
        index = len(results)
        terminology, code, _ = items[index]
        if outcome.error is not None:
            status, message = "error", _message(outcome.error)
        elif outcome.valid:
            status, message = "valid", None
        else:
            status, message = "invalid", "the value is not the registered value of this code"
        results.append(
            {
                "index": index,
                "terminology": terminology,
                "code": code,
                "status": status,
                "message": message,
            }
        )
    return web.json_response(
        {"valid": all(r["status"] == "valid" for r in results), "items": results}
    )


def create_app(settings: Settings | None = None) -> web.Application:
    """The application; ``settings`` default to :func:`settings_from_env` at start-up."""

    async def maxa_client(app: web.Application) -> AsyncIterator[None]:
        config = settings or settings_from_env()
        async with maxa.MaxaClient(
            config.credentials,
            base_url=config.base_url,
            max_concurrency=config.max_concurrency,
        ) as client:
            app[MAXA_CLIENT] = client
            yield  # the application serves here; the client closes on shutdown

    app = web.Application()
    app.cleanup_ctx.append(maxa_client)
    app.router.add_post("/prescriptions/validate", validate_prescription)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
