"""The hot paths give the same answers as the full readings they short-cut.

``parse_envelope`` answers the canonical success envelope without the full reading
(``read_envelope``); ``check_coded_text`` accepts a clean CodedText without the field-by-
field checks; ``parse_bool`` reads "true"/"false" directly. Each is checked against the
full path over generated inputs around (and away from) the shape it short-cuts.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from maxa_async import operations as ops
from maxa_async.converter import get_converter
from maxa_async.envelope import parse_envelope, read_envelope
from maxa_async.errors import InvalidInputError, MaxaError
from maxa_async.models import CodedText

HEADERS = {"requestId": "r-1", "Retry-After": "2"}
_ABSENT = object()

codes = st.sampled_from([200, 202, 201, 400, 401, 404, 429, 500, 503]) | st.one_of(
    st.just("200"), st.just(" 404 "), st.just(200.0), st.just(True), st.none()
)
data_values = st.one_of(
    st.just(_ABSENT),
    st.none(),
    st.sampled_from(["true", "false", "", "text", '["a"]']),
    st.integers(-2, 2),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2),
)


def status_node(code: Any) -> Any:
    return {"statusCode": code, "message": "m"}


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[int, bytes]:
    http = draw(st.sampled_from([200, 200, 200, 202, 400, 404, 429, 500, 502]))
    shape = draw(st.sampled_from(["canonical", "canonical", "odd"]))
    payload: Any
    if shape == "canonical":
        result: dict[str, Any] = {}
        data = draw(data_values)
        if data is not _ABSENT:
            result["data"] = data
        inner = draw(st.one_of(st.just(_ABSENT), codes.map(status_node), st.just("x")))
        if inner is not _ABSENT:
            result["status"] = inner
        payload = {"result": draw(st.sampled_from([result, result, None, "r", []]))}
        outer = draw(st.one_of(codes.map(status_node), st.just(_ABSENT), st.integers(0, 1)))
        if outer is not _ABSENT:
            payload["status"] = outer
        if draw(st.booleans()):
            payload["code"] = draw(st.sampled_from([401, 429, 200, "401", True]))
    else:
        payload = draw(st.one_of(st.lists(st.integers(-9, 9), max_size=2), st.text(max_size=4)))
    if draw(st.integers(0, 9)) == 0:
        return http, b"<html>" + orjson.dumps(payload)
    return http, orjson.dumps(payload)


def outcome(read: Any) -> tuple[str, Any]:
    try:
        return "ok", read()
    except MaxaError as exc:
        return type(exc).__name__, (str(exc), exc.status, exc.request_id, exc.retryable)


@settings(max_examples=1500, deadline=None)
@given(envelopes())
def test_the_envelope_fast_path_agrees_with_the_full_reading(envelope: tuple[int, bytes]):
    status, body = envelope
    fast = outcome(lambda: parse_envelope(status, HEADERS, body, operation="ValidateCts"))
    full = outcome(lambda: read_envelope(status, HEADERS, body, operation="ValidateCts"))
    assert fast == full


def test_the_guide_sample_takes_the_fast_path_and_reads_true() -> None:
    body = b'{"result":{"data":"true","status":{"statusCode":200}},"status":{"statusCode":200}}'
    assert parse_envelope(200, {}, body) == "true"
    assert read_envelope(200, {}, body) == "true"


texts = st.one_of(
    st.sampled_from(["60002", "eRx", "thritaEHR.Religion", "قرص", "a b", ""]),
    st.text(max_size=12),
    st.builds(
        lambda s, pad: pad + s + pad,
        st.text(min_size=1, max_size=5),
        st.sampled_from([" ", "\n", "\u00a0", "\u200c"]),
    ),
    st.text(min_size=ops.MAX_ID_LENGTH - 1, max_size=ops.MAX_ID_LENGTH + 1, alphabet="ab"),
    st.text(min_size=ops.MAX_CODE_LENGTH - 1, max_size=ops.MAX_CODE_LENGTH + 1, alphabet="7"),
)


def reference(item: CodedText) -> tuple[str, ...]:
    """The field-by-field checks, on their own."""
    return (
        ops.check_text(item.value, "coded_text.value", ops.MAX_VALUE_LENGTH),
        ops.check_terminology_id(item.terminology_id, "coded_text.terminology_id"),
        ops.check_text(item.coded_string, "coded_text.coded_string"),
    )


@settings(max_examples=1500, deadline=None)
@given(texts, texts, texts)
def test_the_coded_text_fast_path_agrees_with_the_field_checks(value, terminology_id, code):
    item = CodedText(value=value, terminology_id=terminology_id, coded_string=code)
    try:
        expected: Any = reference(item)
    except InvalidInputError as exc:
        expected = ("error", exc.field, str(exc))
    try:
        checked = ops.check_coded_text(item)
    except InvalidInputError as exc:
        assert expected == ("error", exc.field, str(exc))
        return
    assert (checked.value, checked.terminology_id, checked.coded_string) == expected
    if checked is not item:  # a copy is made only when something was stripped
        assert (item.value, item.terminology_id, item.coded_string) != expected


def test_values_of_other_types_are_refused_by_name() -> None:
    for item, field in (
        (CodedText(value=1, terminology_id="eRx", coded_string="1"), "coded_text.value"),  # type: ignore[arg-type]
        (
            CodedText(value="v", terminology_id=b"eRx", coded_string="1"),
            "coded_text.terminology_id",
        ),  # type: ignore[arg-type]
        (CodedText(value="v", terminology_id="eRx", coded_string=None), "coded_text.coded_string"),  # type: ignore[arg-type]
    ):
        try:
            ops.check_coded_text(item)
        except InvalidInputError as exc:
            assert exc.field == field
        else:
            raise AssertionError(f"{item!r} was accepted")


@given(
    st.one_of(
        st.sampled_from(["true", "false", " TRUE ", "False", True, False]),
        st.text(max_size=5),
        st.integers(),
    )
)
def test_parse_bool_fast_path_agrees_with_the_general_reading(data: Any) -> None:
    def general(value: Any) -> bool:
        decoded = ops._unwrap(value)
        if isinstance(decoded, bool):
            return decoded
        if isinstance(decoded, str) and decoded.strip().lower() in ("true", "false"):
            return decoded.strip().lower() == "true"
        raise TypeError("not a boolean")

    try:
        expected: Any = general(data)
    except TypeError:
        expected = TypeError
    try:
        got: Any = ops.parse_bool(data)
    except TypeError:
        got = TypeError
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(texts, texts, texts)
def test_the_validate_cts_body_is_the_converters_unstructuring(value, terminology_id, code):
    # The converter is the one statement of the wire names: validate_cts's body is its
    # unstructuring, whatever the text.
    item = CodedText(value=value, terminology_id=terminology_id, coded_string=code)
    try:
        call = ops.validate_cts(item)
    except InvalidInputError:
        return
    checked = ops.check_coded_text(item)
    expected = {"DoCodedText": get_converter().unstructure(checked)}
    assert orjson.loads(call.request.body) == expected
    assert call.request == ops.Request(
        "ValidateCts", "POST", ops.BASE_PATH + "ValidateCts", call.request.body
    )
    assert type(call.request) is ops.Request
