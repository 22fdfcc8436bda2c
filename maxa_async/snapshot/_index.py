"""One terminology's snapshot in memory: code -> value, answered in O(1)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from ..bulk import make_outcome
from ..errors import InvalidInputError
from ..models import CodedText, ValidationOutcome
from ..operations import MAX_CODE_LENGTH, MAX_VALUE_LENGTH, check_coded_text, check_text
from ._models import SnapshotInfo
from ._text import normalize_text

__all__ = ["TerminologyIndex"]

#: Raw terminology-id strings an index remembers as its own (after their first check).
_SPELLINGS_SIZE: Final = 1024


def _fast_entries(values: Mapping[str, str]) -> dict[str, str]:
    """code -> stripped value, for the codes and values a valid input can equal exactly.

    A code that would fail the client's input checks (blank, padded, too long) can never
    be asked for; a stored value that is blank or longer than any valid input can never
    match. Those are left to the slow path, which answers them exactly as the checks do.
    """
    fast: dict[str, str] = {}
    for code, value in values.items():
        if not code or len(code) > MAX_CODE_LENGTH or code != code.strip():
            continue
        expected = value.strip()
        if expected and len(expected) <= MAX_VALUE_LENGTH:
            fast[code] = expected
    return fast


class TerminologyIndex:
    """A terminology's snapshot held in memory: every code of the snapshot's version.

    Get one with ``await store.index("eRx")``; its methods are synchronous and never
    touch the file. The comparison rules are the gateway's (see :meth:`validate`).
    """

    __slots__ = ("_fast", "_info", "_normalized", "_spellings", "_values")

    def __init__(self, info: SnapshotInfo, values: dict[str, str]) -> None:
        self._info = info
        self._values = values
        self._fast = _fast_entries(values)
        self._normalized: list[tuple[str, str]] | None = None
        self._spellings: set[str] = set()  # raw ids already checked to name this terminology

    @property
    def info(self) -> SnapshotInfo:
        """The snapshot's metadata as of the last pull or sync this process saw."""
        return self._info

    @property
    def key(self) -> str:
        return self._info.key

    @property
    def terminology_id(self) -> str:
        return self._info.terminology_id

    @property
    def version(self) -> str:
        return self._info.version

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code.strip() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        return (
            f"TerminologyIndex({self._info.terminology_id!r}, version={self._info.version!r}, "
            f"terms={len(self._values)})"
        )

    def items(self) -> Iterator[tuple[str, str]]:
        """(code, value) pairs, values exactly as the gateway sent them."""
        return iter(self._values.items())

    def terms(self) -> list[CodedText]:
        """Every term as CodedText (terminology id as the gateway spells it)."""
        label = self._info.terminology_id
        return [CodedText(value, label, code) for code, value in self._values.items()]

    def lookup(self, code: str) -> str | None:
        """The value of ``code`` exactly as the gateway sent it, or None when the snapshot
        does not have the code. ``code`` is matched exactly after stripping surrounding
        white space; a blank or over-long code raises :class:`InvalidInputError`."""
        return self._values.get(check_text(code, "coded_string"))

    def validate(self, coded_text: CodedText) -> bool:
        """ValidateCts, offline: True iff the snapshot has ``coded_text.coded_string``
        (exact, after stripping surrounding white space) and its value equals
        ``coded_text.value`` once both are stripped of surrounding white space
        (``str.strip()``: Unicode white space, NBSP included; ZWNJ is *not* white space).
        Otherwise the comparison is exact: case, Arabic/Persian letters, inner spaces and
        zero-width characters all count.

        Bad input raises :class:`InvalidInputError` naming the field (the client's own
        checks); a coded_text of another terminology raises it too (field
        ``coded_text.terminology_id``).
        """
        checked = check_coded_text(coded_text)
        if checked.terminology_id.lower() != self._info.key:
            raise InvalidInputError(
                "coded_text.terminology_id",
                f"{checked.terminology_id!r} is not this index's terminology "
                f"({self._info.terminology_id!r})",
            )
        return self.match(checked.coded_string, checked.value) is True

    def answer(self, item: Any) -> ValidationOutcome | None:
        """:meth:`validate` for bulk runs: the outcome, or None when this index cannot
        answer (the item names another terminology, or the snapshot lacks its code: the
        gateway may have it). Never raises: bad input is an outcome with
        :class:`InvalidInputError` set (``valid`` None), as ``validate_many`` yields it.

        The common case (a code of the snapshot with its exact value, as a client sends
        it) is two dict lookups and one comparison."""
        if type(item) is CodedText:
            try:
                expected = self._fast.get(item.coded_string)
                known = item.terminology_id in self._spellings
            except TypeError:  # an unhashable field: the checks below name it
                expected, known = None, False
            value = item.value
            if expected is not None and known and type(value) is str:
                if value == expected:
                    return make_outcome(item, True)
                # terminology and code are known good: only the value is left to check
                stripped = value.strip()
                if stripped and len(stripped) <= MAX_VALUE_LENGTH and stripped.isprintable():
                    return make_outcome(item, stripped == expected)
        return self._answer_checked(item)

    def _answer_checked(self, item: Any) -> ValidationOutcome | None:
        try:
            checked = check_coded_text(item)
        except InvalidInputError as exc:
            return ValidationOutcome(item, None, exc)
        if checked.terminology_id.lower() != self._info.key:
            return None
        spelling = item.terminology_id
        if type(spelling) is str and len(self._spellings) < _SPELLINGS_SIZE:
            self._spellings.add(spelling)
        match = self.match(checked.coded_string, checked.value)
        return None if match is None else make_outcome(item, match)

    def match(self, code: str, value: str) -> bool | None:
        """For inputs already checked and stripped: True (same value), False (the code has
        another value), None (the snapshot does not have the code)."""
        stored = self._values.get(code)
        if stored is None:
            return None
        return stored.strip() == value

    def search(self, text: str, *, normalize: bool = True, limit: int = 50) -> list[CodedText]:
        """Terms whose value contains ``text`` (see :meth:`SnapshotStore.search_value`)."""
        if not isinstance(text, str):
            raise InvalidInputError("text", f"must be a string, got {type(text).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError("limit", f"must be an int >= 1, got {limit!r}")
        if normalize:
            query = normalize_text(text)
            words = query.split(" ")
            haystack = self._normalized_values()
        else:
            query = text
            words = [text]
            haystack = list(self._values.items())
        if not query.strip():
            raise InvalidInputError("text", "must not be blank (after normalisation)")
        ranked: list[tuple[int, str]] = []
        for code, candidate in haystack:
            if query in candidate:
                rank = 0 if candidate == query else 1 if candidate.startswith(query) else 2
            elif len(words) > 1 and all(word in candidate for word in words):
                rank = 3
            else:
                continue
            ranked.append((rank, code))
        ranked.sort()
        label = self._info.terminology_id
        return [CodedText(self._values[code], label, code) for _, code in ranked[:limit]]

    def _normalized_values(self) -> list[tuple[str, str]]:
        if self._normalized is None:
            self._normalized = [(code, normalize_text(v)) for code, v in self._values.items()]
        return self._normalized

    def _apply(self, changes: Mapping[str, str], info: SnapshotInfo) -> None:
        """Take a sync's new and changed terms (already committed to the file)."""
        self._values.update(changes)
        fast = _fast_entries(changes)
        for code in changes:
            self._fast.pop(code, None)
        self._fast.update(fast)
        if changes:
            self._normalized = None
        self._info = info
