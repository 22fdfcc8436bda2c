"""MAXA as a FHIR R4 terminology service: ``$validate-code``, ``$lookup``, ``$expand``
and batch Bundles, over the online client, an offline snapshot, or the hybrid.

::

    from maxa_async.fhir import FhirTerminology, FhirServer, parameters

    fhir = FhirTerminology(store)        # a SnapshotStore, a MaxaClient or a HybridValidator
    answer = await fhir.validate_code(parameters(
        system="urn:maxa-async:CodeSystem:eRx", code="60002",
        display="ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"))
    # {"resourceType": "Parameters", "parameter": [{"name": "result", "valueBoolean": True},
    #                                              {"name": "display", "valueString": ...}]}
    async with FhirServer(fhir, port=8080) as server:    # or: maxa serve --fhir --offline
        ...

Resources are plain JSON-compatible dicts, in and out. Code system URIs map to MAXA
terminology ids through a :class:`SystemMap`: SNOMEDCT, LNC, ICD10, ATC and UCUM to
HL7's URIs (``http://snomed.info/sct``, ``http://loinc.org``,
``http://hl7.org/fhir/sid/icd-10``, ``http://www.whocc.no/atc``,
``http://unitsofmeasure.org``), every other terminology (eRx, IRC, thritaEHR value sets
...) to ``urn:maxa-async:CodeSystem:<id>``, a URN local to this project until the
ministry publishes URIs of its own. Errors are ``OperationOutcome`` resources whose issue
code comes from one table (:data:`ERROR_RULES`): invalid, not-found, throttled,
transient, security, exception, and not-supported / too-costly for requests this server
does not answer.
"""

from __future__ import annotations

from ._backends import Backend, CodeAnswer, HybridBackend, OfflineBackend, OnlineBackend
from ._metadata import FHIR_VERSION
from ._outcome import (
    ERROR_CODE_SYSTEM,
    ERROR_RULES,
    FhirOperationError,
    FhirResponse,
    IssueRule,
    operation_outcome,
    response_for_error,
)
from ._params import output_parameters, parameters, read_parameters, read_query
from ._server import FhirServer, fhir_app
from ._systems import DEFAULT_SYSTEMS, LOCAL_CODE_SYSTEM_PREFIX, LOCAL_VALUE_SET_PREFIX, SystemMap
from ._terminology import OPERATIONS, FhirTerminology

__all__ = [
    "DEFAULT_SYSTEMS",
    "ERROR_CODE_SYSTEM",
    "ERROR_RULES",
    "FHIR_VERSION",
    "LOCAL_CODE_SYSTEM_PREFIX",
    "LOCAL_VALUE_SET_PREFIX",
    "OPERATIONS",
    "Backend",
    "CodeAnswer",
    "FhirOperationError",
    "FhirResponse",
    "FhirServer",
    "FhirTerminology",
    "HybridBackend",
    "IssueRule",
    "OfflineBackend",
    "OnlineBackend",
    "SystemMap",
    "fhir_app",
    "operation_outcome",
    "output_parameters",
    "parameters",
    "read_parameters",
    "read_query",
    "response_for_error",
]
