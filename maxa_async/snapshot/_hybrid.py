"""HybridValidator: the snapshot first, the gateway only for what the snapshot lacks."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Protocol

import attrs

from ..bulk import ordered
from ..errors import InvalidInputError, MaxaError
from ..models import CodedText, ValidationOutcome
from ..operations import check_coded_text
from ._index import TerminologyIndex
from ._store import SnapshotStore

__all__ = ["HybridStats", "HybridValidator", "ValidatingClient"]


class _Ask(enum.Enum):
    """What an item needs when the snapshot cannot answer it."""

    GATEWAY = "gateway"  # the snapshot lacks the code or the terminology, or is too old
    LOAD = "load"  # the terminology is not in memory yet: load it, then decide again


class ValidatingClient(Protocol):
    """What the hybrid needs from a client (:class:`maxa_async.MaxaClient` is one)."""

    async def validate_cts(self, coded_text: CodedText) -> bool: ...


@attrs.define
class HybridStats:
    """Exact counts of what a :class:`HybridValidator` did. Invariants::

    items         == invalid_input + offline_hits + online_calls
    offline_hits  == offline_valid + offline_invalid
    online_calls  == code_misses + terminology_misses + stale_rechecks
                  == online_valid + online_invalid + online_errors
    """

    items: int = 0
    #: refused by the client's input checks: no lookup, no request
    invalid_input: int = 0
    offline_hits: int = 0
    offline_valid: int = 0
    offline_invalid: int = 0
    #: ``validate_cts`` calls made (each is one request unless the client coalesces
    #: identical concurrent calls, answers from its cache, or retries)
    online_calls: int = 0
    online_valid: int = 0
    online_invalid: int = 0
    online_errors: int = 0
    #: the snapshot lacks the code (it may be newer than the snapshot)
    code_misses: int = 0
    #: no snapshot of the terminology at all
    terminology_misses: int = 0
    #: the snapshot has the code with another value but is older than ``max_age``
    stale_rechecks: int = 0

    def as_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


class HybridValidator:
    """ValidateCts from the snapshot, asking the gateway only on a miss.

    For each item, after the client's input checks (bad input: an outcome with
    :class:`InvalidInputError`, nothing asked):

    - the snapshot has the code with the same value (rules of
      :meth:`SnapshotStore.validate`): **True, offline**;
    - the snapshot has the code with a **different value**: **False, offline**, and
      definitive: the gateway validates against its latest version, which the snapshot
      mirrors, so it could only say True if the value changed upstream since the last
      sync. With ``max_age`` set and the snapshot last synced longer ago than that, the
      gateway is asked instead (``stale_rechecks``);
    - the snapshot lacks the code (``code_misses``: it may be newer than the snapshot),
      or there is no snapshot of the terminology (``terminology_misses``): **the gateway
      is asked** with ``client.validate_cts``; its answer, or its error (an outcome with
      ``error`` set), is the outcome.

    A True from the snapshot is never rechecked, whatever its age: values of existing
    codes change rarely, and ``sync`` keeps them current; bound that staleness by
    syncing. Online answers are not written into the snapshot (``sync`` does that), so a
    code missing from it is asked each time: give the client a ``ResponseCache`` to
    answer repeats from memory. ``stats`` counts everything exactly (see
    :class:`HybridStats`).
    """

    def __init__(
        self,
        store: SnapshotStore,
        client: ValidatingClient,
        *,
        max_age: dt.timedelta | float | None = None,
        window: int = 1024,
    ) -> None:
        if isinstance(max_age, dt.timedelta):
            max_age = max_age.total_seconds()
        if max_age is not None and (
            isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age < 0
        ):
            raise InvalidInputError("max_age", "must be a timedelta, seconds >= 0, or None")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidInputError("window", "must be an int >= 1")
        self.store = store
        self.client = client
        self.max_age: float | None = None if max_age is None else float(max_age)
        self.window = window
        self.stats = HybridStats()

    def __repr__(self) -> str:
        return f"HybridValidator({self.store!r}, max_age={self.max_age!r}, stats={self.stats!r})"

    def _now(self, item: Any) -> ValidationOutcome | _Ask:
        """The offline outcome, or what the item needs (:class:`_Ask`). Counted here
        (except for a load, after which it is decided again)."""
        index = (
            self.store.loaded_index(item.terminology_id) if isinstance(item, CodedText) else None
        )
        if index is None:
            return self._now_unloaded(item)
        stats = self.stats
        outcome = index.answer(item)
        if outcome is None:
            stats.items += 1
            stats.code_misses += 1
            stats.online_calls += 1
            return _Ask.GATEWAY
        if outcome.error is not None:
            stats.items += 1
            stats.invalid_input += 1
            return outcome
        return self._offline(outcome, index)

    def _now_unloaded(self, item: Any) -> ValidationOutcome | _Ask:
        stats = self.stats
        try:
            checked = check_coded_text(item)
        except InvalidInputError as exc:
            stats.items += 1
            stats.invalid_input += 1
            return ValidationOutcome(item, None, exc)
        if not self.store.known_missing(checked.terminology_id):
            return _Ask.LOAD
        stats.items += 1
        stats.terminology_misses += 1
        stats.online_calls += 1
        return _Ask.GATEWAY

    def _offline(
        self, outcome: ValidationOutcome, index: TerminologyIndex
    ) -> ValidationOutcome | _Ask:
        stats = self.stats
        stats.items += 1
        if outcome.valid:
            stats.offline_hits += 1
            stats.offline_valid += 1
            return outcome
        if self.max_age is not None and index.info.age() > self.max_age:
            stats.stale_rechecks += 1
            stats.online_calls += 1
            return _Ask.GATEWAY
        stats.offline_hits += 1
        stats.offline_invalid += 1
        return outcome

    async def _later(self, item: Any, pending: _Ask) -> ValidationOutcome:
        while pending is _Ask.LOAD:
            await self.store.find_index(item.terminology_id)
            decided = self._now(item)
            if isinstance(decided, ValidationOutcome):
                return decided
            pending = decided
        return await self._online(item)

    async def _online(self, item: Any) -> ValidationOutcome:
        stats = self.stats
        try:
            valid = await self.client.validate_cts(item)
        except MaxaError as exc:
            stats.online_errors += 1
            return ValidationOutcome(item, None, exc)
        if valid:
            stats.online_valid += 1
        else:
            stats.online_invalid += 1
        return ValidationOutcome(item, valid)

    async def validate(self, coded_text: CodedText) -> bool:
        """One item; bad input and gateway errors raise (as ``client.validate_cts`` does)."""
        outcome = self._now(coded_text)
        if not isinstance(outcome, ValidationOutcome):
            outcome = await self._later(coded_text, outcome)
        if outcome.error is not None:
            raise outcome.error
        return outcome.valid is True

    def validate_many(
        self,
        items: Iterable[CodedText] | AsyncIterable[CodedText],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[ValidationOutcome]:
        """One outcome per item, in input order. Offline answers cost no task; gateway
        calls run concurrently, at most ``window`` items in progress (the client's own
        ``max_concurrency`` bounds the requests in flight)."""
        return ordered(
            items,
            self._now,
            self._later,
            needs_worker=_asks_the_gateway,
            window=self.window,
            workers=self.window,
            progress=progress,
        )


def _asks_the_gateway(pending: _Ask) -> bool:
    """A gateway call runs alongside the next items; a load is awaited in turn."""
    return pending is _Ask.GATEWAY
