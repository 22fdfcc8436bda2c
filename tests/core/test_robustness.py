"""Whatever the gateway sends, the parsers answer with a typed result or a MaxaError.

Arbitrary bytes, arbitrary JSON, and near-valid bodies (the guide's real samples with
one or more parts deleted, replaced or retyped) go through the envelope parser, every
operation's ``Call.parse`` and the token parser. A KeyError, TypeError, AttributeError,
RecursionError ... escaping any of them is a bug in the module, not in the test.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from maxa_async import operations as ops
from maxa_async.envelope import parse_envelope, parse_retry_after
from maxa_async.errors import MaxaError, ProtocolError
from maxa_async.jalali import JalaliDateTime
from maxa_async.models import CodedText, TerminologyVersion, Token
from maxa_async.oauth import parse_token_response

from . import _samples as s

#: MAXA_FUZZ_EXAMPLES=20000 for a long hunt; the default keeps the suite fast
FUZZ = settings(
    max_examples=int(os.environ.get("MAXA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SINCE = JalaliDateTime(1390, 10, 10)

#: every operation's call, and what a successful parse must return
CALLS: dict[str, tuple[ops.Call[Any], Callable[[Any], bool]]] = {
    "Terminology": (ops.terminology("thritaEHR.Religion", "1"), lambda r: isinstance(r, str)),
    "SearchTerminology": (
        ops.search_terminology("ContactType", SINCE),
        lambda r: isinstance(r, list) and all(isinstance(x, CodedText) for x in r),
    ),
    "ValidateCts": (
        ops.validate_cts(CodedText("v", "ContactType", "6")),
        lambda r: isinstance(r, bool),
    ),
    "CtsTerminologies": (
        ops.cts_terminologies(SINCE),
        lambda r: isinstance(r, list) and all(isinstance(x, str) for x in r),
    ),
    "TerminologyValueByVersion": (
        ops.terminology_value_by_version("ERX", "60002", "1000"),
        lambda r: isinstance(r, str),
    ),
    "TerminologiesTermByVersion": (
        ops.terminologies_term_by_version("erX", "10000"),
        lambda r: isinstance(r, list) and all(isinstance(x, CodedText) for x in r),
    ),
    "TerminologyVersions": (
        ops.terminology_versions("ErX"),
        lambda r: isinstance(r, list) and all(isinstance(x, TerminologyVersion) for x in r),
    ),
}

RESPONSE_SAMPLES = [
    "terminology.response",
    "terminology.not_found",
    "search_terminology.response",
    "search_terminology.labelled_success",
    "validate_cts.response",
    "validate_cts.not_found",
    "cts_terminologies.response",
    "cts_terminologies.not_found",
    "terminology_value_by_version.response",
    "terminology_value_by_version.failure",
    "terminologies_term_by_version.response",
    "terminologies_term_by_version.not_found",
    "terminology_versions.response",
    "terminology_versions.not_found",
]
TOKEN_SAMPLES = ["token.password.response", "token.refresh.response", "token.failure"]

statuses = st.one_of(
    st.sampled_from(
        [200, 202, 400, 401, 403, 404, 410, 418, 429, 499, 500, 502, 503, 504, 520, 599]
    ),
    st.integers(100, 599),
)
header_values = st.text(max_size=20)
headers = st.dictionaries(
    st.sampled_from(["requestId", "Retry-After", "retry-after", "Content-Type", "x"]),
    header_values,
    max_size=4,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["true", "false", "200", "404", "²", '"اسلام"', "[]", "[1]", "{}", "null"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=12), children, max_size=5),
    ),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]


_DELETE = object()


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    if not rest:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != head}
        return [v for i, v in enumerate(value) if i != head]
    if isinstance(value, dict):
        return {k: (_delete(v, rest) if k == head else v) for k, v in value.items()}
    return [(_delete(v, rest) if i == head else v) for i, v in enumerate(value)]


@st.composite
def mutated(draw: st.DrawFn, samples: list[str]) -> Any:
    """A real sample with 1-3 parts deleted, replaced by any JSON, or JSON-encoded."""
    value = s.load(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(value)))
        action = draw(st.sampled_from(["delete", "replace", "encode", "wrap"]))
        if action == "delete" and path:
            value = _delete(value, path)
        elif action == "encode":
            node = value
            for key in path:
                node = node[key]
            value = _replace(value, path, json.dumps(node, ensure_ascii=False))
        elif action == "wrap":
            node = value
            for key in path:
                node = node[key]
            value = _replace(value, path, [node])
        else:
            value = _replace(value, path, draw(json_values))
    return value


def _encode(value: Any, draw: st.DrawFn) -> bytes:
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    body = text.encode("utf-8")
    cut = draw(st.one_of(st.none(), st.integers(0, len(body))))
    return body if cut is None else body[:cut]


def _only_maxa_errors(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except MaxaError as exc:
        assert exc.message  # every error says something
        return exc


def _check_every_operation(status: int, hdrs: dict[str, str], body: bytes) -> None:
    _only_maxa_errors(lambda: parse_envelope(status, hdrs, body, operation="X"))
    for call, is_typed in CALLS.values():
        result = _only_maxa_errors(lambda call=call: call.parse(status, hdrs, body))  # type: ignore[misc]
        assert isinstance(result, MaxaError) or is_typed(result)


# --------------------------------------------------------------------------- envelopes


@FUZZ
@given(statuses, headers, st.binary(max_size=300))
@example(200, {}, b"[" * 100_000)
@example(200, {}, b'{"a":\n' + b"[" * 100_000)
@example(200, {}, b"\xff\xfe")
@example(200, {}, b'{"status": {"statusCode": "\xc2\xb2"}, "result": {"data": 1}}')
def test_arbitrary_bytes(status: int, hdrs: dict[str, str], body: bytes) -> None:
    _check_every_operation(status, hdrs, body)


@FUZZ
@given(statuses, headers, json_values)
def test_arbitrary_json(status: int, hdrs: dict[str, str], value: Any) -> None:
    _check_every_operation(status, hdrs, json.dumps(value).encode())


@FUZZ
@given(statuses, headers, st.data())
def test_near_valid_envelopes(status: int, hdrs: dict[str, str], data: st.DataObject) -> None:
    value = data.draw(mutated(RESPONSE_SAMPLES))
    _check_every_operation(status, hdrs, _encode(value, data.draw))


@FUZZ
@given(json_values)
def test_arbitrary_data_inside_a_good_envelope(value: Any) -> None:
    """The converter's side: any ``result.data`` -> a typed result or a ProtocolError."""
    body = s.envelope(value) if value is not None else s.envelope("x")
    for call, is_typed in CALLS.values():
        try:
            result = call.parse(200, {"requestId": "r"}, body)
        except ProtocolError as exc:
            assert exc.operation == call.request.operation
            assert exc.request_id == "r"
        else:
            assert is_typed(result)


@FUZZ
@given(
    st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "valueField": scalars,
                    "terminology_idField": scalars,
                    "coded_stringField": scalars,
                    "id": scalars,
                    "TerminologyId": scalars,
                    "Version": scalars,
                    "VersionId": scalars,
                    "IsLast": scalars,
                },
            ),
        ),
        max_size=4,
    )
)
def test_lists_of_almost_models(items: list[Any]) -> None:
    for name in ("TerminologiesTermByVersion", "TerminologyVersions", "SearchTerminology"):
        call, is_typed = CALLS[name]
        try:
            result = call.parse(200, {}, s.envelope(items))
        except ProtocolError as exc:
            assert "unexpected result data" in exc.message
        else:
            assert is_typed(result) and len(result) == len(items)


@FUZZ
@given(headers)
def test_retry_after_never_crashes(hdrs: dict[str, str]) -> None:
    seconds = parse_retry_after(hdrs)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


# --------------------------------------------------------------------------- tokens


def _check_token(status: int, hdrs: dict[str, str], body: bytes) -> None:
    result = _only_maxa_errors(lambda: parse_token_response(status, hdrs, body, now=1000.0))
    if isinstance(result, Token):
        assert isinstance(result.access_token, str) and result.access_token
        assert math.isfinite(result.lifetime) and result.lifetime > 0
        assert result.expires_at == 1000.0 + result.lifetime
        assert result.refresh_token is None or isinstance(result.refresh_token, str)
        assert result.scope is None or isinstance(result.scope, str)
        assert isinstance(result.token_type, str)
    else:
        assert result.operation == "token"


@FUZZ
@given(statuses, headers, st.binary(max_size=200))
def test_token_arbitrary_bytes(status: int, hdrs: dict[str, str], body: bytes) -> None:
    _check_token(status, hdrs, body)


@FUZZ
@given(statuses, headers, json_values)
@example(200, {}, {"access_token": "a", "expires_in": 10**400})
@example(200, {}, {"access_token": "a", "expires_in": "1e999"})
@example(500, {}, {"code": 10**400})
def test_token_arbitrary_json(status: int, hdrs: dict[str, str], value: Any) -> None:
    _check_token(status, hdrs, json.dumps(value).encode())


@FUZZ
@given(statuses, headers, st.data())
def test_token_near_valid(status: int, hdrs: dict[str, str], data: st.DataObject) -> None:
    value = data.draw(mutated(TOKEN_SAMPLES))
    if data.draw(st.booleans()) and isinstance(value, dict):  # the camelCase table's spelling
        camel = {
            "access_token": "accessToken",
            "refresh_token": "refreshToken",
            "expires_in": "expiresIn",
            "token_type": "tokenType",
        }
        value = {camel.get(k, k): v for k, v in value.items()}
    _check_token(status, hdrs, _encode(value, data.draw))


def test_huge_expires_in_is_a_protocol_error() -> None:
    # float(10**400) raises OverflowError: it used to escape the parser
    body = b'{"access_token": "a", "expires_in": 1' + b"0" * 400 + b"}"
    with pytest.raises(ProtocolError, match="expires_in"):
        parse_token_response(200, {}, body, now=0.0)
