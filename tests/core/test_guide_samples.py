"""Every sample of the guide, checked literally against our builders and parsers.

Requests: the body our builder produces equals the guide's body as JSON (same keys, same
order, same values), and method, path and headers match the printed request. Responses:
our parsers read each sample to the typed value the guide means. The places where the
guide contradicts itself are pinned in test_contradictions.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest

from maxa_async import operations as ops
from maxa_async.envelope import parse_envelope
from maxa_async.errors import AuthenticationError, MaxaError, NotFoundError, ProtocolError
from maxa_async.jalali import JalaliDateTime
from maxa_async.models import CodedText, Credentials, TerminologyVersion, Token
from maxa_async.oauth import TOKEN_PATH, parse_token_response, password_grant, refresh_grant

from . import _samples as s

HEADERS = {"requestId": "req-guide-1"}

CONTACT_TYPES = {
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

CTS_TERMINOLOGIES = [
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
]


def _from_date(wire: dict[str, Any]) -> JalaliDateTime:
    return JalaliDateTime(
        wire["yearField"],
        wire["monthField"],
        wire["dayField"],
        wire["hourField"],
        wire["minuteField"],
        wire["secondField"],
    )


def build_from_sample(operation: str, body: dict[str, Any]) -> ops.Call[Any]:
    """Call our builder with the values the guide's sample body carries."""
    if operation == "terminology":
        return ops.terminology(body["terminologyId"], body["codedString"])
    if operation == "search_terminology":
        return ops.search_terminology(body["TerminologyId"], _from_date(body["FromDate"]))
    if operation == "validate_cts":
        cts = body["DoCodedText"]
        return ops.validate_cts(
            CodedText(
                value=cts["valueField"],
                terminology_id=cts["terminology_idField"],
                coded_string=cts["coded_stringField"],
            )
        )
    if operation == "cts_terminologies":
        return ops.cts_terminologies(_from_date(body["FromDate"]))
    if operation == "terminology_value_by_version":
        return ops.terminology_value_by_version(
            body["terminologyId"], body["codedString"], body["version"]
        )
    if operation == "terminologies_term_by_version":
        return ops.terminologies_term_by_version(body["terminologyId"], body["version"])
    assert operation == "terminology_versions"
    return ops.terminology_versions(body["terminologyId"])


def sent_body(call: ops.Call[Any]) -> Any:
    return json.loads(call.request.body)


# --------------------------------------------------------------------------- the files


def test_every_guide_sample_has_a_file() -> None:
    names = {p.name for p in s.SAMPLES.iterdir()}
    for op in s.OPERATIONS:
        for suffix in ("request.json", "request.curl.txt", "request.format.txt"):
            assert f"{op}.{suffix}" in names
        assert f"{op}.response.json" in names
        if op != "search_terminology":  # its failure-labelled sample is the array (.response)
            assert {f"{op}.not_found.json", f"{op}.failure.json"} & names, op
    for name in (
        "token.password.request.txt",
        "token.password.request.format.txt",
        "token.password.response.json",
        "token.failure.json",
        "token.refresh.request.txt",
        "token.refresh.request.format.txt",
        "token.refresh.response.json",
        "token.refresh.failure.json",
        "search_terminology.labelled_success.json",
        "envelope.format.txt",
    ):
        assert name in names


@pytest.mark.parametrize("name", sorted(s.REPAIRS))
def test_repaired_samples_differ_from_the_guide_only_by_the_listed_edits(name: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(s.text(f"{name}.txt"))  # as printed, the guide's sample is not JSON
    assert json.loads(s.repair(name)) == s.load(name)
    assert s.text(f"{name}.json") == s.repair(name).rstrip("\n") + "\n"


def test_verbatim_samples_keep_the_guides_persian_text() -> None:
    assert "اسلام" in s.text("terminology.response.txt")
    assert "thrिताEHR.Religion" in s.text("terminology.request.format.txt")
    assert s.load("validate_cts.request")["DoCodedText"]["valueField"] == "پست الکترونیکی شخصی"


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("operation", s.OPERATIONS)
def test_request_bodies_equal_the_guides_curl_samples(operation: str) -> None:
    guide = s.load(f"{operation}.request")
    assert s.parse_curl(f"{operation}.request.curl.txt").body == guide
    call = build_from_sample(operation, guide)
    expected = dict(guide)
    if operation == "terminology":
        # the one curl sample with a leading space in the id: we strip it (contradiction 4)
        assert guide["terminologyId"] == " thritaEHR.Religion"
        expected["terminologyId"] = "thritaEHR.Religion"
    assert sent_body(call) == expected
    assert s.key_shape(sent_body(call)) == s.key_shape(expected)


@pytest.mark.parametrize("operation", [op for op in s.OPERATIONS if op != "terminology"])
def test_request_bodies_equal_the_guides_format_blocks(operation: str) -> None:
    printed = s.parse_format_block(f"{operation}.request.format.txt")
    assert printed.body == s.load(f"{operation}.request.format")
    call = build_from_sample(operation, printed.body)
    assert sent_body(call) == printed.body
    assert s.key_shape(sent_body(call)) == s.key_shape(printed.body)


@pytest.mark.parametrize("operation", s.OPERATIONS)
def test_method_and_path_equal_the_guides_format_blocks(operation: str) -> None:
    printed = s.parse_format_block(f"{operation}.request.format.txt")
    call = build_from_sample(operation, s.load(f"{operation}.request"))
    assert call.request.operation == s.WIRE_NAMES[operation]
    assert call.request.method == printed.method
    assert call.request.path == printed.path
    curl = s.parse_curl(f"{operation}.request.curl.txt")
    assert call.request.method == curl.method
    if operation != "terminology":  # its curl sample says gw/maksa (contradiction 3)
        assert call.request.path == curl.path


def test_terminology_is_a_get_with_a_json_body() -> None:
    call = ops.terminology("thritaEHR.Religion", "1")
    assert call.request.method == "GET"
    assert json.loads(call.request.body) == {
        "terminologyId": "thritaEHR.Religion",
        "codedString": "1",
    }


@pytest.mark.parametrize("operation", s.OPERATIONS)
def test_request_headers_are_the_guides(operation: str) -> None:
    printed = s.parse_format_block(f"{operation}.request.format.txt")
    ours = {k.lower(): v for k, v in ops.request_headers("TOKEN-1", "PID-9").items()}
    wanted = {k.lower(): v for k, v in printed.headers.items() if k.lower() != "host"}
    assert set(wanted) <= set(ours)
    assert wanted["content-type"] == ours["content-type"] == "application/json"
    assert wanted["pid"] == "{Your Pid}" and ours["pid"] == "PID-9"
    assert wanted["authorization"] == "Bearer {{token}}"
    assert ours["authorization"] == "Bearer TOKEN-1"
    curl = {k.lower(): v for k, v in s.parse_curl(f"{operation}.request.curl.txt").headers.items()}
    assert set(curl) <= set(ours)


# --------------------------------------------------------------------------- responses


def parse(call: ops.Call[Any], name: str, status: int = 200) -> Any:
    return call.parse(status, HEADERS, s.raw(name))


def test_terminology_response() -> None:
    call = ops.terminology("thritaEHR.Religion", "1")
    assert parse(call, "terminology.response") == "اسلام"
    # the envelope's data is the value JSON-encoded inside a string
    assert s.load("terminology.response")["result"]["data"] == '"اسلام"'


def test_terminology_response_as_printed_is_a_protocol_error_not_a_crash() -> None:
    call = ops.terminology("thritaEHR.Religion", "1")
    body = s.text("terminology.response.txt").encode("utf-8")
    with pytest.raises(ProtocolError) as caught:
        call.parse(200, HEADERS, body)
    assert caught.value.status == 200
    assert caught.value.retryable is False
    assert caught.value.request_id == "req-guide-1"


def test_search_terminology_response() -> None:
    call = ops.search_terminology("ContactType", JalaliDateTime(1390, 10, 10, 10, 10, 10))
    terms = parse(call, "search_terminology.response")
    assert len(terms) == 14
    assert all(isinstance(term, CodedText) for term in terms)
    assert terms[0] == CodedText(value="تلفن منزل", terminology_id="ContactType", coded_string="1")
    # order as the guide prints it (codes sorted as strings: 1, 10, 11, ...)
    assert [t.coded_string for t in terms] == sorted(CONTACT_TYPES)
    assert {t.coded_string: t.value for t in terms} == CONTACT_TYPES
    assert {t.terminology_id for t in terms} == {"ContactType"}


def test_validate_cts_response() -> None:
    call = ops.validate_cts(CodedText("پست الکترونیکی شخصی", "ContactType", "6"))
    assert s.load("validate_cts.response")["result"]["data"] == "true"
    assert parse(call, "validate_cts.response") is True


def test_cts_terminologies_response() -> None:
    call = ops.cts_terminologies(JalaliDateTime(1390, 10, 10, 10, 10, 10))
    assert parse(call, "cts_terminologies.response") == CTS_TERMINOLOGIES


def test_terminology_value_by_version_response() -> None:
    call = ops.terminology_value_by_version("ERX", "60002", "1000")
    value = parse(call, "terminology_value_by_version.response")
    assert value == "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"


def test_terminologies_term_by_version_response() -> None:
    call = ops.terminologies_term_by_version("erX", "10000")
    assert parse(call, "terminologies_term_by_version.response") == [
        CodedText(
            value="MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]",
            terminology_id="eRx",
            coded_string="60281",
        )
    ]


def test_terminology_versions_response() -> None:
    call = ops.terminology_versions("ErX")
    assert parse(call, "terminology_versions.response") == [
        TerminologyVersion(
            id=147, terminology_id="eRX", version="10000", version_id=86, is_last=True
        )
    ]


NOT_FOUND_RAISES = (
    "terminology",
    "validate_cts",
    "terminologies_term_by_version",
    "terminology_versions",
)


@pytest.mark.parametrize("operation", NOT_FOUND_RAISES)
def test_not_found_samples_raise_not_found(operation: str) -> None:
    call = build_from_sample(operation, s.load(f"{operation}.request"))
    sample = s.load(f"{operation}.not_found")
    assert sample["status"]["statusCode"] == 200
    assert sample["result"]["status"]["statusCode"] == 404
    assert "data" not in sample["result"]
    with pytest.raises(NotFoundError) as caught:
        parse(call, f"{operation}.not_found")
    error = caught.value
    assert (error.status, error.operation, error.request_id) == (
        404,
        s.WIRE_NAMES[operation],
        "req-guide-1",
    )
    assert error.retryable is False


def test_cts_terminologies_not_found_sample_is_an_empty_list() -> None:
    # "since" queries read the service's inner 404 as "nothing new since then"
    call = ops.cts_terminologies(JalaliDateTime(1390, 10, 10, 10, 10, 10))
    assert parse(call, "cts_terminologies.not_found") == []


def test_search_terminology_inner_404_is_an_empty_list() -> None:
    # the guide prints no 404 sample for SearchTerminology: use CtsTerminologies' shape
    call = ops.search_terminology("ContactType", JalaliDateTime(1390, 10, 10, 10, 10, 10))
    assert parse(call, "cts_terminologies.not_found") == []


@pytest.mark.parametrize("http_status", [200, 401])
def test_value_by_version_failure_sample_is_an_authentication_error(http_status: int) -> None:
    call = ops.terminology_value_by_version("ERX", "60002", "1000")
    assert s.load("terminology_value_by_version.failure") == {
        "status": 0,
        "code": 401,
        "msg": "",
        "violations": [],
    }
    with pytest.raises(AuthenticationError) as caught:
        parse(call, "terminology_value_by_version.failure", status=http_status)
    assert caught.value.status == 401
    assert caught.value.operation == "TerminologyValueByVersion"
    assert caught.value.request_id == "req-guide-1"


def test_appendix_envelope_format() -> None:
    template = s.text("envelope.format.txt")
    with pytest.raises(json.JSONDecodeError):
        json.loads(template)
    filled = template.replace("{obj}", '{"x": 1}').replace("XXX", "200")
    assert parse_envelope(200, HEADERS, filled.encode()) == {"x": 1}
    inner_404 = template.replace("{obj}", "null").replace("XXX", "404", 1).replace("XXX", "200")
    with pytest.raises(NotFoundError):
        parse_envelope(200, HEADERS, inner_404.encode())


# --------------------------------------------------------------------------- tokens

SAMPLE_CREDENTIALS = Credentials(
    client_id="client-id",
    client_secret="client-secret",
    username="yourusername",
    password="yourpassw",  # the guide's sample cuts the password short
    pid="pid-1",
)


def _printed_token_request(name: str) -> tuple[str, str, dict[str, str], str]:
    lines = s.text(name).rstrip("\n").split("\n")
    method, path = lines[0].split()[:2]
    headers = dict(line.split(": ", 1) for line in lines[1:-1])
    return method, path, headers, lines[-1]


def test_password_grant_equals_the_guides_sample() -> None:
    method, path, headers, body = _printed_token_request("token.password.request.txt")
    request = password_grant(SAMPLE_CREDENTIALS)
    assert (request.method, request.path) == (method, path) == ("POST", TOKEN_PATH)
    assert request.body.decode("ascii") == body
    assert headers["Authorization"] == "*****="  # the guide hides it; the format block says Basic
    expected_basic = base64.b64encode(b"client-id:client-secret").decode()
    assert request.headers["Authorization"] == f"Basic {expected_basic}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_password_grant_matches_the_guides_format_block() -> None:
    method, path, headers, body = _printed_token_request("token.password.request.format.txt")
    creds = Credentials(
        client_id="c", client_secret="s", username="yourusername", password="yourpassword", pid="p"
    )
    request = password_grant(creds)
    assert (request.method, request.path) == (method, path)
    assert parse_qsl(request.body.decode()) == parse_qsl(body)
    assert headers["Authorization"] == "Basic {authorizationCode}"
    assert request.headers["Authorization"].startswith("Basic ")


def test_refresh_grant_equals_the_guides_sample() -> None:
    method, path, _, body = _printed_token_request("token.refresh.request.txt")
    request = refresh_grant(SAMPLE_CREDENTIALS, "f998a112-b166-4177-8e2e-c2d89fedb352")
    assert (request.method, request.path) == (method, path)
    assert request.body.decode("ascii") == body
    _, _, _, template = _printed_token_request("token.refresh.request.format.txt")
    assert [k for k, _ in parse_qsl(request.body.decode())] == [k for k, _ in parse_qsl(template)]


@pytest.mark.parametrize(
    ("name", "access", "refresh", "lifetime"),
    [
        (
            "token.password.response",
            "c8abceda-aa31-4a7e-95c0-213e5709e6b6",
            "84dc3bf1-7342-4c5e-adc3-c2304583ae02",
            763.0,
        ),
        (
            "token.refresh.response",
            "529d80a1-e8af-44b2-9dac-565cff4258f1",
            "f998a112-b166-4177-8e2e-c2d89fedb352",
            899.0,
        ),
    ],
)
def test_token_responses(name: str, access: str, refresh: str, lifetime: float) -> None:
    token = parse_token_response(200, HEADERS, s.raw(name), now=1_000.0)
    assert token == Token(
        access_token=access,
        refresh_token=refresh,
        token_type="bearer",
        scope="trust read write",
        expires_at=1_000.0 + lifetime,
        lifetime=lifetime,
    )
    assert token.remaining(now=1_000.0) == lifetime


@pytest.mark.parametrize("name", ["token.failure", "token.refresh.failure"])
@pytest.mark.parametrize("http_status", [400, 401])
def test_token_failure_samples_are_authentication_errors(name: str, http_status: int) -> None:
    assert s.load(name) == {"error": "invalid_grant", "error_description": "Bad credentials"}
    with pytest.raises(AuthenticationError) as caught:
        parse_token_response(http_status, HEADERS, s.raw(name), now=0.0)
    error = caught.value
    assert isinstance(error, MaxaError)
    assert "invalid_grant" in str(error) and "Bad credentials" in str(error)
    assert (error.status, error.operation, error.request_id) == (
        http_status,
        "token",
        "req-guide-1",
    )
    assert error.retryable is False
