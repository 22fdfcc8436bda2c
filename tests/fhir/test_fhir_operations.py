"""$validate-code, $lookup and $expand through the facade: online, offline and hybrid,
with exact results, messages, issue codes and gateway request counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fhir_checks import (
    ACETAMINOPHEN,
    CONTACT,
    ERX,
    ICD10,
    MOMETASONE,
    NEW_DRUG,
    OLD_ONLY,
    fhir_model,
    issue,
    values,
)

import maxa_async as maxa
from maxa_async.fhir import FhirTerminology, parameters
from maxa_async.snapshot import HybridValidator, SnapshotStore
from maxa_async.testing import FakeGateway

MODES = ("online", "offline", "hybrid")


@pytest.fixture
def make(client: maxa.MaxaClient, store: SnapshotStore) -> Callable[[str], FhirTerminology]:
    def build(mode: str) -> FhirTerminology:
        validator: object = {
            "online": client,
            "offline": store,
            "hybrid": HybridValidator(store, client),
        }[mode]
        made = FhirTerminology(validator)
        assert made.mode == mode
        return made

    return build


def sent(gateway: FakeGateway, operation: str) -> int:
    return gateway.stats.requests_by_operation.get(operation, 0)


# ------------------------------------------------------------------ $validate-code


@pytest.mark.parametrize(("mode", "requests"), [("online", 1), ("offline", 0), ("hybrid", 0)])
async def test_a_code_with_its_display_is_valid(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway, mode: str, requests: int
) -> None:
    fhir = make(mode)
    answer = await fhir.validate_code(parameters(system=ERX, code="60002", display=ACETAMINOPHEN))
    assert values(answer) == {"result": True, "display": ACETAMINOPHEN}
    assert sent(gateway, "ValidateCts") == requests
    assert gateway.stats.requests == requests


@pytest.mark.parametrize(("mode", "requests"), [("online", 2), ("offline", 0), ("hybrid", 0)])
async def test_a_wrong_display_is_false_and_names_the_valid_one(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway, mode: str, requests: int
) -> None:
    answer = await make(mode).validate_code(
        parameters(system=ERX, code="60002", display="acetaminophen 100 mg")
    )
    assert values(answer) == {
        "result": False,
        "message": f"Wrong display 'acetaminophen 100 mg' for {ERX}#60002; "
        f"the valid display is '{ACETAMINOPHEN}'",
        "display": ACETAMINOPHEN,
    }
    # online: ValidateCts said false, then Terminology told why
    assert gateway.stats.requests == requests


@pytest.mark.parametrize("mode", MODES)
async def test_surrounding_white_space_of_the_display_does_not_count(
    make: Callable[[str], FhirTerminology], mode: str
) -> None:
    answer = await make(mode).validate_code(
        parameters(system=ERX, code=" 60281 ", display=f"\u00a0 {MOMETASONE}  ")
    )
    assert values(answer) == {"result": True, "display": MOMETASONE}


@pytest.mark.parametrize(("mode", "requests"), [("online", 1), ("offline", 0), ("hybrid", 1)])
async def test_an_unknown_code_is_false(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway, mode: str, requests: int
) -> None:
    answer = await make(mode).validate_code(parameters(system=ERX, code="99999"))
    assert values(answer) == {
        "result": False,
        "message": f"Unknown code '99999' in {ERX}",
    }
    # hybrid: the snapshot lacks it, so the gateway is asked (it may be newer)
    assert sent(gateway, "Terminology") == requests


@pytest.mark.parametrize(
    ("mode", "expected", "requests"),
    [("online", True, 1), ("offline", False, 0), ("hybrid", True, 1)],
)
async def test_a_code_newer_than_the_snapshot(
    make: Callable[[str], FhirTerminology],
    gateway: FakeGateway,
    mode: str,
    expected: bool,
    requests: int,
) -> None:
    code, display = NEW_DRUG
    answer = await make(mode).validate_code(parameters(system=ERX, code=code, display=display))
    if expected:
        assert values(answer) == {"result": True, "display": display}
    else:
        assert values(answer) == {
            "result": False,
            "message": f"Unknown code '{code}' in {ERX}",
        }
    assert sent(gateway, "ValidateCts") == requests
    assert gateway.stats.requests == requests


@pytest.mark.parametrize("mode", MODES)
async def test_a_code_alone_is_valid_and_gets_its_display(
    make: Callable[[str], FhirTerminology], mode: str
) -> None:
    answer = await make(mode).validate_code(parameters(url=CONTACT, code="3"))
    assert values(answer) == {"result": True, "display": "تلفن همراه شخصی"}


@pytest.mark.parametrize("mode", MODES)
async def test_icd10_by_its_hl7_uri(make: Callable[[str], FhirTerminology], mode: str) -> None:
    answer = await make(mode).validate_code(
        parameters(system=ICD10, code="E11", display="Type 2 diabetes mellitus")
    )
    assert values(answer) == {"result": True, "display": "Type 2 diabetes mellitus"}


@pytest.mark.parametrize("mode", MODES)
async def test_a_coding_is_read_like_its_parts(
    make: Callable[[str], FhirTerminology], mode: str
) -> None:
    coding = {"system": ERX, "code": "60002", "display": ACETAMINOPHEN}
    answer = await make(mode).validate_code(
        {"resourceType": "Parameters", "parameter": [{"name": "coding", "valueCoding": coding}]}
    )
    assert values(answer) == {"result": True, "display": ACETAMINOPHEN}


@pytest.mark.parametrize("mode", MODES)
async def test_an_unknown_system_is_not_found(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway, mode: str
) -> None:
    fhir = make(mode)
    response = await fhir.respond_parameters(
        "CodeSystem/$validate-code", parameters(system="http://example.org/cs", code="1")
    )
    assert response.status == 404
    assert issue(response.resource) == (
        "not-found",
        "unknown code system 'http://example.org/cs': not one of the URIs mapped to MAXA "
        "terminologies (see maxa_async.fhir.SystemMap)",
    )
    assert gateway.stats.requests == 0


async def test_a_version_the_snapshot_lacks_is_not_found_offline_and_asked_in_hybrid(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway
) -> None:
    code, display = OLD_ONLY
    asked = parameters(system=ERX, code=code, display=display, version="1000")
    offline = await make("offline").respond_parameters("CodeSystem/$validate-code", asked)
    assert offline.status == 404
    assert issue(offline.resource) == (
        "not-found",
        "the snapshot holds version '10000' of 'eRx', not '1000' (status=404)",
    )
    assert gateway.stats.requests == 0
    for mode in ("online", "hybrid"):
        answer = await make(mode).validate_code(asked)
        assert values(answer) == {"result": True, "display": display}
    assert sent(gateway, "TerminologyValueByVersion") == 2
    assert gateway.stats.requests == 2


async def test_a_terminology_never_pulled_is_not_found_offline(
    make: Callable[[str], FhirTerminology], store: SnapshotStore
) -> None:
    response = await make("offline").respond_parameters(
        "CodeSystem/$validate-code",
        parameters(system="urn:maxa-async:CodeSystem:IRC", code="1", display="x"),
    )
    assert response.status == 404
    code, diagnostics = issue(response.resource)
    assert code == "not-found"
    assert diagnostics.startswith(f"no snapshot of terminology 'IRC' in {store.path}; pull it")
    assert response.resource["issue"][0]["details"]["coding"][0]["code"] == "NoSnapshotError"


async def test_an_unknown_terminology_online_is_not_found(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway
) -> None:
    response = await make("online").respond_parameters(
        "CodeSystem/$validate-code",
        parameters(system="urn:maxa-async:CodeSystem:NoSuchThing", code="1", display="x"),
    )
    assert response.status == 404
    code, diagnostics = issue(response.resource)
    assert code == "not-found"
    assert "operation=ValidateCts, status=404" in diagnostics
    assert sent(gateway, "ValidateCts") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_value_set_validate_code(make: Callable[[str], FhirTerminology], mode: str) -> None:
    fhir = make(mode)
    answer = await fhir.validate_code(
        parameters(
            url="urn:maxa-async:ValueSet:ContactType", code="12", display="تلفن همراه محل کار"
        ),
        resource_type="ValueSet",
    )
    assert values(answer) == {"result": True, "display": "تلفن همراه محل کار"}
    answer = await fhir.validate_code(
        parameters(url=f"{ICD10}?fhir_vs", system=ICD10, code="J45"), resource_type="ValueSet"
    )
    assert values(answer) == {"result": True, "display": "Asthma"}
    unknown = await fhir.respond_parameters(
        "ValueSet/$validate-code", parameters(url="http://example.org/vs", code="1")
    )
    assert (unknown.status, issue(unknown.resource)) == (
        404,
        ("not-found", "unknown value set 'http://example.org/vs'"),
    )
    other = await fhir.respond_parameters(
        "ValueSet/$validate-code",
        parameters(url="urn:maxa-async:ValueSet:ContactType", system=ERX, code="1"),
    )
    assert (other.status, issue(other.resource)) == (
        400,
        (
            "invalid",
            f"code system '{ERX}' is not the one of value set "
            "'urn:maxa-async:ValueSet:ContactType'",
        ),
    )


@pytest.mark.parametrize(
    ("inputs", "status", "code", "diagnostics"),
    [
        (parameters(system=ERX), 400, "invalid", "code: is required (or a coding)"),
        (parameters(code="60002"), 400, "invalid", "system: is required (or url)"),
        (parameters(system=ERX, code="  "), 400, "invalid", "code: must not be empty"),
        (
            parameters(system=ERX, code="x" * 300),
            400,
            "invalid",
            "code: is 300 characters; at most 256",
        ),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "code", "valueInteger": 1}]},
            400,
            "invalid",
            "code: must be a string, got int",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "code", "valueCode": "1"},
                    {"name": "code", "valueCode": "2"},
                ],
            },
            400,
            "invalid",
            "code: given more than once",
        ),
        ({"resourceType": "Patient"}, 400, "invalid", "body: must be a FHIR Parameters resource"),
        (
            {
                "resourceType": "Parameters",
                "parameter": [{"name": "codeableConcept", "valueCodeableConcept": {"text": "x"}}],
            },
            400,
            "not-supported",
            "codeableConcept is not supported; send a code or a coding",
        ),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_asked(
    make: Callable[[str], FhirTerminology],
    gateway: FakeGateway,
    inputs: dict[str, Any],
    status: int,
    code: str,
    diagnostics: str,
) -> None:
    for mode in MODES:
        response = await make(mode).respond_parameters("CodeSystem/$validate-code", inputs)
        assert response.status == status
        assert issue(response.resource) == (code, diagnostics)
    assert gateway.stats.requests == 0


# ------------------------------------------------------------------ $lookup


@pytest.mark.parametrize(("mode", "version"), [("online", None), ("offline", "1"), ("hybrid", "1")])
async def test_lookup(
    make: Callable[[str], FhirTerminology], mode: str, version: str | None
) -> None:
    answer = await make(mode).lookup(
        parameters(system="urn:maxa-async:CodeSystem:thritaEHR.Religion", code="1")
    )
    expected = {"name": "thritaEHR.Religion", "display": "اسلام"}
    if version is not None:  # a snapshot knows its version; the online Terminology does not say
        expected["version"] = version
    assert values(answer) == expected


@pytest.mark.parametrize("mode", MODES)
async def test_lookup_of_an_unknown_code_is_not_found(
    make: Callable[[str], FhirTerminology], mode: str
) -> None:
    response = await make(mode).respond_parameters(
        "CodeSystem/$lookup", parameters(system=ERX, code="99999")
    )
    assert response.status == 404
    assert issue(response.resource) == ("not-found", f"Unknown code '99999' in {ERX}")


async def test_lookup_at_a_version_online(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway
) -> None:
    code, display = OLD_ONLY
    answer = await make("online").lookup(parameters(system=ERX, code=code, version="1000"))
    assert values(answer) == {"name": "eRx", "version": "1000", "display": display}
    assert sent(gateway, "TerminologyValueByVersion") == 1


# ------------------------------------------------------------------ $expand


def codes(value_set: dict[str, Any]) -> list[str]:
    fhir_model(value_set)
    return [entry["code"] for entry in value_set["expansion"].get("contains", [])]


@pytest.mark.parametrize("mode", ["offline", "hybrid"])
async def test_expand_with_a_persian_filter(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway, mode: str
) -> None:
    fhir = make(mode)
    url = "urn:maxa-async:ValueSet:ContactType"
    mobile = await fhir.expand(parameters(url=url, filter="تلفن همراه"))
    assert codes(mobile) == ["12", "3"]  # both start with the filter: ties go by code (text)
    assert mobile["expansion"]["total"] == 2
    assert mobile["version"] == "1"
    assert mobile["expansion"]["contains"][1] == {
        "system": CONTACT,
        "version": "1",
        "code": "3",
        "display": "تلفن همراه شخصی",
    }
    # Arabic kaf and yeh, a ZWNJ and doubled spaces find the Persian spelling
    work = await fhir.expand(parameters(url=url, filter="محل  كار\u200c"))
    assert sorted(codes(work), key=int) == ["2", "5", "7", "9", "11", "12", "14"]
    assert work["expansion"]["total"] == 7
    page = await fhir.expand(parameters(url=url, filter="محل کار", count=3, offset=6))
    assert page["expansion"]["total"] == 7
    assert page["expansion"]["offset"] == 6
    assert codes(page) == codes(work)[6:]
    assert gateway.stats.requests == 0


async def test_expand_pages_through_every_code(make: Callable[[str], FhirTerminology]) -> None:
    fhir = make("offline")
    url = f"{CONTACT}?fhir_vs"
    pages = [
        await fhir.expand(parameters(url=url, count=5, offset=offset)) for offset in (0, 5, 10)
    ]
    assert [len(codes(page)) for page in pages] == [5, 5, 4]
    assert {page["expansion"]["total"] for page in pages} == {14}
    listed = [code for page in pages for code in codes(page)]
    assert sorted(listed, key=int) == [str(n) for n in range(1, 15)]
    empty = await fhir.expand(parameters(url=url, count=5, offset=14))
    assert "contains" not in empty["expansion"]
    assert empty["expansion"]["total"] == 14


@pytest.mark.parametrize(
    ("inputs", "status", "code", "diagnostics"),
    [
        (parameters(filter="x"), 400, "invalid", "url: is required: the value set to expand"),
        (
            parameters(url="urn:maxa-async:ValueSet:ContactType", count=5000),
            400,
            "invalid",
            "count: must be between 0 and 1000",
        ),
        (
            parameters(url="urn:maxa-async:ValueSet:ContactType", offset=-1),
            400,
            "invalid",
            "offset: must not be negative",
        ),
        (
            parameters(url="urn:maxa-async:ValueSet:ContactType", filter="\u200c\u064b"),
            400,
            "invalid",
            "text: must not be blank (after normalisation)",
        ),
        (
            parameters(url="urn:maxa-async:ValueSet:ContactType|7"),
            404,
            "not-found",
            "the snapshot holds version '1' of 'ContactType', not '7'",
        ),
        (
            parameters(url="urn:maxa-async:ValueSet:IRC"),
            404,
            "not-found",
            None,
        ),
    ],
)
async def test_expand_refusals(
    make: Callable[[str], FhirTerminology],
    inputs: dict[str, Any],
    status: int,
    code: str,
    diagnostics: str | None,
) -> None:
    response = await make("offline").respond_parameters("ValueSet/$expand", inputs)
    assert response.status == status
    found_code, found_diagnostics = issue(response.resource)
    assert found_code == code
    if diagnostics is not None:
        assert found_diagnostics == diagnostics


async def test_expand_online_is_not_supported(
    make: Callable[[str], FhirTerminology], gateway: FakeGateway
) -> None:
    response = await make("online").respond_parameters(
        "ValueSet/$expand", parameters(url="urn:maxa-async:ValueSet:ContactType")
    )
    assert response.status == 400
    code, diagnostics = issue(response.resource)
    assert code == "not-supported"
    assert diagnostics.startswith("$expand reads a snapshot; this server runs online")
    assert gateway.stats.requests == 0


# ------------------------------------------------------------------ metadata


@pytest.mark.parametrize("mode", MODES)
async def test_metadata_parses_and_lists_what_is_answered(
    make: Callable[[str], FhirTerminology], mode: str
) -> None:
    fhir = make(mode)
    statement = fhir.capability_statement("http://127.0.0.1:1/")
    fhir_model(statement)
    value_set_operations = [op["name"] for op in statement["rest"][0]["resource"][1]["operation"]]
    assert value_set_operations == (
        ["validate-code"] if mode == "online" else ["expand", "validate-code"]
    )
    capabilities = await fhir.terminology_capabilities("http://127.0.0.1:1/")
    fhir_model(capabilities)
    systems = {entry["uri"]: entry.get("version") for entry in capabilities["codeSystem"]}
    snapshot = {
        ERX: [{"code": "10000", "isDefault": True}],
        CONTACT: [{"code": "1", "isDefault": True}],
        "urn:maxa-async:CodeSystem:thritaEHR.Religion": [{"code": "1", "isDefault": True}],
        ICD10: [{"code": "2016", "isDefault": True}],
    }
    hl7 = {
        "http://snomed.info/sct": None,
        "http://loinc.org": None,
        ICD10: None,
        "http://www.whocc.no/atc": None,
        "http://unitsofmeasure.org": None,
    }
    if mode == "offline":
        assert systems == snapshot
    elif mode == "online":
        assert systems == hl7
    else:
        assert systems == {**hl7, **snapshot}
