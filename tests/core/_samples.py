"""The guide's samples (tests/samples/) and the few helpers that read them.

See tests/samples/README.md for where each file comes from in the Persian guide.
Samples that are not valid JSON as printed are stored verbatim as ``.response.txt``;
their ``.response.json`` twin is the result of the minimal edits in ``REPAIRS``, and a
test checks that applying exactly those edits to the ``.txt`` gives the ``.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

OPERATIONS = (
    "terminology",
    "search_terminology",
    "validate_cts",
    "cts_terminologies",
    "terminology_value_by_version",
    "terminologies_term_by_version",
    "terminology_versions",
)

WIRE_NAMES = {
    "terminology": "Terminology",
    "search_terminology": "SearchTerminology",
    "validate_cts": "ValidateCts",
    "cts_terminologies": "CtsTerminologies",
    "terminology_value_by_version": "TerminologyValueByVersion",
    "terminologies_term_by_version": "TerminologiesTermByVersion",
    "terminology_versions": "TerminologyVersions",
}


class Delete(NamedTuple):
    line: int  # 1-based, in the .txt as stored
    expected: str


class Replace(NamedTuple):
    line: int
    expected: str
    new: str


#: The minimal edits that turn each page-broken or mis-escaped sample into JSON.
REPAIRS: dict[str, tuple[Delete | Replace, ...]] = {
    # `\ا` is not a JSON escape: the guide's Terminology success sample has a stray
    # backslash (SearchTerminology's mislabelled sample prints the same value cleanly).
    "terminology.response": (
        Replace(3, '    "data": "\\"\\اسلام\\"",', '    "data": "\\"اسلام\\"",'),
    ),
    # Printed across three page fragments: the array is closed with `}` instead of `]`,
    # and one `}` too many ends the last fragment.
    "search_terminology.response": (
        Replace(75, "},", "],"),
        Delete(85, "}"),
    ),
    # The first page fragment closes the array and both objects right after "SNOMEDCT",
    # (with a trailing comma); the second fragment goes on with "LNC", ... and closes them.
    "cts_terminologies.response": (
        Delete(20, "    ]"),
        Delete(21, "  }"),
        Delete(22, "}"),
    ),
    # The first fragment closes the top-level object after "result" (`},` then `}`),
    # the second fragment carries "status" and one `}` too many.
    "terminologies_term_by_version.response": (
        Delete(14, "}"),
        Delete(20, "}"),
    ),
}


def text(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def load(name: str) -> Any:
    """A JSON sample, parsed (``name`` without the ``.json``)."""
    return json.loads(text(f"{name}.json"))


def raw(name: str) -> bytes:
    """A JSON sample's bytes, as a response body."""
    return (SAMPLES / f"{name}.json").read_bytes()


def repair(name: str) -> str:
    """Apply ``REPAIRS[name]`` to ``<name>.txt``; each edit checks the line it changes."""
    lines = text(f"{name}.txt").split("\n")
    deleted: set[int] = set()
    for edit in REPAIRS[name]:
        assert lines[edit.line - 1] == edit.expected, (name, edit, lines[edit.line - 1])
        if isinstance(edit, Replace):
            lines[edit.line - 1] = edit.new
        else:
            deleted.add(edit.line - 1)
    return "\n".join(line for i, line in enumerate(lines) if i not in deleted)


class PrintedRequest(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def parse_format_block(name: str) -> PrintedRequest:
    """A guide "format" block: ``METHOD PATH`` (HTTP/1.1 may wrap), headers, JSON body."""
    lines = text(name).rstrip("\n").split("\n")
    method, path = lines[0].split()[:2]
    body_start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    headers = {}
    for line in lines[1:body_start]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip()] = value.strip()
    return PrintedRequest(method, path, headers, json.loads("\n".join(lines[body_start:])))


_CURL_REQUEST = re.compile(r"--\s*request\s+(\w+)\s+'https://[^/']+([^']+)'")
_CURL_HEADER = re.compile(r"--header '([^:']+):\s*([^']*)'")
_CURL_BODY = re.compile(r"--data-raw '(.*)'\s*\Z", re.S)


def parse_curl(name: str) -> PrintedRequest:
    """A guide curl sample: method, path of the URL, headers and the --data-raw body."""
    printed = text(name)
    request = _CURL_REQUEST.search(printed)
    body = _CURL_BODY.search(printed)
    assert request is not None and body is not None, name
    headers = {k.strip(): v.strip() for k, v in _CURL_HEADER.findall(printed)}
    return PrintedRequest(request.group(1), request.group(2), headers, json.loads(body.group(1)))


def key_shape(value: Any) -> Any:
    """The keys of a JSON value, in order, recursively: to compare "the exact keys"."""
    if isinstance(value, dict):
        return [(key, key_shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [key_shape(item) for item in value]
    return type(value).__name__


def envelope(data: Any = None, *, inner: int = 200, outer: int = 200, **extra: Any) -> bytes:
    """A MAXA envelope as the guide draws it (``data`` omitted when None)."""
    result: dict[str, Any] = {"status": {"statusCode": inner}}
    if data is not None:
        result = {"data": data, **result}
    body = {"result": result, "status": {"statusCode": outer, "message": "OK"}, **extra}
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
