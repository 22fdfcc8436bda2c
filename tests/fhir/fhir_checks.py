"""Data and checks shared by the FHIR tests: a small fake gateway's terms, and parsing with
FHIR models we did not write (fhir.resources, R4B: version 8 ships R5 at the top and R4B
below it; R4B is R4 with the few changes of 4.3, and every resource we emit is valid in both)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from maxa_async.testing import GatewayData, Term

ERX = "urn:maxa-async:CodeSystem:eRx"
CONTACT = "urn:maxa-async:CodeSystem:ContactType"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"
MOMETASONE = "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"
#: In the gateway's latest eRx only: a snapshot pulled before it was added lacks it.
NEW_DRUG = ("70001", "NEW DRUG 5 mg TABLET ORAL")
OLD_ONLY = ("50001", "DISCONTINUED 10 mg TABLET ORAL")

#: What the snapshot holds: pulled from the gateway before NEW_DRUG was added.
SNAPSHOT_TERMINOLOGIES = ("eRx", "ContactType", "thritaEHR.Religion", "ICD10")


def gateway_data() -> GatewayData:
    """The guide's samples (ContactType, thritaEHR.Religion, ICD10) and a small eRx:
    version 1000 (old) and 10000 (latest)."""
    data = GatewayData.default(generated=False)
    data.add_version("eRx", "1000", [Term("60002", ACETAMINOPHEN), Term(*OLD_ONLY)], is_last=False)
    data.add_version("eRx", "10000", [Term("60002", ACETAMINOPHEN), Term("60281", MOMETASONE)])
    return data


def fhir_model(resource: dict[str, Any]) -> Any:
    """Parse a resource with fhir.resources' R4B model of its type (strict: unknown
    fields, wrong types and missing required fields fail)."""
    model = get_fhir_model_class(resource["resourceType"])
    return model.model_validate(resource)


def values(parameters: dict[str, Any]) -> dict[str, Any]:
    """A Parameters resource as {name: value}, after checking it against the model."""
    assert parameters["resourceType"] == "Parameters", parameters
    fhir_model(parameters)
    found: dict[str, Any] = {}
    for entry in parameters["parameter"]:
        (key,) = [k for k in entry if k.startswith("value")]
        found[entry["name"]] = entry[key]
    return found


def issue(outcome: dict[str, Any]) -> tuple[str, str]:
    """(issue code, diagnostics) of a one-issue OperationOutcome, checked by the model."""
    assert outcome["resourceType"] == "OperationOutcome", outcome
    fhir_model(outcome)
    (only,) = outcome["issue"]
    assert only["severity"] == "error"
    return only["code"], only["diagnostics"]
