"""MAXA as a FHIR terminology service: $validate-code in Python, then over HTTP.

Pulls eRx into a local snapshot, validates a code through the FHIR facade, and serves the
same over HTTP as `maxa serve --fhir --offline` does. Credentials come from MAXA_*.
"""

import asyncio
from typing import Any

import aiohttp

import maxa_async as maxa
from maxa_async.fhir import FhirServer, FhirTerminology, parameters
from maxa_async.snapshot import SnapshotStore

ERX = "urn:maxa-async:CodeSystem:eRx"  # MAXA's own terminologies: local URNs
DROPS = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"


def show(answer: dict[str, Any]) -> str:
    """'result=True, display=...' from a Parameters resource."""
    parts = []
    for parameter in answer["parameter"]:
        name = parameter.pop("name")
        (value,) = parameter.values()  # valueBoolean, valueString ...: one of them
        parts.append(f"{name}={value}")
    return ", ".join(parts)


async def main() -> None:
    async with (
        maxa.MaxaClient.from_env() as client,
        SnapshotStore.open("maxa-snapshot.db") as store,
    ):
        await store.pull(client, "eRx")
        fhir = FhirTerminology(store)  # a SnapshotStore: offline; a MaxaClient: online
        print(show(await fhir.validate_code(parameters(system=ERX, code="60002", display=DROPS))))

        async with FhirServer(fhir) as server, aiohttp.ClientSession() as http:
            url = f"{server.base_url}/CodeSystem/$validate-code"
            query = {"system": ERX, "code": "60002", "display": "ACETAMINOPHEN"}
            async with http.get(url, params=query) as reply:
                print(show(await reply.json(content_type=None)))


asyncio.run(main())
