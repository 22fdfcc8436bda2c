"""A FastAPI backend that checks a prescription's items against MAXA.

One ``MaxaClient`` lives for the application's lifespan and is shared by every
request: one connection pool, one token, one concurrency budget for the process.

Run it (credentials from MAXA_* environment variables)::

    pip install 'maxa-async' fastapi uvicorn
    export MAXA_CLIENT_ID=... MAXA_CLIENT_SECRET=... MAXA_USERNAME=... \\
           MAXA_PASSWORD=... MAXA_PID=...
    uvicorn examples.fastapi_app:app

    curl -s localhost:8000/prescriptions/validate -H 'content-type: application/json' \\
      -d '{"items": [{"terminology": "eRx", "code": "60002",
           "value": "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"}]}'

Tests build the app with ``create_app(Settings(...))`` pointing at the fake gateway.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

import maxa_async as maxa


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


class PrescriptionItem(BaseModel):
    terminology: str = Field(default="eRx", examples=["eRx"])
    code: str = Field(examples=["60002"])
    value: str = Field(examples=["ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"])


class Prescription(BaseModel):
    items: list[PrescriptionItem] = Field(min_length=1, max_length=500)


class ItemResult(BaseModel):
    index: int
    terminology: str
    code: str
    status: Literal["valid", "invalid", "error"]
    message: str | None = None


class PrescriptionResult(BaseModel):
    valid: bool  # every item is valid
    items: list[ItemResult]


def _message(error: maxa.MaxaError) -> str:
    if isinstance(error, maxa.InvalidInputError):
        return error.message  # the caller's mistake, e.g. an empty code
    return f"MAXA could not answer: {error}"  # carries the gateway's request id


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``settings`` default to :func:`settings_from_env` at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or settings_from_env()
        async with maxa.MaxaClient(
            config.credentials,
            base_url=config.base_url,
            max_concurrency=config.max_concurrency,
        ) as client:
            app.state.maxa = client
            yield

    app = FastAPI(title="prescription checks", lifespan=lifespan)

    @app.post("/prescriptions/validate")
    async def validate_prescription(
        prescription: Prescription, request: Request
    ) -> PrescriptionResult:
        client: maxa.MaxaClient = request.app.state.maxa
        coded = [
            maxa.CodedText(
                value=item.value, terminology_id=item.terminology, coded_string=item.code
            )
            for item in prescription.items
        ]
        results: list[ItemResult] = []
        async for index, outcome in _enumerate(client.validate_many(coded)):
            item = prescription.items[index]
            if outcome.error is not None:
                status: Literal["valid", "invalid", "error"] = "error"
                message: str | None = _message(outcome.error)
            elif outcome.valid:
                status, message = "valid", None
            else:
                status, message = "invalid", "the value is not the registered value of this code"
            results.append(
                ItemResult(
                    index=index,
                    terminology=item.terminology,
                    code=item.code,
                    status=status,
                    message=message,
                )
            )
        return PrescriptionResult(
            valid=all(result.status == "valid" for result in results), items=results
        )

    return app


async def _enumerate(
    outcomes: AsyncIterator[maxa.ValidationOutcome],
) -> AsyncIterator[tuple[int, maxa.ValidationOutcome]]:
    index = 0
    async for outcome in outcomes:
        yield index, outcome
        index += 1


#: For ``uvicorn examples.fastapi_app:app``: settings are read from the environment
#: when the app starts, not when this module is imported.
app = create_app()
