"""Hooks into a client's calls: what a backend adds without forking (audit logs, a
correlation header, the gateway's request id on success).

``MaxaClient(on_request=..., on_response=...)`` (or ``client.with_options(...)``):

* ``on_request(event)`` runs before every attempt. ``event.headers`` is a dict of extra
  headers to send with it; the hook may add to it. The headers the protocol needs
  (``Authorization``, ``pid``, ``Content-Type``) cannot be replaced.
* ``on_response(event)`` runs once per call, when it ends, answered or failed: the
  gateway's ``requestId``, the HTTP status, the attempts and what made it retry, the
  time, whether the answer came from the cache or from an identical call in flight.

Hooks are plain functions, run on the event loop: keep them quick. One that raises is
logged and ignored: a hook never breaks a call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import attrs

from .errors import MaxaError

__all__ = ["Hooks", "RequestEvent", "ResponseEvent"]

log = logging.getLogger("maxa_async.client")

#: Headers a hook cannot set: the protocol's own.
RESERVED_HEADERS: Final = frozenset({"authorization", "pid", "content-type", "content-length"})


@attrs.frozen
class RequestEvent:
    """One attempt about to be sent."""

    operation: str  # the wire name, e.g. "ValidateCts"
    attempt: int  # 1 for the first send
    headers: dict[str, str] = attrs.field(factory=dict)  # extra headers: add to it
    call: int = 0  # the call's number in this client (its ResponseEvent has the same)


@attrs.frozen
class ResponseEvent:
    """One call that ended. ``status`` is None when no answer came (a transport error,
    a cache hit, an identical call in flight answered it)."""

    operation: str
    status: int | None
    request_id: str | None  # the gateway's ``requestId`` header of the last answer
    attempts: int  # sends this call made (0 for a cache hit or a coalesced call)
    elapsed: float  # seconds from the call to its end
    cached: bool = False
    coalesced: bool = False
    error: MaxaError | None = None
    call: int = 0  # the call's number in this client (as in its RequestEvents)
    terminology_id: str | None = None  # the terminology asked about
    queued: float = 0.0  # seconds it waited for a slot, its turn in the pace, a cooldown
    #: The errors that made the call send again, in order: one per retry, and a 401
    #: replayed with a fresh token (empty when the first send was answered).
    retried: tuple[MaxaError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen
class Hooks:
    on_request: Callable[[RequestEvent], None] | None = None
    on_response: Callable[[ResponseEvent], None] | None = None

    def request(self, event: RequestEvent) -> dict[str, str]:
        """Run ``on_request``; the extra headers it asked for (reserved ones dropped)."""
        if self.on_request is None:
            return {}
        try:
            self.on_request(event)
        except Exception:
            log.warning("on_request hook failed; the call goes on", exc_info=True)
            return {}
        extra = {}
        for name, value in event.headers.items():
            if name.lower() in RESERVED_HEADERS:
                log.warning("on_request hook may not set the %s header; ignored", name)
            elif isinstance(value, str) and all(" " <= ch <= "~" for ch in value):
                extra[name] = value
            else:
                log.warning("on_request hook set %s to a value that is not printable ASCII", name)
        return extra

    def response(self, event: ResponseEvent) -> None:
        if self.on_response is None:
            return
        try:
            self.on_response(event)
        except Exception:
            log.warning("on_response hook failed; the call goes on", exc_info=True)
