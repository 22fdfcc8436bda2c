"""Fuzzing the three parsers a gateway's bytes go through: only MaxaError escapes, nothing hangs.

``tests/core/test_robustness.py`` throws random bytes, random JSON and randomly mutated
samples (1-3 edits) at the parsers. This module adds what random sampling rarely hits:

* every position of every real shape (the guide's samples, the fake gateway's literal
  bodies, the token answers) replaced, in turn, by every value of a poison catalogue:
  wrong types, huge and non-finite numbers (``1e999``, ``NaN``, 5,000-digit integers),
  raw control characters, invalid UTF-8, lone surrogates, nesting past every recursion
  limit, a megabyte of text; and every key deleted in turn;
* byte-level mutation of the real bodies (insert, delete, replace with JSON's
  structural bytes, control bytes and bytes that are never UTF-8);
* token answers built from both spellings of every field with poisoned values;
* error messages stay short whatever was in the body, and each parse returns fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxa_async import operations as ops
from maxa_async.envelope import parse_envelope
from maxa_async.errors import MaxaError, ProtocolError
from maxa_async.jalali import JalaliDateTime
from maxa_async.models import CodedText, TerminologyVersion, Token
from maxa_async.oauth import parse_token_response
from maxa_async.testing import _wire as fake_wire

SAMPLES = Path(__file__).resolve().parents[1] / "samples"

#: A parse of a body below 2 MB that takes longer than this is a hang.
PARSE_BUDGET_S: Final = 5.0
#: Error messages quote bodies only in short snippets.
MAX_MESSAGE: Final = 2_000

FUZZ = settings(
    max_examples=250,
    deadline=2_000,  # ms per example: generous for a loaded 2-core box, catches a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SINCE = JalaliDateTime(1390, 10, 10)

CALLS: dict[str, tuple[ops.Call[Any], Callable[[Any], bool]]] = {
    "terminology": (ops.terminology("thritaEHR.Religion", "1"), lambda r: isinstance(r, str)),
    "search_terminology": (
        ops.search_terminology("ContactType", SINCE),
        lambda r: isinstance(r, list) and all(type(x) is CodedText for x in r),
    ),
    "validate_cts": (
        ops.validate_cts(CodedText("v", "ContactType", "6")),
        lambda r: isinstance(r, bool),
    ),
    "cts_terminologies": (
        ops.cts_terminologies(SINCE),
        lambda r: isinstance(r, list) and all(isinstance(x, str) for x in r),
    ),
    "terminology_value_by_version": (
        ops.terminology_value_by_version("ERX", "60002", "1000"),
        lambda r: isinstance(r, str),
    ),
    "terminologies_term_by_version": (
        ops.terminologies_term_by_version("erX", "10000"),
        lambda r: isinstance(r, list) and all(type(x) is CodedText for x in r),
    ),
    "terminology_versions": (
        ops.terminology_versions("ErX"),
        lambda r: isinstance(r, list) and all(type(x) is TerminologyVersion for x in r),
    ),
}


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


#: Real response shapes, by the operation whose parser reads them.
RESPONSE_SHAPES: dict[str, list[Any]] = {
    op: [
        _sample(f"{op}.{kind}")
        for kind in ("response", "not_found", "failure", "labelled_success")
        if (SAMPLES / f"{op}.{kind}.json").exists()
    ]
    for op in CALLS
}
#: The fake gateway's literal bodies (written from the guide, not from the client).
FAKE_BODIES: list[bytes] = [
    fake_wire.TRUE,
    fake_wire.FALSE,
    fake_wire.NOT_FOUND,
    fake_wire.UNAUTHORIZED,
    fake_wire.BAD_REQUEST,
    fake_wire.BLOCKED,
    fake_wire.RATE_LIMITED,
    fake_wire.HTML_502,
    fake_wire.ok(b'"\\"\\u0627\\u0633\\u0644\\u0627\\u0645\\""'),
    fake_wire.ok(
        b'[{"id":200,"TerminologyId":"ContactType","Version":"1","VersionId":100,"IsLast":true}]'
    ),
    fake_wire.gateway_error(503),
]
TOKEN_SHAPES: list[Any] = [
    _sample("token.password.response"),
    _sample("token.refresh.response"),
    _sample("token.failure"),
    _sample("token.refresh.failure"),
    {  # the refresh table's camelCase spelling
        "accessToken": "c8abceda-aa31-4a7e-95c0-213e5709e6b6",
        "tokenType": "bearer",
        "refreshToken": "84dc3bf1-7342-4c5e-adc3-c2304583ae02",
        "expiresIn": "763",
        "scope": "trust read write",
    },
    {"status": 0, "code": 401, "msg": "", "violations": []},
]


# --------------------------------------------------------------------------- encoding


class Raw:
    """A value written into the JSON text verbatim (NaN, raw control bytes, bad UTF-8...)."""

    def __init__(self, text: bytes, name: str) -> None:
        self.text, self.name = text, name

    def __repr__(self) -> str:
        return self.name


def dump(value: Any) -> bytes:
    """JSON bytes, with :class:`Raw` parts written as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        items = (json.dumps(str(k)).encode() + b":" + dump(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(dump(v) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


POISONS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    1.5,
    "",
    " ",
    "true",
    "404",
    "²",
    "٤٠٤",  # Arabic-Indic digits: str.isdigit() says yes
    '"\\"',
    "[1,",
    [],
    {},
    [None],
    [[]],
    {"statusCode": 500},
    {"a": {"b": {"c": []}}},
    "x" * 1_000_000,
    Raw(b"1" + b"0" * 5_000, "int-5000-digits"),
    Raw(b"-" + b"9" * 400, "int-minus-400-digits"),
    Raw(b"1e999", "1e999"),
    Raw(b"-1e999", "-1e999"),
    Raw(b"NaN", "NaN"),
    Raw(b"Infinity", "Infinity"),
    Raw(b"-Infinity", "-Infinity"),
    Raw(b'"a\x00\x01\x1f\x7fb"', "raw-control-chars"),
    Raw(b'"\r\n\t"', "raw-crlf"),
    Raw(b'"\\ud800"', "lone-surrogate"),
    Raw(b'"\xff\xfe"', "invalid-utf8"),
    Raw(b'"\xc3\x28"', "invalid-utf8-pair"),
    Raw(b"[" * 3_000 + b"]" * 3_000, "nested-list-3000"),
    Raw(b'{"a":' * 3_000 + b"1" + b"}" * 3_000, "nested-object-3000"),
    Raw(b"[" * 100_000, "unclosed-100000"),
    Raw(json.dumps(json.dumps([[[["x"]]]])).encode(), "json-in-json"),
]

DELETE = object()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        # a long list: its first two items stand for the rest
        for index, item in enumerate(value[:2]):
            yield from _paths(item, (*prefix, index))


def _put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        if new is DELETE and not rest:
            return {k: v for k, v in value.items() if k != head}
        return {k: (_put(v, rest, new) if k == head else v) for k, v in value.items()}
    if new is DELETE and not rest:
        return [v for i, v in enumerate(value) if i != head]
    return [(_put(v, rest, new) if i == head else v) for i, v in enumerate(value)]


def _mutations(shape: Any) -> Iterator[tuple[str, bytes]]:
    for path in _paths(shape):
        if path:
            yield f"delete {path}", dump(_put(shape, path, DELETE))
        for poison in POISONS:
            label = repr(poison) if len(repr(poison)) < 40 else type(poison).__name__
            yield f"{path} = {label}", dump(_put(shape, path, poison))


# --------------------------------------------------------------------------- checks


def _only_maxa_errors(parse: Callable[[], Any], what: str) -> Any:
    started = time.perf_counter()
    try:
        result: Any = parse()
    except MaxaError as exc:
        result = exc
        assert exc.message, what
        assert len(str(exc)) < MAX_MESSAGE, (what, str(exc)[:200])
        assert len(repr(exc)) < MAX_MESSAGE, what
    elapsed = time.perf_counter() - started
    assert elapsed < PARSE_BUDGET_S, (what, elapsed)
    return result


def _check_operation(op: str, status: int, headers: dict[str, str], body: bytes, what: str) -> None:
    call, is_typed = CALLS[op]
    result = _only_maxa_errors(lambda: call.parse(status, headers, body), what)
    if isinstance(result, MaxaError):
        assert result.operation == call.request.operation, what
    else:
        assert is_typed(result), (what, result)


def _check_token(status: int, headers: dict[str, str], body: bytes, what: str) -> None:
    result = _only_maxa_errors(
        lambda: parse_token_response(status, headers, body, now=1000.0), what
    )
    if isinstance(result, MaxaError):
        assert result.operation == "token", what
        return
    assert type(result) is Token
    assert isinstance(result.access_token, str) and result.access_token
    # it becomes a header: visible ASCII only, or a header injection / a ValueError per call
    assert all("!" <= ch <= "~" for ch in result.access_token), what
    assert result.lifetime > 0 and result.expires_at == 1000.0 + result.lifetime


# --------------------------------------------------------------------------- exhaustive


@pytest.mark.parametrize("op", sorted(CALLS))
def test_every_position_of_every_real_shape_poisoned(op: str) -> None:
    checked = 0
    for shape in RESPONSE_SHAPES[op]:
        for what, body in _mutations(shape):
            for status in (200, 404, 500):
                _check_operation(op, status, {"requestId": "r-1"}, body, what)
            _only_maxa_errors(lambda body=body: parse_envelope(200, {}, body), what)  # type: ignore[misc]
            checked += 1
    assert checked > 100  # the catalogue really went through every shape


def test_every_position_of_the_fake_gateways_bodies_poisoned() -> None:
    checked = 0
    for raw in FAKE_BODIES:
        try:
            shape = json.loads(raw)
        except ValueError:  # the HTML page: byte mutations below cover it
            continue
        for what, body in _mutations(shape):
            for op in CALLS:
                _check_operation(op, 200, {}, body, what)
            checked += 1
    assert checked > 100


def test_every_position_of_every_token_answer_poisoned() -> None:
    checked = 0
    for shape in TOKEN_SHAPES:
        for what, body in _mutations(shape):
            for status in (200, 400, 401, 503):
                _check_token(status, {"requestId": "t-1"}, body, what)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    "body",
    [
        b'{"result": {"data": ' + b"[" * 200_000,
        b'{"result": {"data": ' + b"[" * 900 + b"]" * 900 + b"}}",  # under orjson's limit
        b'{"result": {"data": "' + b"[" * 200_000 + b'"}}',  # nested JSON inside a string
        b'{"result": {"data": "' + b"\\\\" * 100_000 + b'"}}',
        b'{"status": ' + b'{"statusCode": ' * 50_000 + b"200" + b"}" * 50_000 + b"}",
        b"\xef\xbb\xbf" + fake_wire.TRUE,  # a UTF-8 byte order mark
        fake_wire.TRUE.decode().encode("utf-16"),
        fake_wire.TRUE + b"\x00" * 1_000,
        fake_wire.TRUE[:-1] + b',"result": {"data": 5}}',  # duplicate keys: the last wins
        b" " * 1_000_000 + fake_wire.FALSE,
    ],
    ids=[
        "unclosed-200k",
        "nested-900",
        "nested-in-string",
        "backslashes",
        "nested-status",
        "bom",
        "utf16",
        "nul-tail",
        "duplicate-keys",
        "leading-megabyte",
    ],
)
def test_pathological_bodies_end_fast_with_a_typed_answer(body: bytes) -> None:
    for op in CALLS:
        _check_operation(op, 200, {}, body, op)
    _check_token(200, {}, body, "token")


def test_a_bom_or_utf16_body_is_a_protocol_error_not_a_guess() -> None:
    call, _ = CALLS["validate_cts"]
    for body in (b"\xef\xbb\xbf" + fake_wire.TRUE, fake_wire.TRUE.decode().encode("utf-16")):
        with pytest.raises(ProtocolError):
            call.parse(200, {}, body)


def test_non_finite_and_huge_status_codes_never_pass_for_success() -> None:
    call, _ = CALLS["terminology"]
    for code in (b"NaN", b"Infinity", b"1e999", b"200.0", b"1" + b"0" * 30, b'"OK"'):
        body = b'{"result": {"data": "\\"x\\""}, "status": {"statusCode": ' + code + b"}}"
        # an unreadable envelope status defers to the HTTP status, both ways
        assert call.parse(200, {}, body) == "x"
        with pytest.raises(MaxaError):
            call.parse(503, {}, body)
    # past Python's 4,300-digit limit the body is not JSON at all
    body = b'{"result": {"data": "x"}, "status": {"statusCode": 1' + b"0" * 5000 + b"}}"
    with pytest.raises(ProtocolError, match="not JSON"):
        call.parse(200, {}, body)


# --------------------------------------------------------------------------- random mutation

_INTERESTING_BYTES = b'"{}[],:\\\x00\x01\x1f\x7f\x80\xc3\xff0-9eENItrufalsn '


@st.composite
def byte_mutated(draw: st.DrawFn, bodies: list[bytes]) -> bytes:
    body = bytearray(draw(st.sampled_from(bodies)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut", "repeat"]))
        byte = draw(st.sampled_from(list(_INTERESTING_BYTES)))
        if action == "insert":
            body[at:at] = bytes([byte])
        elif action == "delete" and at < len(body):
            del body[at]
        elif action == "replace" and at < len(body):
            body[at] = byte
        elif action == "cut":
            del body[at:]
        elif action == "repeat":
            body[at:at] = body[at : at + draw(st.integers(1, 20))] * draw(st.integers(2, 50))
    return bytes(body)


_RESPONSE_BODIES = [dump(shape) for shapes in RESPONSE_SHAPES.values() for shape in shapes]
_TOKEN_BODIES = [dump(shape) for shape in TOKEN_SHAPES]
_statuses = st.sampled_from([200, 202, 400, 401, 403, 404, 410, 429, 499, 500, 502, 503, 520])
_headers = st.dictionaries(
    st.sampled_from(["requestId", "Retry-After", "retry-after"]),
    st.one_of(
        st.text(max_size=10),
        st.sampled_from(["NaN", "inf", "-1", "1e999", "0", "3", " 2 ", "\x00"]),
    ),
    max_size=3,
)


@FUZZ
@given(_statuses, _headers, byte_mutated(_RESPONSE_BODIES + FAKE_BODIES))
def test_byte_mutated_responses(status: int, headers: dict[str, str], body: bytes) -> None:
    for op in CALLS:
        _check_operation(op, status, headers, body, op)


@FUZZ
@given(_statuses, _headers, byte_mutated(_TOKEN_BODIES))
def test_byte_mutated_token_answers(status: int, headers: dict[str, str], body: bytes) -> None:
    _check_token(status, headers, body, "token")


_poison = st.sampled_from(POISONS)
_token_value = st.one_of(
    _poison,
    st.text(max_size=40),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
)
_TOKEN_KEYS = [
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "expires_in",
    "expiresIn",
    "token_type",
    "tokenType",
    "scope",
    "error",
    "error_description",
    "code",
    "status",
]


@FUZZ
@given(
    _statuses,
    st.dictionaries(st.sampled_from(_TOKEN_KEYS), _token_value, max_size=8),
    st.booleans(),
)
def test_token_answers_with_poisoned_fields(
    status: int, payload: dict[str, Any], keep_good_token: bool
) -> None:
    if keep_good_token:
        payload = {"access_token": "c8abceda", "expires_in": 763, **payload}
    _check_token(status, {}, dump(payload), repr(payload)[:200])


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "valueField": st.one_of(st.text(max_size=5), _poison),
                "terminology_idField": st.one_of(st.just("eRx"), _poison),
                "coded_stringField": st.one_of(st.just("60002"), _poison),
                "id": st.one_of(st.integers(0, 500), _poison),
                "TerminologyId": st.one_of(st.just("eRX"), _poison),
                "Version": st.one_of(st.just("10000"), _poison),
                "VersionId": st.one_of(st.integers(0, 500), _poison),
                "IsLast": st.one_of(st.booleans(), st.sampled_from(["true", "false"]), _poison),
            }
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_converter_with_near_valid_models(items: list[dict[str, Any]], encoded: bool) -> None:
    """Every model field right or poisoned, the list plain or JSON-encoded in a string."""
    data: Any = items
    if encoded:
        data = Raw(json.dumps(dump(items).decode("utf-8", "surrogateescape")).encode(), "enc")
    envelope = {
        "result": {"data": data, "status": {"statusCode": 200}},
        "status": {"statusCode": 200},
    }
    body = dump(envelope)
    for op in ("terminologies_term_by_version", "search_terminology", "terminology_versions"):
        result = _only_maxa_errors(lambda op=op: CALLS[op][0].parse(200, {}, body), op)  # type: ignore[misc]
        if not isinstance(result, MaxaError):
            assert CALLS[op][1](result) and len(result) == len(items)
