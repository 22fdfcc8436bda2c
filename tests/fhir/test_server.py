"""The FHIR server in-process on 127.0.0.1, exercised through fhirpy's AsyncFHIRClient
(a FHIR client no one here wrote): offline against a snapshot pulled from the fake
gateway, online and hybrid against the fake gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fhir_checks import ACETAMINOPHEN, CONTACT, ERX, NEW_DRUG, fhir_model, issue, values
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

import maxa_async as maxa
from maxa_async.fhir import FhirServer, FhirTerminology, parameters
from maxa_async.snapshot import HybridValidator, SnapshotStore
from maxa_async.testing import FakeGateway


@pytest.fixture
async def offline(store: SnapshotStore) -> AsyncIterator[FhirServer]:
    async with FhirServer(FhirTerminology(store)) as server:
        yield server


def fhir_client(server: FhirServer) -> AsyncFHIRClient:
    assert server.base_url.startswith("http://127.0.0.1:")
    return AsyncFHIRClient(server.base_url)


def plain(resource: Any) -> dict[str, Any]:
    """fhirpy's AttrDict answer as plain JSON data."""
    loaded: dict[str, Any] = json.loads(json.dumps(resource))
    return loaded


def outcome_of(raised: pytest.ExceptionInfo[Exception]) -> dict[str, Any]:
    """The OperationOutcome fhirpy raised with (it keeps 404 bodies as text)."""
    error = raised.value
    if isinstance(error, OperationOutcome):
        return plain(error.resource)
    loaded: dict[str, Any] = json.loads(str(error))
    return loaded


async def test_metadata(offline: FhirServer) -> None:
    client = fhir_client(offline)
    statement = plain(await client.execute("metadata", method="get"))
    fhir_model(statement)
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["implementation"]["url"] == f"{offline.base_url}/"
    capabilities = plain(
        await client.execute("metadata", method="get", params={"mode": "terminology"})
    )
    fhir_model(capabilities)
    assert capabilities["resourceType"] == "TerminologyCapabilities"
    assert {entry["uri"] for entry in capabilities["codeSystem"]} == {
        ERX,
        CONTACT,
        "urn:maxa-async:CodeSystem:thritaEHR.Religion",
        "http://hl7.org/fhir/sid/icd-10",
    }


async def test_validate_code_on_get_and_post(offline: FhirServer) -> None:
    client = fhir_client(offline)
    got = await client.execute(
        "CodeSystem/$validate-code",
        method="get",
        params={"system": ERX, "code": "60002", "display": ACETAMINOPHEN},
    )
    assert values(plain(got)) == {"result": True, "display": ACETAMINOPHEN}
    posted = await client.execute(
        "ValueSet/$validate-code",
        method="post",
        data=parameters(url="urn:maxa-async:ValueSet:ContactType", code="3", display="فاکس"),
    )
    assert values(plain(posted)) == {
        "result": False,
        "message": f"Wrong display 'فاکس' for {CONTACT}#3; the valid display is 'تلفن همراه شخصی'",
        "display": "تلفن همراه شخصی",
    }


async def test_lookup_and_expand(offline: FhirServer) -> None:
    client = fhir_client(offline)
    looked = await client.execute(
        "CodeSystem/$lookup",
        method="get",
        params={"system": "urn:maxa-async:CodeSystem:thritaEHR.Religion", "code": "2"},
    )
    assert values(plain(looked)) == {
        "name": "thritaEHR.Religion",
        "version": "1",
        "display": "مسیحیت",
    }
    expanded = plain(
        await client.execute(
            "ValueSet/$expand",
            method="get",
            params={"url": "urn:maxa-async:ValueSet:ContactType", "filter": "پست الكترونيكي"},
        )
    )
    fhir_model(expanded)
    assert expanded["expansion"]["total"] == 2
    assert [c["code"] for c in expanded["expansion"]["contains"]] == ["6", "7"]


async def test_a_batch_posted_to_the_base(offline: FhirServer) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {
                    "method": "GET",
                    "url": f"CodeSystem/$validate-code?system={ERX}&code=60002"
                    f"&display={ACETAMINOPHEN.replace(' ', '%20')}",
                }
            },
            {
                "request": {"method": "POST", "url": "CodeSystem/$validate-code"},
                "resource": parameters(system=ERX, code="60002", display="WRONG"),
            },
            {"request": {"method": "GET", "url": "CodeSystem/$lookup?system=x:y&code=1"}},
        ],
    }
    answer = plain(await fhir_client(offline).execute("", method="post", data=bundle))
    fhir_model(answer)
    assert answer["type"] == "batch-response"
    assert [e["response"]["status"] for e in answer["entry"]] == [
        "200 OK",
        "200 OK",
        "404 Not Found",
    ]
    assert values(answer["entry"][0]["resource"])["result"] is True
    assert values(answer["entry"][1]["resource"])["result"] is False


async def test_errors_are_operation_outcomes(offline: FhirServer) -> None:
    client = fhir_client(offline)
    with pytest.raises(ResourceNotFound) as raised:
        await client.execute(
            "CodeSystem/$lookup", method="get", params={"system": ERX, "code": "99999"}
        )
    assert issue(outcome_of(raised)) == ("not-found", f"Unknown code '99999' in {ERX}")
    with pytest.raises(OperationOutcome) as invalid:
        await client.execute(
            "ValueSet/$expand",
            method="get",
            params={"url": "urn:maxa-async:ValueSet:ContactType", "count": "many"},
        )
    assert issue(outcome_of(invalid)) == ("invalid", "count: must be an integer, got 'many'")
    with pytest.raises(OperationOutcome) as method:
        await client.execute("CodeSystem/$lookup", method="put", data={})
    assert issue(outcome_of(method)) == (
        "not-supported",
        "PUT CodeSystem/$lookup: use GET or POST",
    )
    with pytest.raises(ResourceNotFound) as elsewhere:
        await client.execute("Patient/1", method="get")
    assert issue(outcome_of(elsewhere)) == ("not-found", "nothing at /Patient/1")


async def test_raw_http_details(offline: FhirServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{offline.base_url}/CodeSystem/$validate-code",
            data=b"{not json",
            headers={"Content-Type": "application/fhir+json"},
        ) as response:
            assert response.status == 400
            assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
            assert issue(await response.json(content_type=None)) == (
                "invalid",
                "the body must be a JSON Parameters resource",
            )
        async with session.get(f"{offline.base_url}/") as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"


async def test_online_and_hybrid_servers(
    client: maxa.MaxaClient, store: SnapshotStore, gateway: FakeGateway
) -> None:
    code, display = NEW_DRUG
    asked = {"system": ERX, "code": code, "display": display}
    async with FhirServer(FhirTerminology(client)) as online:
        answer = await fhir_client(online).execute(
            "CodeSystem/$validate-code", method="get", params=asked
        )
        assert values(plain(answer)) == {"result": True, "display": display}
        with pytest.raises(OperationOutcome) as not_supported:
            await fhir_client(online).execute(
                "ValueSet/$expand", method="get", params={"url": f"{CONTACT}?fhir_vs"}
            )
        assert issue(outcome_of(not_supported))[0] == "not-supported"
    assert gateway.stats.requests_by_operation == {"ValidateCts": 1}
    hybrid = HybridValidator(store, client)
    async with FhirServer(FhirTerminology(hybrid)) as server:
        fhir = fhir_client(server)
        answer = await fhir.execute("CodeSystem/$validate-code", method="get", params=asked)
        assert values(plain(answer)) == {"result": True, "display": display}
        known = {"system": ERX, "code": "60002", "display": ACETAMINOPHEN}
        answer = await fhir.execute("CodeSystem/$validate-code", method="get", params=known)
        assert values(plain(answer))["result"] is True
    assert gateway.stats.requests_by_operation == {"ValidateCts": 2}
    assert (hybrid.stats.offline_hits, hybrid.stats.code_misses) == (1, 1)


async def test_a_throttled_gateway_is_429_throttled(
    client: maxa.MaxaClient, gateway: FakeGateway
) -> None:
    gateway.config.permanent_429 = True
    async with FhirServer(FhirTerminology(client)) as server:
        with pytest.raises(OperationOutcome) as raised:
            await fhir_client(server).execute(
                "CodeSystem/$validate-code",
                method="get",
                params={"system": ERX, "code": "60002", "display": "x"},
            )
    assert issue(outcome_of(raised))[0] == "throttled"
    assert gateway.stats.rate_limited == 2  # the client's two attempts (RetryPolicy of the test)
