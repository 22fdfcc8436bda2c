"""What the fake gateway saw, for tests to assert on."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["GatewayStats"]


@attrs.define(kw_only=True)
class GatewayStats:
    """Live counters of one fake gateway (``gw.stats``; ``GET /__stats`` out of process).

    MAXA counters (``requests`` ... ``peak_in_flight``) count the seven operations
    only; the token endpoint has its own (``*_grants``, ``token_requests``,
    ``token_responses_by_status``). Requests to the ``/__...`` control endpoints
    are not counted.
    """

    #: Successful password grants (tokens issued).
    password_grants: int = 0
    #: Successful refresh grants.
    refresh_grants: int = 0
    #: Token requests refused: bad client, bad user/password, unknown or expired
    #: refresh token, missing or unsupported grant.
    rejected_grants: int = 0
    #: Every request to ``/oauth/token``, whatever became of it.
    token_requests: int = 0
    #: HTTP status -> count, for the token endpoint.
    token_responses_by_status: dict[int, int] = attrs.field(factory=dict)
    #: Every MAXA operation request received (before any fault or check).
    requests: int = 0
    #: Wire operation name (``"ValidateCts"``) -> count.
    requests_by_operation: dict[str, int] = attrs.field(factory=dict)
    #: HTTP status -> count, for MAXA operation responses (dropped ones have none).
    responses_by_status: dict[int, int] = attrs.field(factory=dict)
    #: Answers with outer 200 and inner 404 (not found, or an empty list).
    not_found: int = 0
    #: Refusals by a limiter (rate, quota, concurrency cap, whatever status it answers
    #: with) and ``permanent_429`` answers.
    rate_limited: int = 0
    #: Times every access token was revoked at once (``revoke_every``, ``revoke_all_tokens``).
    revocations: int = 0
    #: Connections closed without a response (``drop_rate``).
    dropped: int = 0
    #: MAXA requests whose client hung up before the answer (their handling stops then).
    client_closed: int = 0
    #: MAXA requests being handled now.
    in_flight: int = 0
    #: Highest ``in_flight`` seen since start or the last reset.
    peak_in_flight: int = 0
    #: Requests that held a place under the concurrency cap, and the seconds they held
    #: it in all (arrival to answer): the cap admits ``limit / (seconds / holds)`` per
    #: second at most, whatever the configured latency says.
    cap_holds: int = 0
    cap_hold_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able copy (dict keys stay ints here; ``/__stats`` spells them as strings)."""
        return {
            "password_grants": self.password_grants,
            "refresh_grants": self.refresh_grants,
            "rejected_grants": self.rejected_grants,
            "token_requests": self.token_requests,
            "token_responses_by_status": dict(self.token_responses_by_status),
            "requests": self.requests,
            "requests_by_operation": dict(self.requests_by_operation),
            "responses_by_status": dict(self.responses_by_status),
            "not_found": self.not_found,
            "rate_limited": self.rate_limited,
            "revocations": self.revocations,
            "dropped": self.dropped,
            "client_closed": self.client_closed,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "cap_holds": self.cap_holds,
            "cap_hold_seconds": self.cap_hold_seconds,
        }

    def reset(self) -> None:
        """Zero every counter; ``in_flight`` stays live and ``peak_in_flight`` restarts from it."""
        in_flight = self.in_flight
        fresh = GatewayStats()
        for field in attrs.fields(GatewayStats):
            setattr(self, field.name, getattr(fresh, field.name))
        self.in_flight = in_flight
        self.peak_in_flight = in_flight
