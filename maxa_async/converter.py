"""The one cattrs converter: wire names, strict primitive types, FromDate <-> JalaliDateTime.

Wire names exist only here, produced by one hook factory from a naming rule per model:

* CodedText: ``<snake_name>Field`` (``valueField``, ``terminology_idField``, ...)
* FromDate (JalaliDateTime): ``<camelName>Field`` (``yearField``, ``hourField``, ...)
* TerminologyVersion: PascalCase (``TerminologyId``, ``IsLast``), except ``id``

Structuring is strict about types (a number where a string belongs is a broken response,
not something to paper over with ``str()``) and tolerant where the guide is inconsistent:
booleans may come as ``"true"``/``"false"`` strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .models import CodedText, JalaliDateTime, TerminologyVersion

__all__ = [
    "WIRE_NAMES",
    "error_paths",
    "get_converter",
    "make_converter",
    "structure",
    "wire_name",
]

T = TypeVar("T")


def _snake_field(name: str) -> str:
    return f"{name}Field"


def _camel_field(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest) + "Field"


def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


#: The naming rule of each wire model, and the fields that don't follow it.
WIRE_NAMES: Mapping[type, tuple[Callable[[str], str], Mapping[str, str]]] = {
    CodedText: (_snake_field, {}),
    JalaliDateTime: (_camel_field, {}),
    TerminologyVersion: (_pascal, {"id": "id"}),
}


def wire_name(cls: type, field: str) -> str:
    rule, exceptions = WIRE_NAMES[cls]
    return exceptions.get(field) or rule(field)


def _strict_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _tolerant_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def make_converter() -> cattrs.Converter:
    """A fresh converter with every MAXA wire rule registered."""
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(bool, _tolerant_bool)

    def has_wire_names(cls: Any) -> bool:
        return cls in WIRE_NAMES

    def structure_factory(cls: Any) -> Callable[[Any, Any], Any]:
        overrides = {a.name: override(rename=wire_name(cls, a.name)) for a in attrs.fields(cls)}
        return make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]

    def unstructure_factory(cls: Any) -> Callable[[Any], Any]:
        overrides = {a.name: override(rename=wire_name(cls, a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, converter, **overrides)  # type: ignore[arg-type]

    converter.register_structure_hook_factory(has_wire_names, structure_factory)
    converter.register_unstructure_hook_factory(has_wire_names, unstructure_factory)
    return converter


@cache
def get_converter() -> cattrs.Converter:
    """The shared converter (built once; converters are safe to share once configured)."""
    return make_converter()


@cache
def unstructure_hook(cls: type[Any]) -> Callable[[Any], Any]:
    """The shared converter's unstructure function for ``cls``, found once: a request
    builder calls it per request, without the converter's dispatch on the type."""
    return get_converter().get_unstructure_hook(cls)


def structure(data: object, cls: type[T]) -> T:
    result: T = get_converter().structure(data, cls)
    return result


def error_paths(exc: cattrs.BaseValidationError, path: str = "$") -> list[str]:
    """``cattrs.transform_error``, with fields named as on the wire (``VersionId``, not
    ``version_id``): the path is read against the response body."""
    _wire_notes(exc)
    return cattrs.transform_error(exc, path=path)


def _wire_notes(exc: BaseException) -> None:
    if isinstance(exc, cattrs.ClassValidationError) and exc.cl in WIRE_NAMES:
        for sub in exc.exceptions:
            sub.__notes__ = [
                cattrs.AttributeValidationNote(note, wire_name(exc.cl, note.name), note.type)
                if type(note) is cattrs.AttributeValidationNote
                else note
                for note in getattr(sub, "__notes__", [])
            ]
    for sub in getattr(exc, "exceptions", ()):
        _wire_notes(sub)
