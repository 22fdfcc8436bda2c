"""FHIR ``Parameters`` in and out, as plain JSON-compatible dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..errors import InvalidInputError

__all__ = ["Inputs", "output_parameters", "parameters", "read_parameters", "read_query"]

#: One operation's inputs by name: str, int, or a dict for a Coding.
Inputs = dict[str, Any]

#: The value[x] each input parameter is written with by :func:`parameters`.
_INPUT_TYPES: Final[Mapping[str, str]] = {
    "url": "valueUri",
    "system": "valueUri",
    "code": "valueCode",
    "display": "valueString",
    "version": "valueString",
    "systemVersion": "valueString",
    "valueSetVersion": "valueString",
    "filter": "valueString",
    "count": "valueInteger",
    "offset": "valueInteger",
    "coding": "valueCoding",
    "codeableConcept": "valueCodeableConcept",
}
#: Integer inputs: read from query strings as numbers.
_INTEGER_INPUTS: Final = frozenset({"count", "offset"})
_COMPLEX_INPUTS: Final = frozenset({"coding", "codeableConcept"})


def parameters(**values: Any) -> dict[str, Any]:
    """An input ``Parameters`` resource from keywords, None values left out::

    parameters(system="urn:maxa-async:CodeSystem:eRx", code="60002", display="...")
    """
    entries: list[dict[str, Any]] = []
    for name, value in values.items():
        if value is None:
            continue
        kind = _INPUT_TYPES.get(name)
        if kind is None:
            kind = "valueInteger" if isinstance(value, int) else "valueString"
        entries.append({"name": name, kind: value})
    return {"resourceType": "Parameters", "parameter": entries}


def output_parameters(*values: tuple[str, str, Any]) -> dict[str, Any]:
    """An output ``Parameters`` resource from ``(name, value[x] key, value)``; None values
    are left out."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": name, kind: value} for name, kind, value in values if value is not None
        ],
    }


def _value_of(entry: Mapping[str, Any], name: str) -> Any:
    keys = [key for key in entry if key.startswith("value")]
    if len(keys) != 1:
        raise InvalidInputError(name, f"needs exactly one value[x], got {len(keys)}")
    value = entry[keys[0]]
    if name in _INTEGER_INPUTS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(name, f"must be an integer, got {value!r}")
    elif name in _COMPLEX_INPUTS:
        if not isinstance(value, dict):
            raise InvalidInputError(name, f"must be a {name}, got {type(value).__name__}")
    elif not isinstance(value, str):
        raise InvalidInputError(name, f"must be a string, got {type(value).__name__}")
    return value


def read_parameters(resource: object) -> Inputs:
    """The inputs of a ``Parameters`` resource (a POST body). Unknown names are ignored;
    a known one given twice, or with the wrong type, raises :class:`InvalidInputError`
    naming it."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Parameters":
        raise InvalidInputError("body", "must be a FHIR Parameters resource")
    entries = resource.get("parameter", [])
    if not isinstance(entries, list):
        raise InvalidInputError("parameter", "must be a list")
    inputs: Inputs = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise InvalidInputError("parameter", "each needs a name")
        name = entry["name"]
        if name not in _INPUT_TYPES:
            continue
        if name in inputs:
            raise InvalidInputError(name, "given more than once")
        inputs[name] = _value_of(entry, name)
    return inputs


def read_query(pairs: Iterable[tuple[str, str]]) -> Inputs:
    """The inputs of a GET query string (``_format`` and unknown names are ignored)."""
    inputs: Inputs = {}
    for name, raw in pairs:
        if name not in _INPUT_TYPES:
            continue
        if name in _COMPLEX_INPUTS:
            raise InvalidInputError(name, "cannot be given in a query string; POST Parameters")
        if name in inputs:
            raise InvalidInputError(name, "given more than once")
        if name in _INTEGER_INPUTS:
            try:
                inputs[name] = int(raw)
            except ValueError:
                raise InvalidInputError(name, f"must be an integer, got {raw!r}") from None
        else:
            inputs[name] = raw
    return inputs
