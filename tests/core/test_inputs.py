"""Input checks before anything is sent: a bad argument raises InvalidInputError (a
ValueError) whose ``field`` names it.

"Non-ASCII" is refused for terminology ids only: codes and versions are free text to us,
and values are Persian text by nature (ValidateCts' sample value is "پست الکترونیکی شخصی").
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest

from maxa_async import operations as ops
from maxa_async.errors import InvalidInputError
from maxa_async.jalali import JalaliDateTime, to_jalali
from maxa_async.models import CodedText

SINCE = JalaliDateTime(1390, 10, 10)

BAD_IDS = [
    "",
    "   ",
    "\t\n",
    None,
    42,
    b"eRx",
    ["eRx"],
    "x" * 129,
    "thrिताEHR.Religion",
    "اسلام",
    "eRx\u200b",  # zero-width space
    "e\tRx",  # a control character inside
    "eRx\x00",
    "ｅＲｘ",  # full-width letters
]

BAD_TEXT = ["", "   ", None, 60002, 1.0, b"60002", "x" * 257]


def _raises(build: Callable[[], Any], field: str) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as caught:
        build()
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    return error


ID_BUILDERS: list[tuple[str, Callable[[Any], Any]]] = [
    ("terminology", lambda tid: ops.terminology(tid, "1")),
    ("search_terminology", lambda tid: ops.search_terminology(tid, SINCE)),
    ("terminology_value_by_version", lambda tid: ops.terminology_value_by_version(tid, "1", "1")),
    ("terminologies_term_by_version", lambda tid: ops.terminologies_term_by_version(tid, "1")),
    ("terminology_versions", ops.terminology_versions),
]


@pytest.mark.parametrize(("name", "build"), ID_BUILDERS)
@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_terminology_ids(name: str, build: Callable[[Any], Any], bad: object) -> None:
    _raises(lambda: build(bad), "terminology_id")


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_terminology_id_inside_a_coded_text(bad: object) -> None:
    _raises(lambda: ops.validate_cts(CodedText("v", bad, "1")), "coded_text.terminology_id")


def test_longest_allowed_id_and_inner_spaces_pass() -> None:
    assert json.loads(ops.terminology_versions("x" * 128).request.body) == {
        "terminologyId": "x" * 128
    }
    assert ops.check_terminology_id(" thrita EHR ") == "thrita EHR"
    assert ops.check_terminology_id("~!ICD10-FA_1.2") == "~!ICD10-FA_1.2"


@pytest.mark.parametrize("bad", BAD_TEXT, ids=repr)
def test_bad_codes(bad: object) -> None:
    _raises(lambda: ops.terminology("eRx", bad), "coded_string")
    _raises(lambda: ops.terminology_value_by_version("eRx", bad, "1000"), "coded_string")
    _raises(
        lambda: ops.validate_cts(CodedText("v", "eRx", bad)),
        "coded_text.coded_string",
    )


@pytest.mark.parametrize("bad", BAD_TEXT, ids=repr)
def test_bad_versions(bad: object) -> None:
    _raises(lambda: ops.terminology_value_by_version("eRx", "60002", bad), "version")
    _raises(lambda: ops.terminologies_term_by_version("eRx", bad), "version")


@pytest.mark.parametrize("bad", ["", "   ", None, 1, "x" * 8193], ids=repr)
def test_bad_values(bad: object) -> None:
    _raises(lambda: ops.validate_cts(CodedText(bad, "ContactType", "6")), "coded_text.value")


def test_good_text_is_stripped_and_persian_values_pass() -> None:
    body = json.loads(ops.terminology_value_by_version(" ERX ", " 60002\n", " 1000 ").request.body)
    assert body == {"terminologyId": "ERX", "codedString": "60002", "version": "1000"}
    value = "پست الکترونیکی شخصی"
    sent = json.loads(ops.validate_cts(CodedText(f" {value} ", "ContactType", "6")).request.body)
    assert sent["DoCodedText"]["valueField"] == value
    long_value = "ا" * 8192
    assert ops.check_coded_text(CodedText(long_value, "eRx", "1")).value == long_value


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"value": "v", "terminology_id": "eRx", "coded_string": "1"},
        ("v", "eRx", "1"),
        "v|eRx|1",
    ],
    ids=repr,
)
def test_validate_cts_needs_a_coded_text(bad: object) -> None:
    error = _raises(lambda: ops.validate_cts(bad), "coded_text")
    assert "CodedText" in str(error)


# --------------------------------------------------------------------------- since=


SINCE_BUILDERS: list[Callable[[Any], Any]] = [
    lambda since: ops.search_terminology("ContactType", since),
    ops.cts_terminologies,
]


@pytest.mark.parametrize("build", SINCE_BUILDERS)
@pytest.mark.parametrize(
    "bad",
    [
        None,
        1390,
        1.5,
        [1390, 10, 10],
        {"yearField": 1390},
        dt.time(10, 10),
        "",
        "yesterday",
        "1390/10",
        "1402/12/30",  # 1402 is not a leap year: Esfand has 29 days
        "1403/13/01",
        "1403/01/32",
        "1403/07/31",
        "1403/01/01 24:00",
        "1403/01/01 10:60",
        "0/01/01",
        dt.date(100, 1, 1),  # before the Jalali epoch (622)
        dt.datetime(9999, 12, 31, 23, 0),  # Jalali 9378: past persiantools' range
        dt.datetime.max.replace(tzinfo=dt.UTC),  # past datetime.max once in Tehran time
    ],
    ids=repr,
)
def test_bad_since(build: Callable[[Any], Any], bad: object) -> None:
    _raises(lambda: build(bad), "since")


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (JalaliDateTime(1390, 10, 10, 10, 10, 10), (1390, 10, 10, 10, 10, 10)),
        ("1390/10/10 10:10:10", (1390, 10, 10, 10, 10, 10)),
        ("1390-10-10", (1390, 10, 10, 0, 0, 0)),
        (dt.date(2012, 1, 1), (1390, 10, 11, 0, 0, 0)),
        (dt.datetime(2012, 1, 1, 10, 10, 10), (1390, 10, 11, 10, 10, 10)),  # naive: Tehran
        (dt.datetime(2012, 1, 1, 6, 40, 10, tzinfo=dt.UTC), (1390, 10, 11, 10, 10, 10)),
    ],
)
def test_good_since(since: object, expected: tuple[int, ...]) -> None:
    body = json.loads(ops.cts_terminologies(since).request.body)
    names = ("yearField", "monthField", "dayField", "hourField", "minuteField", "secondField")
    assert tuple(body["FromDate"][name] for name in names) == expected
    assert to_jalali(since) == JalaliDateTime(*expected)


def test_to_jalali_can_name_another_field() -> None:
    _raises(lambda: to_jalali("nonsense", field="until"), "until")
    _raises(lambda: to_jalali(dt.date(1, 1, 1), field="until"), "until")


def test_nothing_is_built_when_a_check_fails() -> None:
    # the builder raises before returning a Call: there is nothing that could be sent
    with pytest.raises(InvalidInputError):
        ops.terminology_versions("")
    with pytest.raises(InvalidInputError) as caught:
        ops.search_terminology("", "nonsense")
    assert caught.value.field == "terminology_id"  # the first bad argument is named


def test_a_coded_text_subclass_is_sent_with_the_wire_names() -> None:
    import attrs

    @attrs.frozen
    class Tagged(CodedText):
        pass

    body = ops.validate_cts(Tagged("Alpha", "Edge", "A")).request.body
    assert b'"valueField":"Alpha"' in body and b'"coded_stringField":"A"' in body
