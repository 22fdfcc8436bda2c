"""An optional per-client TTL + LRU cache of answers, off by default.

Bulk files repeat the same drug codes thousands of times; with a cache, each distinct
(operation, arguments) pair costs one request per ``ttl``. Every MAXA operation is a
read-only lookup, so a cached answer is as good as a fresh one until the registry
changes: pick a ``ttl`` no longer than you can accept a stale answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final

__all__ = ["DEFAULT_CACHED_OPERATIONS", "MISSING", "ResponseCache"]

#: Lookups and validations: small answers, heavily repeated in bulk work.
DEFAULT_CACHED_OPERATIONS = frozenset({"Terminology", "TerminologyValueByVersion", "ValidateCts"})

#: What :meth:`ResponseCache.get` returns for a miss (None can be a cached answer).
MISSING: Final[Any] = object()


class ResponseCache:
    """At most ``maxsize`` answers, each kept ``ttl`` seconds, least recently used out first."""

    def __init__(
        self,
        *,
        maxsize: int = 100_000,
        ttl: float = 300.0,
        operations: frozenset[str] = DEFAULT_CACHED_OPERATIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, got {maxsize!r}")
        if not ttl > 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl!r}")
        self.maxsize = maxsize
        self.ttl = ttl
        self.operations = operations
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The cached answer, or :data:`MISSING`."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return MISSING
        expires_at, value = entry
        if expires_at <= self._clock():
            del self._entries[key]
            self.misses += 1
            return MISSING
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
