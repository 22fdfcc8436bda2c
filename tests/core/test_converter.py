"""The cattrs converter: wire names, strict types, tolerant booleans, readable errors."""

from __future__ import annotations

import json
from typing import Any

import cattrs
import pytest

from maxa_async import operations as ops
from maxa_async.converter import WIRE_NAMES, get_converter, make_converter, structure, wire_name
from maxa_async.errors import ProtocolError
from maxa_async.jalali import JalaliDateTime
from maxa_async.models import CodedText, TerminologyVersion

from . import _samples as s

GUIDE_VERSION = {
    "id": 147,
    "TerminologyId": "eRX",
    "Version": "10000",
    "VersionId": 86,
    "IsLast": True,
}
GUIDE_TERM = {
    "valueField": "پست الکترونیکی شخصی",
    "terminology_idField": "ContactType",
    "coded_stringField": "6",
}
GUIDE_FROM_DATE = {
    "yearField": 1390,
    "monthField": 10,
    "dayField": 10,
    "hourField": 10,
    "minuteField": 10,
    "secondField": 10,
}


def test_wire_names_of_every_model() -> None:
    assert [wire_name(CodedText, f) for f in ("value", "terminology_id", "coded_string")] == list(
        GUIDE_TERM
    )
    assert [
        wire_name(TerminologyVersion, f)
        for f in ("id", "terminology_id", "version", "version_id", "is_last")
    ] == list(GUIDE_VERSION)
    assert [
        wire_name(JalaliDateTime, f) for f in ("year", "month", "day", "hour", "minute", "second")
    ] == list(GUIDE_FROM_DATE)
    assert set(WIRE_NAMES) == {CodedText, TerminologyVersion, JalaliDateTime}


def test_unstructure_uses_the_guides_keys_in_order() -> None:
    converter = get_converter()
    term = CodedText("پست الکترونیکی شخصی", "ContactType", "6")
    assert list(converter.unstructure(term).items()) == list(GUIDE_TERM.items())
    since = JalaliDateTime(1390, 10, 10, 10, 10, 10)
    assert list(converter.unstructure(since).items()) == list(GUIDE_FROM_DATE.items())
    version = TerminologyVersion(147, "eRX", "10000", 86, True)
    assert converter.unstructure(version) == GUIDE_VERSION


def test_structure_round_trips() -> None:
    assert structure(GUIDE_TERM, CodedText) == CodedText("پست الکترونیکی شخصی", "ContactType", "6")
    assert structure(GUIDE_VERSION, TerminologyVersion) == TerminologyVersion(
        147, "eRX", "10000", 86, True
    )
    assert structure(GUIDE_FROM_DATE, JalaliDateTime) == JalaliDateTime(1390, 10, 10, 10, 10, 10)
    for value in (CodedText("a", "b", "c"), TerminologyVersion(1, "x", "1", 2, False)):
        assert structure(get_converter().unstructure(value), type(value)) == value


def test_from_date_wire_forms() -> None:
    since = JalaliDateTime(1390, 10, 10, 10, 10, 10)
    search = ops.from_date_wire(since, iso_string=True)
    assert search == s.load("search_terminology.request")["FromDate"]
    assert list(search) == ["iSOStringField", *GUIDE_FROM_DATE] and search["iSOStringField"] == ""
    assert (
        ops.from_date_wire(since, iso_string=False)
        == s.load("cts_terminologies.request")["FromDate"]
    )


def test_make_converter_builds_independent_converters() -> None:
    first, second = make_converter(), make_converter()
    assert first is not second
    assert get_converter() is get_converter()
    assert first.structure(GUIDE_TERM, CodedText) == second.structure(GUIDE_TERM, CodedText)


def test_extra_keys_are_ignored() -> None:
    assert structure({**GUIDE_VERSION, "CreatedAt": "1400/01/01"}, TerminologyVersion).id == 147


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("id", "147"),  # a number as a string: a broken response, not something to paper over
        ("id", 147.0),
        ("id", True),
        ("VersionId", None),
        ("Version", 10000),  # strict: no silent 10000 -> "10000"
        ("TerminologyId", ["eRX"]),
        ("IsLast", "yes"),
        ("IsLast", 1),
        ("IsLast", None),
    ],
)
def test_strict_types_in_terminology_versions(field: str, bad: Any) -> None:
    call = ops.terminology_versions("eRx")
    body = s.envelope([{**GUIDE_VERSION, field: bad}])
    with pytest.raises(ProtocolError) as caught:
        call.parse(200, {"requestId": "rid-5"}, body)
    message = str(caught.value)
    assert f"$.result.data[0].{field}" in message  # the cattrs path
    assert "TerminologyVersions" in message and "rid-5" in message


@pytest.mark.parametrize("is_last", ["true", "True", " false ", True, False])
def test_booleans_may_come_as_strings(is_last: Any) -> None:
    call = ops.terminology_versions("eRx")
    result = call.parse(200, {}, s.envelope([{**GUIDE_VERSION, "IsLast": is_last}]))
    expected = is_last if isinstance(is_last, bool) else is_last.strip().lower() == "true"
    assert result[0].is_last is expected


@pytest.mark.parametrize("field", list(GUIDE_TERM))
def test_missing_and_mistyped_coded_text_fields(field: str) -> None:
    call = ops.terminologies_term_by_version("eRx", "10000")
    missing = {k: v for k, v in GUIDE_TERM.items() if k != field}
    for item in (missing, {**GUIDE_TERM, field: 6}):
        with pytest.raises(ProtocolError) as caught:
            call.parse(200, {}, s.envelope([GUIDE_TERM, item]))
        assert f"$.result.data[1].{field}" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        "ICD10",  # a bare string must not become ["I", "C", "D", "1", "0"]
        '"ICD10"',
        {"ICD10": 1},  # an object must not become its list of keys
        42,
        True,
        [1, 2],
        [["ICD10"]],
    ],
)
def test_lists_of_strings_are_strict(data: Any) -> None:
    with pytest.raises(ProtocolError):
        ops.cts_terminologies(JalaliDateTime(1390, 1, 1)).parse(200, {}, s.envelope(data))


@pytest.mark.parametrize(
    "data", [GUIDE_TERM, "x", json.dumps(GUIDE_TERM), 3, [None], [[GUIDE_TERM]]]
)
def test_lists_of_coded_texts_are_strict(data: Any) -> None:
    call = ops.search_terminology("ContactType", JalaliDateTime(1390, 1, 1))
    with pytest.raises(ProtocolError, match="unexpected result data"):
        call.parse(200, {}, s.envelope(data))


def test_the_converter_raises_cattrs_errors_that_transform_error_reads() -> None:
    with pytest.raises(cattrs.BaseValidationError) as caught:
        structure([GUIDE_VERSION, {**GUIDE_VERSION, "id": "x"}], list[TerminologyVersion])
    assert any("$[1].id" in line for line in cattrs.transform_error(caught.value))
