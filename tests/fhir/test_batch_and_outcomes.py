"""Batch Bundles through the bulk engine, and errors as OperationOutcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from fhir_checks import ACETAMINOPHEN, ERX, MOMETASONE, NEW_DRUG, fhir_model, issue, values

import maxa_async as maxa
from maxa_async.client import ValidationOutcome
from maxa_async.fhir import (
    FhirOperationError,
    FhirTerminology,
    OfflineBackend,
    SystemMap,
    parameters,
    response_for_error,
)
from maxa_async.snapshot import HybridValidator, NoSnapshotError, SnapshotStore
from maxa_async.testing import FakeGateway


class CountingBackend(OfflineBackend):
    """A snapshot backend that counts its bulk runs and their items."""

    def __init__(self, store: SnapshotStore) -> None:
        super().__init__(store)
        self.bulk_runs: list[int] = []
        self.single_validations = 0

    def validate_many(self, items: Sequence[maxa.CodedText]) -> AsyncIterator[ValidationOutcome]:
        self.bulk_runs.append(len(items))
        return super().validate_many(items)

    async def validate(self, item: maxa.CodedText) -> bool:
        self.single_validations += 1
        return await super().validate(item)


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def post(url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {"request": {"method": "POST", "url": url}, "resource": resource}


def batch(*entries: dict[str, Any]) -> dict[str, Any]:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}
    fhir_model(bundle)
    return bundle


def mixed_batch() -> dict[str, Any]:
    return batch(
        post(
            "CodeSystem/$validate-code",
            parameters(system=ERX, code="60002", display=ACETAMINOPHEN),
        ),
        post("CodeSystem/$validate-code", parameters(system=ERX, code="60281", display="WRONG")),
        get(f"CodeSystem/$validate-code?system={ERX}&code=99999"),
        get("CodeSystem/$validate-code?system=http://example.org/x&code=1"),
        get(f"CodeSystem/$lookup?system={ERX}&code=60281"),
        post(
            "http://fhir.example/base/CodeSystem/$validate-code",
            parameters(system=ERX, code=NEW_DRUG[0], display=NEW_DRUG[1]),
        ),
        {"request": {"method": "DELETE", "url": "CodeSystem/$lookup"}},
        get("Patient/1"),
    )


def statuses(response: dict[str, Any]) -> list[str]:
    assert response["resourceType"] == "Bundle"
    assert response["type"] == "batch-response"
    fhir_model(response)
    return [entry["response"]["status"] for entry in response["entry"]]


async def test_a_mixed_batch_answers_in_order_offline(store: SnapshotStore) -> None:
    backend = CountingBackend(store)
    fhir = FhirTerminology(backend)
    response = await fhir.batch(mixed_batch())
    assert statuses(response) == [
        "200 OK",
        "200 OK",
        "200 OK",
        "404 Not Found",
        "200 OK",
        "200 OK",
        "400 Bad Request",
        "404 Not Found",
    ]
    entries = response["entry"]
    assert values(entries[0]["resource"]) == {"result": True, "display": ACETAMINOPHEN}
    assert values(entries[1]["resource"]) == {
        "result": False,
        "message": f"Wrong display 'WRONG' for {ERX}#60281; the valid display is '{MOMETASONE}'",
        "display": MOMETASONE,
    }
    assert values(entries[2]["resource"]) == {
        "result": False,
        "message": f"Unknown code '99999' in {ERX}",
    }
    assert issue(entries[3]["response"]["outcome"])[0] == "not-found"
    assert "resource" not in entries[3]
    assert values(entries[4]["resource"]) == {
        "name": "eRx",
        "version": "10000",
        "display": MOMETASONE,
    }
    assert values(entries[5]["resource"]) == {
        "result": False,
        "message": f"Unknown code '{NEW_DRUG[0]}' in {ERX}",
    }
    assert issue(entries[6]["response"]["outcome"]) == (
        "not-supported",
        "entry.request.method 'DELETE': only GET and POST",
    )
    assert issue(entries[7]["response"]["outcome"]) == (
        "not-found",
        "no operation 'Patient/1' here",
    )
    # the three requests with a display went through one bulk run; none one by one
    assert backend.bulk_runs == [3]
    assert backend.single_validations == 0


async def test_a_mixed_batch_online_and_hybrid_counts_requests(
    client: maxa.MaxaClient, store: SnapshotStore, gateway: FakeGateway
) -> None:
    online = await FhirTerminology(client).batch(mixed_batch())
    assert statuses(online)[:6] == ["200 OK", "200 OK", "200 OK", "404 Not Found"] + ["200 OK"] * 2
    assert values(online["entry"][5]["resource"]) == {"result": True, "display": NEW_DRUG[1]}
    by_operation = dict(gateway.stats.requests_by_operation)
    # 3 with a display validated in bulk; 3 Terminology calls: the wrong display's
    # reason, the code without a display, the $lookup; the first and the last ask the
    # same and may share one request (the client coalesces identical calls in flight)
    assert by_operation["ValidateCts"] == 3
    assert by_operation["Terminology"] + client.stats.coalesced == 3
    assert set(by_operation) == {"ValidateCts", "Terminology"}
    gateway.stats.reset()
    hybrid = await FhirTerminology(HybridValidator(store, client)).batch(mixed_batch())
    assert [e["response"]["status"] for e in hybrid["entry"]] == statuses(online)
    # the snapshot answers all but the code it lacks (asked online) and the unknown
    # code 99999 (the gateway might know it)
    assert dict(gateway.stats.requests_by_operation) == {"ValidateCts": 1, "Terminology": 1}


async def test_a_large_batch_keeps_order_and_counts(store: SnapshotStore) -> None:
    backend = CountingBackend(store)
    fhir = FhirTerminology(backend)
    displays = [ACETAMINOPHEN, "WRONG", MOMETASONE]
    codes = ["60002", "60002", "60281"]
    entries = [
        post(
            "CodeSystem/$validate-code",
            parameters(system=ERX, code=codes[n % 3], display=displays[n % 3]),
        )
        for n in range(3000)
    ]
    response = await fhir.batch(batch(*entries))
    results = [values(entry["resource"])["result"] for entry in response["entry"]]
    assert results == [n % 3 != 1 for n in range(3000)]
    assert backend.bulk_runs == [3000]


@pytest.mark.parametrize(
    ("bundle", "status", "code", "diagnostics"),
    [
        (
            {"resourceType": "Bundle", "type": "transaction", "entry": []},
            400,
            "not-supported",
            "Bundle type 'transaction': only 'batch' is answered here",
        ),
        (
            {"resourceType": "Parameters"},
            400,
            "invalid",
            "body: must be a FHIR Bundle resource",
        ),
        (
            {"resourceType": "Bundle", "type": "batch", "entry": [get("metadata")] * 11},
            413,
            "too-costly",
            "11 entries; at most 10 in one batch",
        ),
    ],
)
async def test_bundles_refused_whole(
    store: SnapshotStore, bundle: dict[str, Any], status: int, code: str, diagnostics: str
) -> None:
    response = await FhirTerminology(store, max_batch=10).respond_batch(bundle)
    assert response.status == status
    assert issue(response.resource) == (code, diagnostics)


async def test_an_empty_batch_is_an_empty_answer(store: SnapshotStore) -> None:
    response = await FhirTerminology(store).batch(batch())
    assert response == {"resourceType": "Bundle", "type": "batch-response", "entry": []}


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("error", "code", "status", "details"),
    [
        (maxa.InvalidInputError("code", "must not be empty"), "invalid", 400, "InvalidInputError"),
        (maxa.BadRequestError("bad", status=400), "invalid", 400, "BadRequestError"),
        (maxa.NotFoundError("not found", status=404), "not-found", 404, "NotFoundError"),
        (NoSnapshotError("eRx"), "not-found", 404, "NoSnapshotError"),
        (maxa.RateLimitedError("slow down"), "throttled", 429, "RateLimitedError"),
        (maxa.ServiceError("down", status=503), "transient", 503, "ServiceError"),
        (maxa.TransportError("timed out"), "transient", 503, "TransportError"),
        (maxa.AuthenticationError("refused", status=401), "security", 502, "AuthenticationError"),
        (maxa.ForbiddenError("blocked", status=403), "security", 502, "ForbiddenError"),
        (maxa.HttpsRequiredError("https", status=410), "exception", 502, "HttpsRequiredError"),
        (maxa.ProtocolError("html page"), "exception", 502, "ProtocolError"),
        (maxa.MaxaError("something"), "exception", 500, "MaxaError"),
    ],
)
def test_each_error_class_has_its_issue_code_and_status(
    error: maxa.MaxaError, code: str, status: int, details: str
) -> None:
    response = response_for_error(error)
    assert response.status == status
    found, diagnostics = issue(response.resource)
    assert found == code
    assert str(error) in diagnostics
    assert response.resource["issue"][0]["details"] == {
        "coding": [{"system": "urn:maxa-async:CodeSystem:error", "code": details}]
    }
    assert dict(response.headers) == {}


def test_throttled_carries_retry_after_rounded_up() -> None:
    response = response_for_error(maxa.RateLimitedError("slow", retry_after=2.2))
    assert (response.status, dict(response.headers)) == (429, {"Retry-After": "3"})


def test_a_503_carries_the_gateways_retry_after_and_other_failures_none() -> None:
    back = maxa.ServiceError("down", status=503, retry_after=120.0)
    assert (response_for_error(back).status, dict(response_for_error(back).headers)) == (
        503,
        {"Retry-After": "120"},
    )
    garbled = maxa.ProtocolError("<html>", status=503, retry_after=120.0)  # a proxy's page
    assert dict(response_for_error(garbled).headers) == {}


def test_an_operation_error_names_its_own_code() -> None:
    response = response_for_error(FhirOperationError("too-costly", 413, "too many"))
    assert response.status == 413
    assert issue(response.resource) == ("too-costly", "too many")


@pytest.mark.parametrize(
    ("knobs", "status", "code", "details"),
    [
        ({"permanent_429": True}, 429, "throttled", "RateLimitedError"),
        ({"error_rate": 1.0, "error_statuses": (503,)}, 503, "transient", "ServiceError"),
        ({"blocked_ip": True}, 502, "security", "ForbiddenError"),
    ],
)
async def test_gateway_failures_online(
    client: maxa.MaxaClient,
    gateway: FakeGateway,
    knobs: dict[str, Any],
    status: int,
    code: str,
    details: str,
) -> None:
    gateway.config.update(**knobs)
    response = await FhirTerminology(client).respond_parameters(
        "CodeSystem/$validate-code", parameters(system=ERX, code="60002", display=ACETAMINOPHEN)
    )
    assert response.status == status
    assert issue(response.resource)[0] == code
    assert response.resource["issue"][0]["details"]["coding"][0]["code"] == details


# ------------------------------------------------------------------ the system map


def test_default_system_map() -> None:
    systems = SystemMap()
    assert systems.system_for("icd10") == "http://hl7.org/fhir/sid/icd-10"
    assert systems.system_for("eRx") == ERX
    assert systems.terminology_for("http://loinc.org") == "LNC"
    assert systems.terminology_for("http://snomed.info/sct") == "SNOMEDCT"
    assert systems.terminology_for("http://www.whocc.no/atc") == "ATC"
    assert systems.terminology_for("http://unitsofmeasure.org") == "UCUM"
    assert systems.terminology_for("urn:maxa-async:CodeSystem:thritaEHR.Religion") == (
        "thritaEHR.Religion"
    )
    assert systems.terminology_for("urn:maxa-async:CodeSystem:") is None
    assert systems.terminology_for("http://example.org") is None
    assert systems.value_set_for("ICD10") == "http://hl7.org/fhir/sid/icd-10?fhir_vs"
    assert systems.value_set_for("IRC") == "urn:maxa-async:ValueSet:IRC"
    assert systems.terminology_for_value_set("http://loinc.org?fhir_vs") == "LNC"
    assert systems.terminology_for_value_set("urn:maxa-async:ValueSet:IRC") == "IRC"


def test_a_ministry_uri_replaces_the_local_one(store: SnapshotStore) -> None:
    systems = SystemMap().with_systems({"erx": "https://moh.example/fhir/CodeSystem/erx"})
    assert systems.system_for("eRx") == "https://moh.example/fhir/CodeSystem/erx"
    assert systems.terminology_for("https://moh.example/fhir/CodeSystem/erx") == "erx"
    assert systems.terminology_for("http://loinc.org") == "LNC"  # the defaults stay
    replaced = systems.with_systems({"ERX": "https://moh.example/2"})
    assert replaced.terminology_for("https://moh.example/fhir/CodeSystem/erx") is None


@pytest.mark.parametrize(
    ("systems", "field"),
    [
        ({"eRx": "not a uri"}, "systems['eRx']"),
        ({"eRx": "http://loinc.org"}, "systems['eRx']"),
        ({"eRx": "urn:maxa-async:CodeSystem:x"}, "systems['eRx']"),
        ({"\u0627": "http://x.example"}, "systems"),
    ],
)
def test_a_bad_system_map_names_the_field(systems: dict[str, str], field: str) -> None:
    with pytest.raises(maxa.InvalidInputError) as raised:
        SystemMap().with_systems(systems) if "loinc" in str(systems) else SystemMap(systems)
    assert raised.value.field == field


async def test_a_custom_map_is_used_by_the_operations(store: SnapshotStore) -> None:
    systems = SystemMap().with_systems({"eRx": "https://moh.example/erx"})
    fhir = FhirTerminology(store, systems=systems)
    answer = await fhir.validate_code(
        parameters(system="https://moh.example/erx", code="60002", display=ACETAMINOPHEN)
    )
    assert values(answer) == {"result": True, "display": ACETAMINOPHEN}
    page = await fhir.expand(parameters(url="https://moh.example/erx?fhir_vs", count=1))
    assert page["expansion"]["contains"][0]["system"] == "https://moh.example/erx"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_batch": 0}, "max_batch"),
        ({"default_count": 2000}, "default_count"),
        ({"max_count": True}, "max_count"),
        ({"systems": {"eRx": "x:y"}}, "systems"),
    ],
)
def test_bad_options_name_the_field(
    store: SnapshotStore, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(maxa.InvalidInputError) as raised:
        FhirTerminology(store, **options)
    assert raised.value.field == field


def test_an_unknown_validator_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected a MaxaClient, a SnapshotStore"):
        FhirTerminology(object())
