"""FhirTerminology: the FHIR terminology operations over any MAXA validator."""

from __future__ import annotations

import asyncio
import datetime as dt
import http
import itertools
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import attrs

from ..errors import InvalidInputError, MaxaError
from ..models import CodedText
from ..operations import MAX_CODE_LENGTH, MAX_VALUE_LENGTH, check_text
from ._backends import Backend, CodeAnswer, backend_for
from ._metadata import capability_statement, terminology_capabilities
from ._outcome import FhirOperationError, FhirResponse, operation_outcome, response_for_error
from ._params import Inputs, output_parameters, read_parameters, read_query
from ._systems import SystemMap

__all__ = ["OPERATIONS", "FhirTerminology"]

CODE_SYSTEM_VALIDATE: Final = "CodeSystem/$validate-code"
VALUE_SET_VALIDATE: Final = "ValueSet/$validate-code"
CODE_SYSTEM_LOOKUP: Final = "CodeSystem/$lookup"
VALUE_SET_EXPAND: Final = "ValueSet/$expand"

#: The operations served, by their path below the server's base.
OPERATIONS: Final = (CODE_SYSTEM_VALIDATE, VALUE_SET_VALIDATE, CODE_SYSTEM_LOOKUP, VALUE_SET_EXPAND)

#: Follow-up lookups and single requests of one batch in flight at once.
_BATCH_CONCURRENCY: Final = 64


@attrs.frozen
class _CodeRequest:
    """One code to validate or look up, checked and mapped to its MAXA terminology."""

    terminology_id: str
    system: str
    code: str
    display: str | None
    version: str | None

    def where(self) -> str:
        version = f" version '{self.version}'" if self.version is not None else ""
        return f"{self.system}#{self.code}{version}"


def _ok(resource: dict[str, Any]) -> FhirResponse:
    return FhirResponse(200, resource)


def _valid(request: _CodeRequest, display: str) -> FhirResponse:
    return _ok(
        output_parameters(("result", "valueBoolean", True), ("display", "valueString", display))
    )


def _invalid(request: _CodeRequest, answer: CodeAnswer | None) -> FhirResponse:
    """result false, with the reason: the code is unknown, or its display is another."""
    if answer is None:  # the reason could not be learnt
        message = (
            f"'{request.display}' is not the display of {request.where()}, or the code is unknown"
        )
        display = None
    elif answer.display is None:
        message = f"Unknown code '{request.code}' in {request.system}"
        if request.version is not None:
            message += f" version '{request.version}'"
        display = None
    else:
        message = (
            f"Wrong display '{request.display}' for {request.where()}; "
            f"the valid display is '{answer.display}'"
        )
        display = answer.display
    return _ok(
        output_parameters(
            ("result", "valueBoolean", False),
            ("message", "valueString", message),
            ("display", "valueString", display),
        )
    )


def _judge(request: _CodeRequest, answer: CodeAnswer) -> FhirResponse:
    """$validate-code from a code's display: MAXA's rule, equal once both are stripped."""
    if answer.display is not None and (
        request.display is None or request.display == answer.display.strip()
    ):
        return _valid(request, answer.display)
    return _invalid(request, answer)


def _text(inputs: Inputs, name: str, max_length: int = MAX_CODE_LENGTH) -> str | None:
    value = inputs.get(name)
    return None if value is None else check_text(value, name, max_length)


def _split_canonical(url: str) -> tuple[str, str | None]:
    """``uri|version`` -> (uri, version)."""
    uri, bar, version = url.partition("|")
    return uri, (version or None) if bar else None


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _operation_path(url: object) -> tuple[str, list[tuple[str, str]]]:
    """A batch entry's ``request.url`` -> (operation path, query pairs)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError("entry.request.url", "is required")
    parts = urlsplit(url.strip())
    path = "/".join(parts.path.strip("/").split("/")[-2:])
    return path, parse_qsl(parts.query, keep_blank_values=True)


class FhirTerminology:
    """FHIR R4 terminology operations over MAXA, taking and returning plain dicts.

    ``FhirTerminology(validator)`` where ``validator`` is a :class:`maxa_async.MaxaClient`
    (online), a :class:`maxa_async.snapshot.SnapshotStore` (offline: no network) or a
    :class:`maxa_async.snapshot.HybridValidator` (the snapshot first, the gateway for
    what it lacks)::

        fhir = FhirTerminology(store)
        answer = await fhir.validate_code(parameters(
            system="urn:maxa-async:CodeSystem:eRx", code="60002", display="..."))
        answer["parameter"]   # result, message, display; or an OperationOutcome

    Every method answers with a resource: the operation's result, or an
    ``OperationOutcome`` whose issue code says what went wrong (see
    :mod:`maxa_async.fhir._outcome`); :meth:`respond` also gives the HTTP status.

    Options: ``systems`` (a :class:`SystemMap`: FHIR system URIs to MAXA terminology
    ids), ``max_batch`` (entries in one batch Bundle), ``default_count`` and
    ``max_count`` (codes in one $expand page).
    """

    def __init__(
        self,
        validator: object,
        *,
        systems: SystemMap | None = None,
        max_batch: int = 10_000,
        default_count: int = 100,
        max_count: int = 1_000,
    ) -> None:
        for name, value in (
            ("max_batch", max_batch),
            ("default_count", default_count),
            ("max_count", max_count),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(name, "must be an int >= 1")
        if default_count > max_count:
            raise InvalidInputError("default_count", "must not exceed max_count")
        if systems is not None and not isinstance(systems, SystemMap):
            raise InvalidInputError("systems", "must be a maxa_async.fhir.SystemMap")
        self.backend: Backend = backend_for(validator)
        self.systems = systems if systems is not None else SystemMap()
        self.max_batch = max_batch
        self.default_count = default_count
        self.max_count = max_count
        self._routes: Mapping[str, Callable[[Inputs], Awaitable[FhirResponse]]] = {
            CODE_SYSTEM_VALIDATE: self._validate_code_system,
            VALUE_SET_VALIDATE: self._validate_value_set,
            CODE_SYSTEM_LOOKUP: self._lookup,
            VALUE_SET_EXPAND: self._expand,
        }

    @property
    def mode(self) -> str:
        """``online``, ``offline`` or ``hybrid``."""
        return self.backend.mode

    def __repr__(self) -> str:
        return f"FhirTerminology(mode={self.mode!r})"

    # ------------------------------------------------------------------ the operations

    async def validate_code(
        self, parameters: Mapping[str, Any], *, resource_type: str = "CodeSystem"
    ) -> dict[str, Any]:
        """``$validate-code``: ``Parameters`` in (``url`` or ``system``, ``code``,
        ``display``, ``version``; or ``coding``), ``Parameters`` out (``result``,
        ``message`` when false, ``display`` when known). ``resource_type="ValueSet"``:
        ``url`` names a value set (``<system>?fhir_vs`` or ``urn:maxa-async:ValueSet:<id>``).
        """
        if resource_type not in ("CodeSystem", "ValueSet"):
            raise InvalidInputError("resource_type", "must be 'CodeSystem' or 'ValueSet'")
        path = CODE_SYSTEM_VALIDATE if resource_type == "CodeSystem" else VALUE_SET_VALIDATE
        return (await self.respond_parameters(path, parameters)).resource

    async def lookup(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """``CodeSystem/$lookup``: ``system``, ``code``, ``version`` in; ``name`` (the
        MAXA terminology), ``version`` (when known) and ``display`` out; an unknown code
        is a ``not-found`` OperationOutcome."""
        return (await self.respond_parameters(CODE_SYSTEM_LOOKUP, parameters)).resource

    async def expand(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """``ValueSet/$expand`` from a snapshot: ``url``, ``filter`` (Persian-normalised
        text search), ``count``, ``offset`` in; a ``ValueSet`` with its ``expansion``
        out (``total`` counts every match, ``contains`` holds this page)."""
        return (await self.respond_parameters(VALUE_SET_EXPAND, parameters)).resource

    async def batch(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """A ``batch`` Bundle of operation requests in; a ``batch-response`` Bundle out,
        one entry per request, in order. ``$validate-code`` requests with a display go
        through the validator's bulk engine together."""
        return (await self.respond_batch(bundle)).resource

    # ------------------------------------------------------------------ with HTTP statuses

    async def respond(self, path: str, inputs: Inputs) -> FhirResponse:
        """Answer one operation (``path``: one of :data:`OPERATIONS`) with inputs as
        read by :func:`read_parameters` or :func:`read_query`."""
        route = self._routes.get(path)
        if route is None:
            return response_for_error(
                FhirOperationError("not-found", 404, f"no operation {path!r} here")
            )
        try:
            return await route(inputs)
        except (MaxaError, FhirOperationError) as exc:
            return response_for_error(exc)

    async def respond_parameters(self, path: str, parameters: object) -> FhirResponse:
        """:meth:`respond` to a ``Parameters`` resource."""
        try:
            inputs = read_parameters(parameters)
        except InvalidInputError as exc:
            return response_for_error(exc)
        return await self.respond(path, inputs)

    async def respond_query(self, path: str, query: Sequence[tuple[str, str]]) -> FhirResponse:
        """:meth:`respond` to a GET query string's (name, value) pairs."""
        try:
            inputs = read_query(query)
        except InvalidInputError as exc:
            return response_for_error(exc)
        return await self.respond(path, inputs)

    async def respond_batch(self, bundle: object) -> FhirResponse:
        """:meth:`batch`, with the HTTP status (200 unless the Bundle itself is wrong)."""
        try:
            entries = self._batch_entries(bundle)
        except (InvalidInputError, FhirOperationError) as exc:
            return response_for_error(exc)
        answers: list[FhirResponse | None] = [None] * len(entries)
        bulk: list[tuple[int, _CodeRequest]] = []
        singles: list[tuple[int, str, Inputs]] = []
        for position, entry in enumerate(entries):
            try:
                path, inputs = self._entry_request(entry)
                if path in (CODE_SYSTEM_VALIDATE, VALUE_SET_VALIDATE):
                    request = self._code_request(inputs, path)
                    if request.display is not None and request.version is None:
                        bulk.append((position, request))
                        continue
                singles.append((position, path, inputs))
            except (MaxaError, FhirOperationError) as exc:
                answers[position] = response_for_error(exc)
        follow_ups: list[tuple[int, _CodeRequest]] = []
        if bulk:
            items = [
                CodedText(request.display or "", request.terminology_id, request.code)
                for _, request in bulk
            ]
            pending = iter(bulk)
            async for outcome in self.backend.validate_many(items):
                position, request = next(pending)
                if outcome.error is not None:
                    answers[position] = response_for_error(outcome.error)
                elif outcome.valid:
                    answers[position] = _valid(request, request.display or "")
                else:
                    follow_ups.append((position, request))
        semaphore = asyncio.Semaphore(_BATCH_CONCURRENCY)

        async def single(position: int, path: str, inputs: Inputs) -> None:
            async with semaphore:
                answers[position] = await self.respond(path, inputs)

        async def follow_up(position: int, request: _CodeRequest) -> None:
            async with semaphore:
                answers[position] = await self._explain(request)

        await asyncio.gather(
            *(single(*job) for job in singles), *(follow_up(*job) for job in follow_ups)
        )
        response_entries: list[dict[str, Any]] = []
        for answer in answers:
            assert answer is not None
            if answer.ok:
                status = {"status": _status_line(answer.status)}
                response_entries.append({"resource": answer.resource, "response": status})
            else:
                response_entries.append(
                    {
                        "response": {
                            "status": _status_line(answer.status),
                            "outcome": answer.resource,
                        }
                    }
                )
        return _ok({"resourceType": "Bundle", "type": "batch-response", "entry": response_entries})

    def capability_statement(self, base_url: str | None = None) -> dict[str, Any]:
        """The server's ``CapabilityStatement`` (``GET /metadata``)."""
        return capability_statement(self.mode, base_url)

    async def terminology_capabilities(self, base_url: str | None = None) -> dict[str, Any]:
        """``TerminologyCapabilities`` (``GET /metadata?mode=terminology``): the code
        systems a snapshot holds (with versions), and the ones mapped to HL7 URIs when
        the gateway may be asked."""
        known = await self.backend.code_systems()
        systems: dict[str, str | None] = {
            self.systems.system_for(terminology_id): version for terminology_id, version in known
        }
        if self.mode != "offline":
            for _, uri in self.systems:
                systems.setdefault(uri, None)
        return terminology_capabilities(self.mode, systems, base_url)

    # ------------------------------------------------------------------ inputs

    def _terminology(self, system: str) -> str:
        terminology_id = self.systems.terminology_for(system)
        if terminology_id is None:
            raise FhirOperationError(
                "not-found",
                404,
                f"unknown code system {system!r}: not one of the URIs mapped to MAXA "
                f"terminologies (see maxa_async.fhir.SystemMap)",
            )
        return terminology_id

    def _code_request(self, inputs: Inputs, path: str) -> _CodeRequest:
        if "codeableConcept" in inputs:
            raise FhirOperationError(
                "not-supported", 400, "codeableConcept is not supported; send a code or a coding"
            )
        code = _text(inputs, "code")
        system = _text(inputs, "system", MAX_VALUE_LENGTH)
        display = _text(inputs, "display", MAX_VALUE_LENGTH)
        version = _text(inputs, "version") or _text(inputs, "systemVersion")
        coding = inputs.get("coding")
        if coding is not None:
            if code is not None:
                raise InvalidInputError("coding", "give either code or coding, not both")
            code = _text(coding, "code")
            system = _text(coding, "system", MAX_VALUE_LENGTH) or system
            display = _text(coding, "display", MAX_VALUE_LENGTH) or display
            version = _text(coding, "version") or version
        if code is None:
            raise InvalidInputError("code", "is required (or a coding)")
        url = _text(inputs, "url", MAX_VALUE_LENGTH)
        if path == VALUE_SET_VALIDATE and url is not None:
            value_set, _ = _split_canonical(url)
            terminology_id = self.systems.terminology_for_value_set(value_set)
            if terminology_id is None:
                raise FhirOperationError("not-found", 404, f"unknown value set {value_set!r}")
            own = self.systems.system_for(terminology_id)
            if system is not None and self.systems.terminology_for(system) is None:
                self._terminology(system)  # an unknown system: not-found, as for CodeSystem
            if system is not None and system != own:
                raise FhirOperationError(
                    "invalid", 400, f"code system {system!r} is not the one of value set {url!r}"
                )
            system = own
        elif url is not None:
            if system is not None and system != url:
                raise InvalidInputError("url", f"names {url!r} but system names {system!r}")
            system, url_version = _split_canonical(url)
            version = version or url_version
        if system is None:
            raise InvalidInputError("system", "is required (or url)")
        terminology_id = self._terminology(system)
        return _CodeRequest(terminology_id, system, code, display, version)

    def _batch_entries(self, bundle: object) -> list[Mapping[str, Any]]:
        if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
            raise InvalidInputError("body", "must be a FHIR Bundle resource")
        kind = bundle.get("type")
        if kind != "batch":
            raise FhirOperationError(
                "not-supported", 400, f"Bundle type {kind!r}: only 'batch' is answered here"
            )
        entries = bundle.get("entry", [])
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise InvalidInputError("entry", "must be a list of entries")
        if len(entries) > self.max_batch:
            raise FhirOperationError(
                "too-costly",
                413,
                f"{len(entries)} entries; at most {self.max_batch} in one batch",
            )
        return entries

    def _entry_request(self, entry: Mapping[str, Any]) -> tuple[str, Inputs]:
        request = entry.get("request")
        if not isinstance(request, Mapping):
            raise InvalidInputError("entry.request", "is required")
        method = request.get("method")
        path, query = _operation_path(request.get("url"))
        if path not in self._routes:
            raise FhirOperationError("not-found", 404, f"no operation {path!r} here")
        if method == "GET":
            return path, read_query(query)
        if method == "POST":
            return path, read_parameters(entry.get("resource"))
        raise FhirOperationError(
            "not-supported", 400, f"entry.request.method {method!r}: only GET and POST"
        )

    # ------------------------------------------------------------------ answers

    async def _validate_code_system(self, inputs: Inputs) -> FhirResponse:
        return await self._validate(self._code_request(inputs, CODE_SYSTEM_VALIDATE))

    async def _validate_value_set(self, inputs: Inputs) -> FhirResponse:
        return await self._validate(self._code_request(inputs, VALUE_SET_VALIDATE))

    async def _validate(self, request: _CodeRequest) -> FhirResponse:
        if request.display is None or request.version is not None:
            answer = await self.backend.display(
                request.terminology_id, request.code, request.version
            )
            return _judge(request, answer)
        item = CodedText(request.display, request.terminology_id, request.code)
        if await self.backend.validate(item):
            return _valid(request, request.display)
        return await self._explain(request)

    async def _explain(self, request: _CodeRequest) -> FhirResponse:
        """result false for a code whose display the validator refused: why."""
        try:
            answer: CodeAnswer | None = await self.backend.display(
                request.terminology_id, request.code, None
            )
        except MaxaError:
            answer = None
        return _invalid(request, answer)

    async def _lookup(self, inputs: Inputs) -> FhirResponse:
        request = self._code_request({k: v for k, v in inputs.items() if k != "display"}, "")
        answer = await self.backend.display(request.terminology_id, request.code, request.version)
        if answer.display is None:
            message = f"Unknown code '{request.code}' in {request.system}"
            if request.version is not None:
                message += f" version '{request.version}'"
            raise FhirOperationError("not-found", 404, message)
        return _ok(
            output_parameters(
                ("name", "valueString", answer.name or request.terminology_id),
                ("version", "valueString", answer.version),
                ("display", "valueString", answer.display),
            )
        )

    async def _expand(self, inputs: Inputs) -> FhirResponse:
        url = _text(inputs, "url", MAX_VALUE_LENGTH)
        if url is None:
            raise InvalidInputError("url", "is required: the value set to expand")
        value_set, version = _split_canonical(url)
        version = version or _text(inputs, "valueSetVersion")
        terminology_id = self.systems.terminology_for_value_set(value_set)
        if terminology_id is None:
            raise FhirOperationError("not-found", 404, f"unknown value set {value_set!r}")
        count = inputs.get("count", self.default_count)
        offset = inputs.get("offset", 0)
        if not 0 <= count <= self.max_count:
            raise InvalidInputError("count", f"must be between 0 and {self.max_count}")
        if offset < 0:
            raise InvalidInputError("offset", "must not be negative")
        index = await self.backend.index(terminology_id)
        if version is not None and version != index.version:
            raise FhirOperationError(
                "not-found",
                404,
                f"the snapshot holds version {index.version!r} of {index.terminology_id!r}, "
                f"not {version!r}",
            )
        text = inputs.get("filter")
        parameter: list[dict[str, Any]] = []
        if text is not None and text.strip():
            matches = index.search(text, limit=max(len(index), 1))
            total = len(matches)
            page = [(term.coded_string, term.value) for term in matches[offset : offset + count]]
            parameter.append({"name": "filter", "valueString": text})
        else:
            total = len(index)
            page = list(itertools.islice(index.items(), offset, offset + count))
        parameter.append({"name": "count", "valueInteger": count})
        parameter.append({"name": "offset", "valueInteger": offset})
        system = self.systems.system_for(index.terminology_id)
        expansion: dict[str, Any] = {
            "identifier": f"urn:uuid:{uuid.uuid4()}",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "total": total,
            "offset": offset,
            "parameter": parameter,
        }
        if page:
            expansion["contains"] = [
                {"system": system, "version": index.version, "code": code, "display": value}
                for code, value in page
            ]
        return _ok(
            {
                "resourceType": "ValueSet",
                "url": value_set,
                "version": index.version,
                "name": index.terminology_id.replace(".", "_"),
                "status": "active",
                "expansion": expansion,
            }
        )


def outcome_response(code: str, status: int, message: str) -> FhirResponse:
    """An OperationOutcome answer the server makes itself (unknown path, bad body)."""
    return FhirResponse(status, operation_outcome(code, message))
