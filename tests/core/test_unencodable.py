"""Characters the wire cannot carry are refused before anything is sent, naming the field.

What is refused in any string argument of any operation (see ``maxa_async.operations``):
lone surrogates (no UTF-8 encoder takes them; orjson raised a bare TypeError), NUL and
the other C0 controls but tab, line feed and carriage return, and the noncharacters
U+FFFE and U+FFFF (XML 1.0, which the service behind the gateway speaks, has none of
them). Everything else goes through as it is. Grants check their form the same way, and
a token answer whose refresh token could not go back in a grant is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maxa_async as maxa
from maxa_async import operations as ops
from maxa_async.errors import InvalidInputError, ProtocolError
from maxa_async.jalali import JalaliDateTime
from maxa_async.oauth import parse_token_response, password_grant, refresh_grant

SINCE: Final = JalaliDateTime(1390, 10, 10)

REFUSED: Final = [
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\x00",
    "\x01",
    "\x08",
    "\x0b",
    "\x0c",
    "\x0e",
    "\x1f",
    "\ufffe",
    "\uffff",
]
#: Inside a code, value or version these go through (at the edges, white space is
#: stripped as always).
ACCEPTED: Final = [
    "\t",
    "\n",
    "\r",
    "\x7f",
    "\x85",
    "\u200c",  # zero-width non-joiner: common in Persian text
    "\u200f",
    "\ufffd",
    "\ufdd0",  # a noncharacter XML 1.0 does allow
    "\U0001f600",
    "\U0001fffe",
    "\U0010ffff",
]

Build = Callable[[str], ops.Call[Any]]

#: Every string argument of every operation: (its field, a builder taking it, the wire
#: key it goes to). The other arguments are the guide's own samples.
ARGUMENTS: Final[list[tuple[str, Build, tuple[str, ...]]]] = [
    ("terminology_id", lambda s: ops.terminology(s, "1"), ("terminologyId",)),
    ("coded_string", lambda s: ops.terminology("thritaEHR.Religion", s), ("codedString",)),
    ("terminology_id", lambda s: ops.search_terminology(s, SINCE), ("TerminologyId",)),
    (
        "coded_text.value",
        lambda s: ops.validate_cts(maxa.CodedText(s, "ContactType", "6")),
        ("DoCodedText", "valueField"),
    ),
    (
        "coded_text.terminology_id",
        lambda s: ops.validate_cts(maxa.CodedText("x", s, "6")),
        ("DoCodedText", "terminology_idField"),
    ),
    (
        "coded_text.coded_string",
        lambda s: ops.validate_cts(maxa.CodedText("x", "ContactType", s)),
        ("DoCodedText", "coded_stringField"),
    ),
    (
        "terminology_id",
        lambda s: ops.terminology_value_by_version(s, "60002", "1000"),
        ("terminologyId",),
    ),
    (
        "coded_string",
        lambda s: ops.terminology_value_by_version("ERX", s, "1000"),
        ("codedString",),
    ),
    (
        "version",
        lambda s: ops.terminology_value_by_version("ERX", "60002", s),
        ("version",),
    ),
    (
        "terminology_id",
        lambda s: ops.terminologies_term_by_version(s, "10000"),
        ("terminologyId",),
    ),
    ("version", lambda s: ops.terminologies_term_by_version("erX", s), ("version",)),
    ("terminology_id", lambda s: ops.terminology_versions(s), ("terminologyId",)),
]
ARGUMENT_IDS: Final = [f"{build('1').request.operation}-{field}" for field, build, _ in ARGUMENTS]


def _sent(call: ops.Call[Any], path: tuple[str, ...]) -> Any:
    value: Any = orjson.loads(call.request.body)
    for key in path:
        value = value[key]
    return value


@pytest.mark.parametrize(("field", "build", "path"), ARGUMENTS, ids=ARGUMENT_IDS)
@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
@pytest.mark.parametrize("where", ["alone", "inside", "last"])
def test_a_refused_character_is_an_invalid_input_naming_the_field(
    field: str, build: Build, path: tuple[str, ...], char: str, where: str
) -> None:
    text = {"alone": char, "inside": f"ab{char}cd", "last": f"60002{char}"}[where]
    if where == "last" and char.isspace():
        # U+000B, U+000C and U+001C-U+001F are white space to str.strip(): stripped at
        # the edges, as any white space is, so nothing unsendable is sent.
        assert _sent(build(text), path) == "60002"
        return
    with pytest.raises(InvalidInputError) as caught:
        build(text)
    assert caught.value.field == field
    if where == "inside" and not field.endswith("terminology_id"):
        # (ids have their own, older rule: printable ASCII only)
        assert f"U+{ord(char):04X}" in str(caught.value)
    str(caught.value).encode("utf-8")  # the message itself can be written anywhere


@pytest.mark.parametrize(
    ("field", "build", "path"),
    [a for a in ARGUMENTS if not a[0].endswith("terminology_id")],
    ids=[i for i in ARGUMENT_IDS if not i.endswith("terminology_id")],
)
@pytest.mark.parametrize("char", ACCEPTED, ids=[f"U+{ord(c):04X}" for c in ACCEPTED])
def test_other_characters_go_through_as_they_are(
    field: str, build: Build, path: tuple[str, ...], char: str
) -> None:
    text = f"ab{char}cd"
    assert _sent(build(text), path) == text


# --------------------------------------------------------------------------- property

_any_char = st.one_of(
    st.characters(),  # hypothesis leaves surrogates out of this one
    st.characters(categories=["Cs", "Cc", "Cn", "Co", "Cf", "Zs", "Zl", "Zp"]),
    st.sampled_from(REFUSED + ACCEPTED),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(ARGUMENTS))), st.text(_any_char, max_size=40))
def test_any_string_is_sent_exactly_or_refused_naming_its_field(index: int, text: str) -> None:
    field, build, path = ARGUMENTS[index]
    try:
        call = build(text)
    except InvalidInputError as exc:
        assert exc.field == field
        return
    # Built: the body is UTF-8 JSON carrying the stripped string, character for character.
    call.request.body.decode("utf-8")
    assert _sent(call, path) == text.strip()
    assert not any(char in text.strip() for char in REFUSED)


# --------------------------------------------------------------------------- grants


@pytest.mark.parametrize("field", ["client_id", "client_secret", "username", "password"])
def test_a_credential_with_a_lone_surrogate_is_refused_naming_it_not_showing_it(
    field: str,
) -> None:
    values = {
        "client_id": "cid",
        "client_secret": "secret-1",
        "username": "user",
        "password": "pass-word",
        "pid": "pid",
    }
    values[field] = values[field] + "\udc80-tail"
    credentials = maxa.Credentials(**values)
    with pytest.raises(InvalidInputError) as caught:
        password_grant(credentials)
    assert caught.value.field == field
    assert "tail" not in str(caught.value) and "tail" not in repr(caught.value)


def test_a_refresh_token_with_a_lone_surrogate_is_refused_before_the_grant() -> None:
    credentials = maxa.Credentials("cid", "secret", "user", "password", "pid")
    with pytest.raises(InvalidInputError) as caught:
        refresh_grant(credentials, "rt-\ud800")
    assert caught.value.field == "refresh_token"


@pytest.mark.parametrize("refresh", ["rt-\\ud800", "rt\\u0000x", "rt-\\u00e9"])
def test_a_granted_refresh_token_that_could_not_go_back_is_refused(refresh: str) -> None:
    body = b'{"access_token": "at-1", "expires_in": 600, "refresh_token": "%s"}' % (
        refresh.encode()
    )
    with pytest.raises(ProtocolError, match="refresh_token"):
        parse_token_response(200, {}, body, now=0.0)


# --------------------------------------------------------------------------- token type


@pytest.mark.parametrize("token_type", ["mac", "MAC", "DPoP", "", " ", "bearer2", "Basic"])
@pytest.mark.parametrize("spelling", ["token_type", "tokenType"])
def test_a_token_type_other_than_bearer_is_a_protocol_error(token_type: str, spelling: str) -> None:
    body = orjson.dumps({"access_token": "at-1", "expires_in": 600, spelling: token_type})
    with pytest.raises(ProtocolError, match="token_type") as caught:
        parse_token_response(200, {}, body, now=0.0)
    assert caught.value.operation == "token"


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER", "bEaReR", None])
def test_a_bearer_token_type_in_any_case_or_none_at_all_is_taken(token_type: str | None) -> None:
    answer: dict[str, Any] = {"access_token": "at-1", "expires_in": 600}
    if token_type is not None:
        answer["token_type"] = token_type
    token = parse_token_response(200, {}, orjson.dumps(answer), now=0.0)
    assert token.token_type.lower() == "bearer"
