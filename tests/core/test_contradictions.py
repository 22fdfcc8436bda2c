"""The six places where the guide contradicts itself (MAXA_API.md), each pinned to our reading."""

from __future__ import annotations

import json
from typing import Any

import pytest

from maxa_async import operations as ops
from maxa_async.errors import InvalidInputError, ProtocolError
from maxa_async.jalali import JalaliDateTime
from maxa_async.models import CodedText
from maxa_async.oauth import parse_token_response

from . import _samples as s

SINCE = JalaliDateTime(1390, 10, 10, 10, 10, 10)
HEADERS = {"requestId": "req-c"}


def body_of(call: ops.Call[Any]) -> Any:
    return json.loads(call.request.body)


# 1. SearchTerminology: the "success" sample shows a string, the "failure" one the array.


def test_1_search_terminology_success_is_the_array() -> None:
    call = ops.search_terminology("ContactType", SINCE)
    # the sample the guide labels "failure" is the real success: 14 ContactType terms
    terms = call.parse(200, HEADERS, s.raw("search_terminology.response"))
    assert len(terms) == 14
    assert all(isinstance(t, CodedText) and t.terminology_id == "ContactType" for t in terms)


def test_1_search_terminology_labelled_success_string_is_not_a_result() -> None:
    call = ops.search_terminology("ContactType", SINCE)
    assert s.load("search_terminology.labelled_success")["result"]["data"] == '"اسلام"'
    with pytest.raises(ProtocolError) as caught:
        call.parse(200, HEADERS, s.raw("search_terminology.labelled_success"))
    assert caught.value.operation == "SearchTerminology"
    assert caught.value.request_id == "req-c"
    assert "array" in str(caught.value)


# 2. TerminologyVersions: the table says terminology_idField, the sample terminologyId.


def test_2_terminology_versions_sends_terminologyId() -> None:
    body = body_of(ops.terminology_versions("ErX"))
    assert body == {"terminologyId": "ErX"} == s.load("terminology_versions.request")
    assert "terminology_idField" not in body


# 3. Terminology's curl sample says .../gw/maksa/..., everything else .../gwmaksa/...


def test_3_every_path_uses_gwmaksa() -> None:
    calls = [
        ops.terminology("thritaEHR.Religion", "1"),
        ops.search_terminology("ContactType", SINCE),
        ops.validate_cts(CodedText("پست الکترونیکی شخصی", "ContactType", "6")),
        ops.cts_terminologies(SINCE),
        ops.terminology_value_by_version("ERX", "60002", "1000"),
        ops.terminologies_term_by_version("erX", "10000"),
        ops.terminology_versions("ErX"),
    ]
    for call in calls:
        path = call.request.path
        assert path == f"/api/client/apim/v1/maksaservice/gwmaksa/{call.request.operation}"
        assert "/gw/maksa/" not in path


def test_3_the_gw_maksa_curl_path_differs_from_ours_only_there() -> None:
    printed = s.parse_curl("terminology.request.curl.txt")
    ours = ops.terminology("thritaEHR.Religion", "1").request.path
    assert printed.path == "/api/client/apim/v1/maksaservice/gw/maksa/Terminology"
    assert printed.path.replace("/gw/maksa/", "/gwmaksa/") == ours
    assert s.parse_format_block("terminology.request.format.txt").path == ours


# 4. Terminology ids: case varies, one has a leading space, one is corrupted.


@pytest.mark.parametrize("spelling", ["ERX", "erX", "ErX", "eRX", "eRx"])
def test_4_id_case_is_sent_as_given(spelling: str) -> None:
    # the service matches ids without regard to case: we neither refuse nor rewrite any
    assert body_of(ops.terminology_versions(spelling))["terminologyId"] == spelling
    assert body_of(ops.terminology(spelling, "60002"))["terminologyId"] == spelling
    assert body_of(ops.search_terminology(spelling, SINCE))["TerminologyId"] == spelling
    validate = body_of(ops.validate_cts(CodedText("x", spelling, "1")))
    assert validate["DoCodedText"]["terminology_idField"] == spelling


@pytest.mark.parametrize(
    "spaced", [" thritaEHR.Religion", "thritaEHR.Religion  ", "\tthritaEHR.Religion\n"]
)
def test_4_surrounding_white_space_is_stripped(spaced: str) -> None:
    assert body_of(ops.terminology(spaced, "1")) == {
        "terminologyId": "thritaEHR.Religion",
        "codedString": "1",
    }
    assert s.load("terminology.request")["terminologyId"] == " thritaEHR.Religion"


def _id_builders() -> list[tuple[str, Any]]:
    return [
        ("terminology_id", lambda tid: ops.terminology(tid, "1")),
        ("terminology_id", lambda tid: ops.search_terminology(tid, SINCE)),
        ("terminology_id", lambda tid: ops.terminology_value_by_version(tid, "1", "1")),
        ("terminology_id", lambda tid: ops.terminologies_term_by_version(tid, "1")),
        ("terminology_id", lambda tid: ops.terminology_versions(tid)),
        ("coded_text.terminology_id", lambda tid: ops.validate_cts(CodedText("v", tid, "1"))),
    ]


@pytest.mark.parametrize(("field", "build"), _id_builders())
def test_4_the_corrupted_devanagari_id_is_refused(field: str, build: Any) -> None:
    corrupted = s.load("terminology.request.format")["terminologyId"]
    assert corrupted == "thrिताEHR.Religion"
    with pytest.raises(InvalidInputError) as caught:
        build(corrupted)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert "ASCII" in str(caught.value)


# 5. expires_in typed string but sent as a number; camelCase in one table.


@pytest.mark.parametrize("expires_in", [763, 763.0, "763", " 763 "])
def test_5_expires_in_as_number_or_string(expires_in: object) -> None:
    payload = dict(s.load("token.password.response"), expires_in=expires_in)
    token = parse_token_response(200, {}, json.dumps(payload).encode(), now=10.0)
    assert token.lifetime == 763.0
    assert token.expires_at == 773.0


@pytest.mark.parametrize("expires_in", [899, "899"])
def test_5_camel_case_token_fields(expires_in: object) -> None:
    snake = s.load("token.refresh.response")
    camel = {
        "accessToken": snake["access_token"],
        "tokenType": snake["token_type"],
        "refreshToken": snake["refresh_token"],
        "expiresIn": expires_in,
        "scope": snake["scope"],
    }
    from_camel = parse_token_response(200, {}, json.dumps(camel).encode(), now=0.0)
    from_snake = parse_token_response(200, {}, s.raw("token.refresh.response"), now=0.0)
    assert from_camel == from_snake
    assert from_camel.lifetime == 899.0
    assert from_camel.refresh_token == "f998a112-b166-4177-8e2e-c2d89fedb352"


# 6. Booleans as strings and values JSON-encoded in strings; plain JSON accepted too.


@pytest.mark.parametrize(
    ("data", "expected"),
    [("true", True), ("false", False), (True, True), (False, False), (" TRUE ", True)],
)
def test_6_validate_cts_booleans(data: object, expected: bool) -> None:
    call = ops.validate_cts(CodedText("پست الکترونیکی شخصی", "ContactType", "6"))
    assert call.parse(200, HEADERS, s.envelope(data)) is expected


@pytest.mark.parametrize("data", ['"اسلام"', "اسلام"])
def test_6_values_json_in_a_string_or_plain(data: str) -> None:
    assert (
        ops.terminology("thritaEHR.Religion", "1").parse(200, HEADERS, s.envelope(data)) == "اسلام"
    )


def test_6_arrays_json_in_a_string_or_plain() -> None:
    call = ops.cts_terminologies(SINCE)
    plain = ["ICD10", "eRX"]
    assert call.parse(200, HEADERS, s.envelope(plain)) == plain
    assert call.parse(200, HEADERS, s.envelope(json.dumps(plain))) == plain


@pytest.mark.parametrize("data", ["yes", "1", 1, "[true]", None])
def test_6_anything_else_is_not_a_boolean(data: object) -> None:
    call = ops.validate_cts(CodedText("v", "ContactType", "6"))
    body = s.envelope(data) if data is not None else s.envelope(None, inner=200)
    with pytest.raises(ProtocolError):
        call.parse(200, HEADERS, body)
