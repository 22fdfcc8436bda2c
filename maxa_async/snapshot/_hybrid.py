"""HybridValidator: the snapshot first, the gateway only for what the snapshot lacks."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Protocol

import attrs

from ..errors import InvalidInputError, MaxaError
from ..models import CodedText, ValidationOutcome
from ..operations import MAX_VALUE_LENGTH, check_coded_text
from ._index import TerminologyIndex
from ._store import SnapshotStore, _NeedLoad

__all__ = ["HybridStats", "HybridValidator", "ValidatingClient"]

_END: Any = object()


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

    def _decide(self, item: Any) -> ValidationOutcome | _NeedLoad | None:
        """The offline outcome, None when the gateway must be asked, or the terminology to
        load first. Counted here (except for a load, after which it is decided again)."""
        if type(item) is CodedText:
            try:
                index = self.store._memo[item.terminology_id]
                expected = index._fast.get(item.coded_string)
            except (KeyError, TypeError):
                expected = None
            value = item.value
            if expected is not None and type(value) is str:
                if value == expected:
                    return self._offline(item, index, True)
                stripped = value.strip()
                if stripped and len(stripped) <= MAX_VALUE_LENGTH:
                    return self._offline(item, index, stripped == expected)
        return self._decide_slow(item)

    def _decide_slow(self, item: Any) -> ValidationOutcome | _NeedLoad | None:
        stats = self.stats
        try:
            checked = check_coded_text(item)
        except InvalidInputError as exc:
            stats.items += 1
            stats.invalid_input += 1
            return ValidationOutcome(item, None, exc)
        store = self.store
        key = checked.terminology_id.lower()
        index = store._indexes.get(key)
        if index is None:
            if key not in store._absent:
                return _NeedLoad(key)
            stats.items += 1
            stats.terminology_misses += 1
            stats.online_calls += 1
            return None
        store._remember(item.terminology_id, index)
        match = index.match(checked.coded_string, checked.value)
        if match is None:
            stats.items += 1
            stats.code_misses += 1
            stats.online_calls += 1
            return None
        return self._offline(item, index, match)

    def _offline(self, item: Any, index: TerminologyIndex, match: bool) -> ValidationOutcome | None:
        stats = self.stats
        stats.items += 1
        if match:
            stats.offline_hits += 1
            stats.offline_valid += 1
            return ValidationOutcome(item, True)
        if self.max_age is not None and index.info.age() > self.max_age:
            stats.stale_rechecks += 1
            stats.online_calls += 1
            return None
        stats.offline_hits += 1
        stats.offline_invalid += 1
        return ValidationOutcome(item, False)

    async def _decide_loading(self, item: Any) -> ValidationOutcome | None:
        decided = self._decide(item)
        while isinstance(decided, _NeedLoad):
            await self.store._load(decided.key)
            decided = self._decide(item)
        return decided

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
        outcome = await self._decide_loading(coded_text)
        if outcome is None:
            outcome = await self._online(coded_text)
        if outcome.error is not None:
            raise outcome.error
        return outcome.valid is True

    async def validate_many(
        self,
        items: Iterable[CodedText] | AsyncIterable[CodedText],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[ValidationOutcome]:
        """One outcome per item, in input order. Offline answers cost no task; gateway
        calls run concurrently, at most ``window`` items in progress (the client's own
        ``max_concurrency`` bounds the requests in flight)."""
        plain = None if isinstance(items, AsyncIterable) else iter(items)
        source = items.__aiter__() if isinstance(items, AsyncIterable) else None
        pending: collections.deque[ValidationOutcome | asyncio.Task[ValidationOutcome]]
        pending = collections.deque()
        decide = self._decide
        exhausted = False
        taken = done = 0
        try:
            while True:
                while not exhausted and len(pending) < self.window:
                    if plain is not None:
                        item = next(plain, _END)
                        taken += 1
                        if not taken % 4096:
                            await asyncio.sleep(0)  # a long plain iterable must not starve others
                    else:
                        assert source is not None
                        item = await anext(source, _END)
                    if item is _END:
                        exhausted = True
                        break
                    outcome = decide(item)
                    if isinstance(outcome, _NeedLoad):
                        outcome = await self._decide_loading(item)
                    if outcome is None:
                        pending.append(asyncio.ensure_future(self._online(item)))
                    elif pending:
                        pending.append(outcome)
                    else:  # nothing ahead of it: out at once
                        done += 1
                        if progress is not None:
                            progress(done)
                        yield outcome
                if not pending:
                    return
                head = pending.popleft()
                result = head if isinstance(head, ValidationOutcome) else await head
                done += 1
                if progress is not None:
                    progress(done)
                yield result
        finally:
            tasks = [p for p in pending if isinstance(p, asyncio.Task)]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
