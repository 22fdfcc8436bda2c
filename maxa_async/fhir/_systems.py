"""Which FHIR ``system`` URI names which MAXA terminology, both ways."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

import attrs

from ..errors import InvalidInputError
from ..operations import check_terminology_id

__all__ = [
    "DEFAULT_SYSTEMS",
    "LOCAL_CODE_SYSTEM_PREFIX",
    "LOCAL_VALUE_SET_PREFIX",
    "SystemMap",
]

#: MAXA's own terminologies (eRx, IRC, thritaEHR value sets ...) have no published FHIR
#: URI yet. Until the ministry publishes its own, they are named with this prefix and
#: their MAXA id (``urn:maxa-async:CodeSystem:eRx``): a URN that belongs to this project
#: and pretends to no one's domain. Replace them with :meth:`SystemMap.with_systems`.
LOCAL_CODE_SYSTEM_PREFIX: Final = "urn:maxa-async:CodeSystem:"
#: The value set of all codes of a terminology (``urn:maxa-async:ValueSet:eRx``).
LOCAL_VALUE_SET_PREFIX: Final = "urn:maxa-async:ValueSet:"
#: The implicit value set of every code of a code system, as HL7 spells it for any system.
_IMPLICIT_VALUE_SET_SUFFIX: Final = "?fhir_vs"

#: International terminologies, by their MAXA id (as CtsTerminologies lists them), to the
#: URIs HL7 publishes for them.
DEFAULT_SYSTEMS: Final[Mapping[str, str]] = {
    "SNOMEDCT": "http://snomed.info/sct",
    "LNC": "http://loinc.org",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "ATC": "http://www.whocc.no/atc",
    "UCUM": "http://unitsofmeasure.org",
}


def _check_uri(uri: object, field: str) -> str:
    if not isinstance(uri, str) or not uri.strip() or ":" not in uri or uri != uri.strip():
        raise InvalidInputError(field, f"must be an absolute URI, got {uri!r}")
    if any(ch.isspace() for ch in uri):
        raise InvalidInputError(field, f"must not contain white space, got {uri!r}")
    return uri


@attrs.frozen
class SystemMap:
    """FHIR code system URIs to MAXA terminology ids and back.

    ``systems`` maps a MAXA terminology id to the URI FHIR clients use for it (the
    international ones to HL7's URIs by default, see :data:`DEFAULT_SYSTEMS`). Any
    terminology not in it is named ``local_prefix + id``, so every MAXA terminology is
    reachable; such a URN is local to this project (see
    :data:`LOCAL_CODE_SYSTEM_PREFIX`). Ids match without regard to case, as MAXA
    matches them; URIs exactly.

    The value set of all codes of a terminology is ``<system>?fhir_vs`` (HL7's implicit
    value set) or ``local_value_set_prefix + id``.
    """

    systems: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_SYSTEMS))
    local_prefix: str = LOCAL_CODE_SYSTEM_PREFIX
    local_value_set_prefix: str = LOCAL_VALUE_SET_PREFIX
    _by_id: dict[str, str] = attrs.field(init=False, repr=False, eq=False)
    _by_uri: dict[str, str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _check_uri(self.local_prefix, "local_prefix")
        _check_uri(self.local_value_set_prefix, "local_value_set_prefix")
        if not isinstance(self.systems, Mapping):
            raise InvalidInputError("systems", "must map terminology ids to URIs")
        by_id: dict[str, str] = {}
        by_uri: dict[str, str] = {}
        for raw_id, raw_uri in self.systems.items():
            terminology_id = check_terminology_id(raw_id, "systems")
            uri = _check_uri(raw_uri, f"systems[{terminology_id!r}]")
            if uri.startswith((self.local_prefix, self.local_value_set_prefix)):
                raise InvalidInputError(
                    f"systems[{terminology_id!r}]", "must not use the local prefixes"
                )
            if uri in by_uri:
                raise InvalidInputError(
                    f"systems[{terminology_id!r}]",
                    f"{uri} already names {by_uri[uri]!r}; one URI per terminology",
                )
            if terminology_id.lower() in by_id:
                raise InvalidInputError("systems", f"{terminology_id!r} is named twice")
            by_id[terminology_id.lower()] = uri
            by_uri[uri] = terminology_id
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_uri", by_uri)

    def with_systems(self, systems: Mapping[str, str]) -> SystemMap:
        """A copy with ``systems`` added over (or replacing) these, e.g. the ministry's
        own URI for eRx once it publishes one."""
        merged = {k: v for k, v in self.systems.items() if k.lower() not in _lower(systems)}
        merged.update(systems)
        return attrs.evolve(self, systems=merged)

    def system_for(self, terminology_id: str) -> str:
        """The code system URI of a MAXA terminology."""
        uri = self._by_id.get(terminology_id.strip().lower())
        return uri if uri is not None else self.local_prefix + terminology_id.strip()

    def value_set_for(self, terminology_id: str) -> str:
        """The URI of the value set of every code of a MAXA terminology."""
        uri = self._by_id.get(terminology_id.strip().lower())
        if uri is not None:
            return uri + _IMPLICIT_VALUE_SET_SUFFIX
        return self.local_value_set_prefix + terminology_id.strip()

    def terminology_for(self, system: str) -> str | None:
        """The MAXA terminology id a code system URI names, or None."""
        found = self._by_uri.get(system)
        if found is not None:
            return found
        if system.startswith(self.local_prefix):
            return _local_id(system[len(self.local_prefix) :])
        return None

    def terminology_for_value_set(self, url: str) -> str | None:
        """The MAXA terminology whose every code a value set URI names, or None."""
        if url.startswith(self.local_value_set_prefix):
            return _local_id(url[len(self.local_value_set_prefix) :])
        if url.endswith(_IMPLICIT_VALUE_SET_SUFFIX):
            return self.terminology_for(url[: -len(_IMPLICIT_VALUE_SET_SUFFIX)])
        return None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(terminology id, URI) for the terminologies named explicitly."""
        return iter(self._by_uri_items())

    def _by_uri_items(self) -> list[tuple[str, str]]:
        return [(terminology_id, uri) for uri, terminology_id in self._by_uri.items()]


def _lower(systems: Mapping[str, str]) -> set[str]:
    return {key.lower() for key in systems}


def _local_id(rest: str) -> str | None:
    """The id after a local prefix, if it is one MAXA could have (ASCII, no spaces)."""
    try:
        return check_terminology_id(rest, "system")
    except InvalidInputError:
        return None
