"""What the server says about itself: CapabilityStatement and TerminologyCapabilities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from .._version import __version__

__all__ = ["FHIR_VERSION", "capability_statement", "terminology_capabilities"]

#: FHIR R4.
FHIR_VERSION: Final = "4.0.1"

_OPERATION_DEFINITIONS: Final = "http://hl7.org/fhir/OperationDefinition/"


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _software() -> dict[str, str]:
    return {"name": "maxa-async", "version": __version__}


def _implementation(mode: str, base_url: str | None) -> dict[str, str]:
    implementation = {"description": f"MAXA (Iran Health Coding Reference) terminology, {mode}"}
    if base_url is not None:
        implementation["url"] = base_url
    return implementation


def _operation(resource: str, name: str) -> dict[str, str]:
    return {"name": name, "definition": f"{_OPERATION_DEFINITIONS}{resource}-{name}"}


def capability_statement(mode: str, base_url: str | None) -> dict[str, Any]:
    """The CapabilityStatement of a server in ``mode`` (online has no $expand)."""
    value_set_operations = [_operation("ValueSet", "validate-code")]
    if mode != "online":
        value_set_operations.insert(0, _operation("ValueSet", "expand"))
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _today(),
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/CapabilityStatement/terminology-server"],
        "software": _software(),
        "implementation": _implementation(mode, base_url),
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "CodeSystem",
                        "operation": [
                            _operation("CodeSystem", "lookup"),
                            _operation("CodeSystem", "validate-code"),
                        ],
                    },
                    {"type": "ValueSet", "operation": value_set_operations},
                ],
                "interaction": [{"code": "batch"}],
            }
        ],
    }


def terminology_capabilities(
    mode: str, systems: Mapping[str, str | None], base_url: str | None
) -> dict[str, Any]:
    """TerminologyCapabilities: ``systems`` maps each code system URI to its version
    (None: whatever the gateway's latest is)."""
    code_systems: list[dict[str, Any]] = []
    for uri, version in systems.items():
        entry: dict[str, Any] = {"uri": uri}
        if version is not None:
            entry["version"] = [{"code": version, "isDefault": True}]
        code_systems.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "TerminologyCapabilities",
        "status": "active",
        "date": _today(),
        "kind": "instance",
        "software": _software(),
        "implementation": _implementation(mode, base_url),
        "codeSystem": code_systems,
        "validateCode": {"translations": False},
    }
    if mode != "online":
        resource["expansion"] = {
            "hierarchical": False,
            "paging": True,
            "incomplete": False,
            "textFilter": (
                "Persian-normalised substring search of displays: Arabic yeh/kaf as Persian, "
                "Persian and Arabic-Indic digits as ASCII, ZWNJ and diacritics ignored, "
                "case-folded; every word must match"
            ),
        }
    return resource
