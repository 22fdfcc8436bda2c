"""The fake's terminologies: the guide's samples, generated drug codes, and users' own terms."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import orjson

from ._generate import Row, generate_erx, generate_irc
from ._jalali import jalali, now_tehran, to_tehran_naive

__all__ = ["CONTACT_TYPES", "CTS_TERMINOLOGIES", "RELIGIONS", "GatewayData", "Term"]


def _optional_created(value: object) -> dt.datetime | None:
    return None if value is None else to_tehran_naive(value)


def _str(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attr.name} must be a string, got {value!r}")


@attrs.frozen
class Term:
    """One code of a terminology version.

    ``created`` is when the term was created, as Tehran wall-clock time: a naive
    ``datetime`` is taken as Tehran time, an aware one is converted; a ``date``,
    a persiantools ``JalaliDate``/``JalaliDateTime`` or text (``"1402/01/15"``,
    ``"2023-04-04T10:00"``) is accepted too. ``None`` means "when it is added to
    the gateway". SearchTerminology returns the terms created at or after its
    ``FromDate``.
    """

    code: str = attrs.field(validator=_str)
    value: str = attrs.field(validator=_str)
    created: dt.datetime | None = attrs.field(default=None, converter=_optional_created)


def _fast_term(code: str, value: str, created: dt.datetime) -> Term:
    """A Term from trusted generated data, skipping conversion and validation."""
    term = object.__new__(Term)
    object.__setattr__(term, "code", code)
    object.__setattr__(term, "value", value)
    object.__setattr__(term, "created", created)
    return term


def _key(terminology_id: str) -> str:
    return terminology_id.strip().lower()


@attrs.define(eq=False)
class _Version:
    version: str
    version_id: int
    row_id: int
    is_last: bool
    terms: dict[str, Term]
    #: False while ``terms`` is shared with the module-level generation cache.
    owned: bool = True
    #: Cached CodedText array of TerminologiesTermByVersion, dropped on any change.
    list_json: bytes | None = None


@attrs.define(eq=False)
class _Terminology:
    name: str
    label: str
    created: dt.datetime
    loaded_versions: list[_Version] | None = None
    loader: Callable[[], list[_Version]] | None = None

    @property
    def versions(self) -> list[_Version]:
        if self.loaded_versions is None:
            self.loaded_versions = self.loader() if self.loader is not None else []
            self.loader = None
        return self.loaded_versions

    def latest(self) -> _Version | None:
        versions = self.versions
        for version in versions:
            if version.is_last:
                return version
        return versions[-1] if versions else None

    def find(self, version: str | None) -> _Version | None:
        if version is None:
            return self.latest()
        wanted = version.strip()
        for candidate in self.versions:
            if candidate.version == wanted:
                return candidate
        return None


# -- the guide's samples ------------------------------------------------------------------------

CONTACT_TYPES: Mapping[str, str] = {
    "1": "تلفن منزل",
    "2": "تلفن محل کار",
    "3": "تلفن همراه شخصی",
    "4": "فاکس منزل",
    "5": "فاکس محل کار",
    "6": "پست الکترونیکی شخصی",
    "7": "پست الکترونیکی محل کار",
    "8": "نشانی وبسایت شخصی",
    "9": "نشانی وبسایت محل کار",
    "10": "پیجر شخصی",
    "11": "پیجر محل کار",
    "12": "تلفن همراه محل کار",
    "13": "نشانی منزل",
    "14": "نشانی محل کار",
}

RELIGIONS: Mapping[str, str] = {
    "1": "اسلام",
    "2": "مسیحیت",
    "3": "یهودیت",
    "4": "زرتشتی",
    "5": "سایر",
}

#: CtsTerminologies' sample answer, in its order (all created after 1390/10/10).
CTS_TERMINOLOGIES: tuple[str, ...] = (
    "ICD10",
    "ICD10-FA",
    "ISO_3166-1",
    "Country",
    "thritaEHR.admissionType",
    "thritaEHR.birthDateAccuracy",
    "DateAccuracy",
    "California",
    "thritaEHR.conditionOnDischarge",
    "thritaEHR.BedStatus",
    "thritaEHR.RelatedPerson",
    "thritaEHR.WardType",
    "ThritaEHR",
    "CDT",
    "MEQ",
    "SNOMEDCT",
    "LNC",
    "eRX",
    "UCUM",
    "ATC",
    "countryDivisions",
    "IRC",
    "CDT-FA",
    "ADA",
)

_ICD10 = {
    "A00": "Cholera",
    "A09": "Other gastroenteritis and colitis of infectious and unspecified origin",
    "E11": "Type 2 diabetes mellitus",
    "I10": "Essential (primary) hypertension",
    "J45": "Asthma",
    "K29": "Gastritis and duodenitis",
    "N39": "Other disorders of urinary system",
    "R50": "Fever of other and unknown origin",
}

_ERX_OLD = ("1000", 85, 146)
_ERX_LATEST = ("10000", 86, 147)
_IRC_VERSION = ("1401.11", 84, 145)


@functools.lru_cache(maxsize=4)
def _erx_terms(seed: int) -> tuple[dict[str, Term], dict[str, Term]]:
    old_rows, latest_rows = generate_erx(seed)
    old = {code: _fast_term(code, value, created) for code, value, created in old_rows}
    latest: dict[str, Term] = {}
    for code, value, created in latest_rows:
        shared = old.get(code)
        same = shared is not None and shared.value == value and shared.created == created
        latest[code] = shared if same and shared is not None else _fast_term(code, value, created)
    return old, latest


@functools.lru_cache(maxsize=4)
def _irc_terms(seed: int) -> dict[str, Term]:
    rows: tuple[Row, ...] = generate_irc(seed)
    return {code: _fast_term(code, value, created) for code, value, created in rows}


def _erx_loader(seed: int) -> Callable[[], list[_Version]]:
    def load() -> list[_Version]:
        old, latest = _erx_terms(seed)
        return [
            _Version(*_ERX_OLD, is_last=False, terms=old, owned=False),
            _Version(*_ERX_LATEST, is_last=True, terms=latest, owned=False),
        ]

    return load


def _irc_loader(seed: int) -> Callable[[], list[_Version]]:
    def load() -> list[_Version]:
        return [_Version(*_IRC_VERSION, is_last=True, terms=_irc_terms(seed), owned=False)]

    return load


class GatewayData:
    """The terminologies a fake gateway serves, their versions and terms.

    ``GatewayData.default()`` holds the guide's samples (ContactType 1-14,
    thritaEHR.Religion, the CtsTerminologies list, a few ICD10 codes) and seeded,
    generated drug terminologies: eRx version "1000" (46,000 codes) and "10000"
    (50,000, IsLast), and IRC (20,000). The drug lists are generated on first use
    and cached per seed for the process; changes made through this object never
    leak into other gateways.

    Terminology ids are matched without regard to case after stripping white
    space; codes and versions are matched exactly after stripping.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, _Terminology] = {}
        self._next_row_id = 200
        self._next_version_id = 100

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> GatewayData:
        """No terminologies at all."""
        return cls()

    @classmethod
    def default(cls, seed: int = 0, *, generated: bool = True) -> GatewayData:
        """The guide's samples plus (unless ``generated=False``) eRx and IRC for ``seed``."""
        data = cls()
        data.add_terminology("ContactType", created=jalali(1389, 5, 1, 9, 0, 0))
        data.add_version(
            "ContactType",
            "1",
            [
                Term(code, value, jalali(1391, 1, 15, 10, 0, int(code)))
                for code, value in CONTACT_TYPES.items()
            ],
        )
        data.add_terminology("thritaEHR.Religion", created=jalali(1389, 6, 12, 11, 0, 0))
        data.add_version(
            "thritaEHR.Religion",
            "1",
            [Term(code, value, jalali(1391, 2, 3, 8, 30, 0)) for code, value in RELIGIONS.items()],
        )
        first = jalali(1391, 1, 20, 9, 0, 0)
        for index, name in enumerate(CTS_TERMINOLOGIES):
            created = first + dt.timedelta(days=60 * index)
            if name == "eRX":
                terminology = _Terminology(name, "eRx", created)
                if generated:
                    terminology.loader = _erx_loader(seed)
                data._by_key[_key(name)] = terminology
            elif name == "IRC":
                terminology = _Terminology(name, name, created)
                if generated:
                    terminology.loader = _irc_loader(seed)
                data._by_key[_key(name)] = terminology
            else:
                data.add_terminology(name, created=created)
        data.add_version(
            "ICD10",
            "2016",
            [Term(code, value, jalali(1395, 3, 1)) for code, value in _ICD10.items()],
        )
        return data

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, include_defaults: bool = False, seed: int = 0
    ) -> GatewayData:
        """Terms from a CSV or JSON file (see :meth:`load_file`), alone or on the defaults."""
        data = cls.default(seed) if include_defaults else cls()
        data.load_file(path)
        return data

    def load_file(self, path: str | os.PathLike[str]) -> None:
        """Add terms from a file; ``.json`` is read as JSON, anything else as CSV.

        CSV: a header row naming ``terminology``, ``code``, ``value`` and optionally
        ``version`` and ``created``. JSON: an array of objects with those keys (or
        ``{"terms": [...]}``). See :meth:`load_rows` for how rows are applied.
        """
        file = Path(path)
        if file.suffix.lower() == ".json":
            loaded = orjson.loads(file.read_bytes())
            if isinstance(loaded, dict):
                loaded = loaded.get("terms")
            if not isinstance(loaded, list) or not all(isinstance(r, dict) for r in loaded):
                raise ValueError(f"{file}: expected an array of term objects")
            self.load_rows(loaded)
            return
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = {name.strip().lower() for name in reader.fieldnames or ()}
            missing = {"terminology", "code", "value"} - columns
            if missing:
                raise ValueError(f"{file}: missing column(s) {', '.join(sorted(missing))}")
            self.load_rows(
                [
                    {(k or "").strip().lower(): v for k, v in row.items() if v is not None}
                    for row in reader
                ]
            )

    def load_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add terms given as mappings with ``terminology``, ``code``, ``value``, and
        optionally ``version`` and ``created``.

        Rows without a version go to the terminology's latest version (version "1"
        of a new terminology). Versions not yet present are added in order, so the
        one added last becomes IsLast: numerically if every new version of that
        terminology is a number, else in order of first appearance. A missing or
        blank ``created`` means now.
        """
        grouped: dict[str, tuple[str, dict[str | None, list[Term]]]] = {}
        for index, row in enumerate(rows):
            try:
                terminology = str(row["terminology"]).strip()
                code = str(row["code"]).strip()
                value = str(row["value"])
            except KeyError as exc:
                raise ValueError(f"row {index}: missing {exc.args[0]!r}") from None
            if not terminology or not code:
                raise ValueError(f"row {index}: blank terminology or code")
            raw_version = row.get("version")
            version = str(raw_version).strip() if raw_version not in (None, "") else None
            raw_created = row.get("created")
            created = raw_created if raw_created not in (None, "") else None
            entry = grouped.setdefault(_key(terminology), (terminology, {}))
            entry[1].setdefault(version, []).append(Term(code, value, created))
        for name, by_version in grouped.values():
            if self._find(name) is None:
                self.add_terminology(name)
            target = self._get(name)
            existing = {v.version for v in target.versions}
            new_versions = [v for v in by_version if v is not None and v not in existing]
            if all(v.isdigit() for v in new_versions):
                new_versions.sort(key=int)
            for version in new_versions:
                self.add_version(name, version, by_version[version])
            for version, terms in by_version.items():
                if version is None:
                    if target.latest() is None:
                        self.add_version(name, "1", terms)
                    else:
                        self.add_terms(name, terms)
                elif version in existing:
                    self.add_terms(name, terms, version=version)

    # -- reading --------------------------------------------------------------------------------

    def terminology_ids(self) -> list[str]:
        """Every terminology's name, in creation order."""
        return [terminology.name for terminology in self._by_key.values()]

    def versions(self, terminology_id: str) -> list[str]:
        """The version names of a terminology, oldest first."""
        return [version.version for version in self._get(terminology_id).versions]

    def latest_version(self, terminology_id: str) -> str | None:
        """The IsLast version's name, or ``None`` when the terminology has no versions."""
        latest = self._get(terminology_id).latest()
        return None if latest is None else latest.version

    def get_term(self, terminology_id: str, code: str, version: str | None = None) -> Term | None:
        """A term of the latest (or the named) version, or ``None``."""
        terminology = self._find(terminology_id)
        found = None if terminology is None else terminology.find(version)
        return None if found is None else found.terms.get(code.strip())

    def terms(self, terminology_id: str, version: str | None = None) -> list[Term]:
        """Every term of the latest (or the named) version."""
        return list(self._version(terminology_id, version).terms.values())

    # -- changing -------------------------------------------------------------------------------

    def add_terminology(
        self, terminology_id: str, *, created: object = None, label: str | None = None
    ) -> None:
        """A new terminology without versions; ``created`` (default now) is what
        CtsTerminologies filters on; ``label`` is its ``terminology_idField`` in
        CodedText answers (default: its name)."""
        name = terminology_id.strip()
        if not name:
            raise ValueError("blank terminology id")
        if _key(name) in self._by_key:
            raise ValueError(f"terminology {name!r} exists")
        moment = now_tehran() if created is None else to_tehran_naive(created)
        self._by_key[_key(name)] = _Terminology(name, label or name, moment, [])

    def add_version(
        self,
        terminology_id: str,
        version: str,
        terms: Iterable[Term] = (),
        *,
        is_last: bool = True,
        inherit: bool = False,
    ) -> None:
        """A new version (created with its terminology if needed). With ``is_last``
        it becomes the latest and the others lose IsLast; with ``inherit`` it starts
        as a copy of the latest version's terms, then ``terms`` are added over them."""
        if self._find(terminology_id) is None:
            self.add_terminology(terminology_id)
        terminology = self._get(terminology_id)
        name = version.strip()
        if not name:
            raise ValueError("blank version")
        if terminology.find(name) is not None:
            raise ValueError(f"{terminology.name} version {name!r} exists")
        base = terminology.latest()
        contents = dict(base.terms) if inherit and base is not None else {}
        now = now_tehran()
        for term in terms:
            contents[term.code.strip()] = _stamped(term, now)
        if is_last:
            for other in terminology.versions:
                other.is_last = False
        terminology.versions.append(
            _Version(name, self._next_version_id, self._next_row_id, is_last, contents)
        )
        self._next_version_id += 1
        self._next_row_id += 1

    def add_terms(
        self, terminology_id: str, terms: Iterable[Term], version: str | None = None
    ) -> None:
        """Add (or replace, by code) terms in the latest or the named version; a term
        without ``created`` is stamped now, so SearchTerminology since any earlier
        moment returns it. A new terminology is created with version "1"."""
        terms = list(terms)
        if self._find(terminology_id) is None or self._get(terminology_id).latest() is None:
            self.add_version(terminology_id, version or "1", terms)
            return
        target = self._version(terminology_id, version)
        contents = _writable(target)
        now = now_tehran()
        for term in terms:
            contents[term.code.strip()] = _stamped(term, now)

    def change_term(
        self,
        terminology_id: str,
        code: str,
        value: str,
        *,
        version: str | None = None,
        created: object = None,
    ) -> Term:
        """Give an existing code a new value, re-created now (or at ``created``)."""
        target = self._version(terminology_id, version)
        if code.strip() not in target.terms:
            raise KeyError(f"no code {code!r} in {terminology_id} {target.version}")
        term = Term(code.strip(), value, now_tehran() if created is None else created)
        _writable(target)[term.code] = term
        return term

    def remove_term(self, terminology_id: str, code: str, *, version: str | None = None) -> None:
        """Remove a code from the latest or the named version."""
        target = self._version(terminology_id, version)
        if code.strip() not in target.terms:
            raise KeyError(f"no code {code!r} in {terminology_id} {target.version}")
        del _writable(target)[code.strip()]

    # -- internals ------------------------------------------------------------------------------

    def _find(self, terminology_id: str) -> _Terminology | None:
        return self._by_key.get(_key(terminology_id))

    def _get(self, terminology_id: str) -> _Terminology:
        terminology = self._by_key.get(_key(terminology_id))
        if terminology is None:
            raise KeyError(f"no terminology {terminology_id!r}")
        return terminology

    def _version(self, terminology_id: str, version: str | None) -> _Version:
        terminology = self._get(terminology_id)
        found = terminology.find(version)
        if found is None:
            raise KeyError(f"no version {version!r} of {terminology.name}")
        return found

    def _all(self) -> Iterable[_Terminology]:
        return self._by_key.values()


def _stamped(term: Term, now: dt.datetime) -> Term:
    code = term.code.strip()
    if term.created is not None and code == term.code:
        return term
    return Term(code, term.value, term.created or now)


def _writable(version: _Version) -> dict[str, Term]:
    if not version.owned:
        version.terms = dict(version.terms)
        version.owned = True
    version.list_json = None
    return version.terms
