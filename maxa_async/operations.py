"""The seven MAXA operations, sans-I/O: build each request, parse each result.

Every builder checks its arguments first (a bad one raises :class:`InvalidInputError`
naming the field, and nothing is sent), then returns a :class:`Call`: the request to send
and the function that turns the response into a typed result.

Strings go to the gateway as JSON, and from it to a service whose wire names
(``valueField``, ``coded_stringField``) are those of .NET's XML serialisation. So a
string argument must hold only characters that XML 1.0 can carry: no lone surrogates
(no UTF-8 encoder takes them; orjson raises TypeError), no NUL or other C0 control
character but tab, line feed and carriage return, and not the noncharacters U+FFFE and
U+FFFF. Such a string is refused, naming the field, before anything is sent.

All seven operations are read-only lookups, so replaying a request (after a 401, a 429,
a 5xx or a dropped connection) is always safe, and identical calls may share one request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, NamedTuple, TypeVar

import cattrs
import orjson

from .converter import error_paths, get_converter, structure, unstructure_hook
from .envelope import header, loads, parse_envelope
from .errors import InvalidInputError, MaxaError, NotFoundError, ProtocolError
from .jalali import JalaliDateTime, to_jalali
from .models import CodedText, TerminologyVersion
from .oauth import OPERATION as TOKEN_OPERATION

__all__ = [
    "BASE_PATH",
    "MAX_RESPONSE_BYTES",
    "Call",
    "Request",
    "check_coded_text",
    "check_terminology_id",
    "cts_terminologies",
    "request_headers",
    "search_terminology",
    "terminologies_term_by_version",
    "terminology",
    "terminology_value_by_version",
    "terminology_versions",
    "validate_cts",
]

T = TypeVar("T")

BASE_PATH: Final = "/api/client/apim/v1/maksaservice/gwmaksa/"

MAX_ID_LENGTH: Final = 128
MAX_CODE_LENGTH: Final = 256
MAX_VALUE_LENGTH: Final = 8192

_MAX_PATHS_SHOWN: Final = 5

_KiB: Final = 1024
_MiB: Final = 1024 * _KiB

#: The largest body the transport reads for each operation (wire names; ``"token"`` is
#: the token endpoint). Well above any real answer, far below what would hurt: a
#: single lookup answers one value (at most a few kilobytes, even JSON-escaped twice),
#: the id and version lists are short, and only a whole terminology (at one version, or
#: since an old date) can be large. Configurable per client (``max_response_bytes``).
MAX_RESPONSE_BYTES: Final[Mapping[str, int]] = {
    TOKEN_OPERATION: 64 * _KiB,
    "ValidateCts": 64 * _KiB,
    "Terminology": 256 * _KiB,
    "TerminologyValueByVersion": 256 * _KiB,
    "CtsTerminologies": 4 * _MiB,
    "TerminologyVersions": 4 * _MiB,
    "SearchTerminology": 64 * _MiB,
    "TerminologiesTermByVersion": 256 * _MiB,
}

#: What the wire refuses (see the module docstring): lone surrogates, C0 controls but
#: tab/LF/CR, U+FFFE and U+FFFF.
_UNSENDABLE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Request(NamedTuple):
    """One HTTP request to MAXA, minus the per-token headers. (A named tuple, not an attrs
    class: one is made per call, in half the time.)"""

    operation: str
    method: str
    path: str
    body: bytes


class Call(Generic[T]):
    """A request and the parser of its ``result.data``. (A plain slotted class: one is
    made per call, and this is the cheapest object Python makes.)"""

    __slots__ = ("if_not_found", "parse_data", "request", "terminology_id")

    def __init__(
        self,
        request: Request,
        parse_data: Callable[[Any], T],
        if_not_found: Callable[[], T] | None = None,
        terminology_id: str | None = None,
    ) -> None:
        self.request = request
        self.parse_data = parse_data
        #: The terminology asked about (for traces and logs; None for CtsTerminologies).
        self.terminology_id = terminology_id
        #: For "since" queries an inner 404 means "nothing new": answer this, not raise.
        self.if_not_found = if_not_found

    def __repr__(self) -> str:
        return f"Call({self.request!r})"

    @property
    def key(self) -> tuple[str, bytes]:
        """Identity of the call: same key, same answer (all operations are read-only)."""
        return (self.request.operation, self.request.body)

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> T:
        """The typed result of a response, or the MaxaError it amounts to."""
        operation = self.request.operation
        try:
            data = parse_envelope(status, headers, body, operation=operation)
        except NotFoundError:
            if self.if_not_found is None:
                raise
            return self.if_not_found()
        try:
            return self.parse_data(data)
        except MaxaError as exc:
            exc.operation = exc.operation or operation
            exc.request_id = exc.request_id or header(headers, "requestId")
            raise
        except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
            if isinstance(exc, cattrs.BaseValidationError):
                paths = error_paths(exc, path="$.result.data")
                # A broken list repeats the same faults per item: name a few, count the rest.
                detail = "; ".join(paths[:_MAX_PATHS_SHOWN])
                if len(paths) > _MAX_PATHS_SHOWN:
                    detail += f"; and {len(paths) - _MAX_PATHS_SHOWN} more"
            else:
                detail = str(exc)
            raise ProtocolError(
                f"unexpected result data: {detail}",
                status=status,
                operation=operation,
                request_id=header(headers, "requestId"),
            ) from None


def request_headers(access_token: str, pid: str) -> dict[str, str]:
    """Headers of every MAXA call; build once per token and reuse."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "pid": pid,
        "Authorization": f"Bearer {access_token}",
    }


# --------------------------------------------------------------------------- input checks


def check_terminology_id(value: object, field: str = "terminology_id") -> str:
    """Strip; must be non-empty printable ASCII (the guide has a corrupted, Devanagari id)."""
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a string, got {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise InvalidInputError(field, "must not be empty")
    if len(stripped) > MAX_ID_LENGTH:
        raise InvalidInputError(field, f"is {len(stripped)} characters; at most {MAX_ID_LENGTH}")
    if stripped.isascii() and stripped.isprintable():
        return stripped  # the usual case, checked in C
    bad = [ch for ch in stripped if not " " <= ch <= "~"]
    if bad:
        raise InvalidInputError(
            field,
            f"{stripped!r} has characters outside printable ASCII ({''.join(bad[:5])!r});"
            " terminology ids are ASCII, e.g. 'eRx' or 'thritaEHR.Religion'",
        )
    return stripped


def check_text(value: object, field: str, max_length: int = MAX_CODE_LENGTH) -> str:
    """Strip; must be a non-empty string of bounded length."""
    if not isinstance(value, str):
        raise InvalidInputError(field, f"must be a string, got {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise InvalidInputError(field, "must not be empty")
    if len(stripped) > max_length:
        raise InvalidInputError(field, f"is {len(stripped)} characters; at most {max_length}")
    if not stripped.isprintable():  # the usual case is printable, checked in C
        check_sendable(stripped, field)
    return stripped


def check_sendable(value: str, field: str) -> None:
    """Refuse characters the wire cannot carry (see the module docstring), naming the
    first one by its code point (the character itself may not even print)."""
    found = _UNSENDABLE.search(value)
    if found is not None:
        char = found.group()
        raise InvalidInputError(
            field,
            f"has the character U+{ord(char):04X} at position {found.start()}, which cannot "
            "be sent (lone surrogates, control characters other than tab, line feed and "
            "carriage return, and U+FFFE/U+FFFF are refused)",
        )


def check_coded_text(value: object, field: str = "coded_text") -> CodedText:
    """A CodedText with every part checked and stripped."""
    if type(value) is CodedText:
        # The usual case, checked inline (the bulk hot path): exact strings, non-empty,
        # already stripped (``strip()`` returns the very same str then), within bounds,
        # an ASCII id. Anything else takes the checks below, which name the field.
        text = value.value
        terminology_id = value.terminology_id
        code = value.coded_string
        if (
            type(text) is str
            and type(terminology_id) is str
            and type(code) is str
            and 0 < len(text) <= MAX_VALUE_LENGTH
            and 0 < len(terminology_id) <= MAX_ID_LENGTH
            and 0 < len(code) <= MAX_CODE_LENGTH
            and text.strip() is text
            and terminology_id.strip() is terminology_id
            and code.strip() is code
            and terminology_id.isascii()
            and terminology_id.isprintable()
            and (text.isprintable() or _UNSENDABLE.search(text) is None)
            and (code.isprintable() or _UNSENDABLE.search(code) is None)
        ):
            return value
    if not isinstance(value, CodedText):
        raise InvalidInputError(field, f"must be a maxa.CodedText, got {type(value).__name__}")
    text = check_text(value.value, f"{field}.value", MAX_VALUE_LENGTH)
    terminology_id = check_terminology_id(value.terminology_id, f"{field}.terminology_id")
    code = check_text(value.coded_string, f"{field}.coded_string")
    if (
        type(value) is CodedText  # a subclass would not meet the converter's wire names
        and text is value.value
        and terminology_id is value.terminology_id
        and code is value.coded_string
    ):
        return value  # already clean (the usual case): no copy on the hot path
    return CodedText(value=text, terminology_id=terminology_id, coded_string=code)


# --------------------------------------------------------------------------- result parsers


def _unwrap(data: Any) -> Any:
    """Values may arrive JSON-encoded inside a string; accept plain JSON too."""
    if isinstance(data, str):
        try:
            return loads(data.encode("utf-8"))
        except ValueError:
            return data
    return data


def parse_value(data: Any) -> str:
    """``"\\"اسلام\\""`` -> ``"اسلام"``; a plain ``"اسلام"`` is taken as it is."""
    if not isinstance(data, str):
        raise TypeError(f"expected the value as a string, got {type(data).__name__}")
    decoded = _unwrap(data)
    return decoded if isinstance(decoded, str) else data


def parse_bool(data: Any) -> bool:
    """``"true"``/``"false"`` strings (the guide's form) or plain JSON booleans."""
    if data == "true":  # the guide's form: the hot path
        return True
    if data == "false":
        return False
    decoded = _unwrap(data)
    if isinstance(decoded, bool):
        return decoded
    if isinstance(decoded, str) and decoded.strip().lower() in ("true", "false"):
        return decoded.strip().lower() == "true"
    raise TypeError(f"expected 'true' or 'false', got {data!r:.40}")


def _parse_list(item_type: type[T]) -> Callable[[Any], list[T]]:
    def parse(data: Any) -> list[T]:
        decoded = _unwrap(data)
        if not isinstance(decoded, list):
            # cattrs would iterate a string or an object's keys into a list: refuse instead
            raise TypeError(f"expected a JSON array, got {type(decoded).__name__}")
        result: list[T] = structure(decoded, list[item_type])  # type: ignore[valid-type]
        return result

    return parse


parse_coded_texts = _parse_list(CodedText)
parse_strings = _parse_list(str)
parse_versions = _parse_list(TerminologyVersion)


# --------------------------------------------------------------------------- request builders


def _call(
    operation: str,
    body: Mapping[str, Any],
    parse: Callable[[Any], T],
    *,
    method: str = "POST",
    if_not_found: Callable[[], T] | None = None,
    terminology_id: str | None = None,
) -> Call[T]:
    return Call(
        Request(operation, method, BASE_PATH + operation, orjson.dumps(body)),
        parse,
        if_not_found,
        terminology_id,
    )


def from_date_wire(since: JalaliDateTime, *, iso_string: bool) -> dict[str, Any]:
    """FromDate on the wire; SearchTerminology's sample carries an empty iSOStringField."""
    wire: dict[str, Any] = get_converter().unstructure(since)
    return {"iSOStringField": "", **wire} if iso_string else wire


def terminology(terminology_id: str, coded_string: str) -> Call[str]:
    """Terminology: the value of a code. A GET with a JSON body, as the guide says."""
    terminology_id = check_terminology_id(terminology_id)
    return _call(
        "Terminology",
        {"terminologyId": terminology_id, "codedString": check_text(coded_string, "coded_string")},
        parse_value,
        method="GET",
        terminology_id=terminology_id,
    )


def search_terminology(terminology_id: str, since: object) -> Call[list[CodedText]]:
    """SearchTerminology: the terms of a terminology created since a Jalali date.

    An inner 404 (the service's answer when nothing matches) is read as an empty list;
    an unknown terminology id therefore also yields ``[]``."""
    terminology_id = check_terminology_id(terminology_id)
    return _call(
        "SearchTerminology",
        {
            "TerminologyId": terminology_id,
            "FromDate": from_date_wire(to_jalali(since), iso_string=True),
        },
        parse_coded_texts,
        if_not_found=list,
        terminology_id=terminology_id,
    )


def validate_cts(coded_text: CodedText) -> Call[bool]:
    """ValidateCts: whether the value is the one registered for that code."""
    checked = check_coded_text(coded_text)
    return _call(
        "ValidateCts",
        {"DoCodedText": unstructure_hook(CodedText)(checked)},
        parse_bool,
        terminology_id=checked.terminology_id,
    )


def cts_terminologies(since: object) -> Call[list[str]]:
    """CtsTerminologies: the ids of terminologies defined since a Jalali date
    (an inner 404 is read as an empty list)."""
    return _call(
        "CtsTerminologies",
        {"FromDate": from_date_wire(to_jalali(since), iso_string=False)},
        parse_strings,
        if_not_found=list,
    )


def terminology_value_by_version(terminology_id: str, coded_string: str, version: str) -> Call[str]:
    """TerminologyValueByVersion: the value of a code in one version."""
    terminology_id = check_terminology_id(terminology_id)
    return _call(
        "TerminologyValueByVersion",
        {
            "terminologyId": terminology_id,
            "codedString": check_text(coded_string, "coded_string"),
            "version": check_text(version, "version"),
        },
        parse_value,
        terminology_id=terminology_id,
    )


def terminologies_term_by_version(terminology_id: str, version: str) -> Call[list[CodedText]]:
    """TerminologiesTermByVersion: every term of a terminology at one version."""
    terminology_id = check_terminology_id(terminology_id)
    return _call(
        "TerminologiesTermByVersion",
        {"terminologyId": terminology_id, "version": check_text(version, "version")},
        parse_coded_texts,
        terminology_id=terminology_id,
    )


def terminology_versions(terminology_id: str) -> Call[list[TerminologyVersion]]:
    """TerminologyVersions: the versions of a terminology (guide's table says
    ``terminology_idField``; its sample sends ``terminologyId``, which we send)."""
    terminology_id = check_terminology_id(terminology_id)
    return _call(
        "TerminologyVersions",
        {"terminologyId": terminology_id},
        parse_versions,
        terminology_id=terminology_id,
    )
