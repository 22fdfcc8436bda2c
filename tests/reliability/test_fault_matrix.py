"""The fault matrix: every operation x every gateway fault.

For each pair the caller gets either the right answer (the one the same client got
before the fault) or the right typed error, within its deadline; the gateway saw the
number of sends the retry policy promises; and once the fault is off, the same client
answers the next call correctly with no slot leaked.

Faults come from the fake gateway's knobs where it has them; the few it cannot make
(410, 400, a truncated body, a body cut mid-way) come from a relay in front of it
(``_proxy.FaultProxy``). ``docs/fault-matrix.md`` is generated from the tables below
(``python -m tests.reliability.test_fault_matrix > docs/fault-matrix.md``) and a test
checks that it is current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import maxa_async as maxa
from maxa_async.errors import STATUS_TABLE
from maxa_async.testing import FakeGateway, GatewayConfig

from ._proxy import FaultProxy

ATTEMPTS = 3
DEADLINE = 5.0
#: Upper bound on any call's elapsed time: its deadline plus slack for a loaded 2-core box.
SLACK = 5.0
LATENCY_TIMEOUT = 0.4

DOC = Path(__file__).resolve().parents[2] / "docs" / "fault-matrix.md"

Since = maxa.JalaliDateTime


@attrs.frozen
class Op:
    method: str
    wire: str
    invoke: Callable[[maxa.MaxaClient], Awaitable[Any]]


OPS: tuple[Op, ...] = (
    Op("terminology", "Terminology", lambda c: c.terminology("thritaEHR.Religion", "1")),
    Op(
        "search_terminology",
        "SearchTerminology",
        lambda c: c.search_terminology("ContactType", Since(1391, 1, 15)),
    ),
    Op(
        "validate_cts",
        "ValidateCts",
        lambda c: c.validate_cts(maxa.CodedText("تلفن منزل", "ContactType", "1")),
    ),
    Op("cts_terminologies", "CtsTerminologies", lambda c: c.cts_terminologies(Since(1390, 10, 10))),
    Op(
        "terminology_value_by_version",
        "TerminologyValueByVersion",
        lambda c: c.terminology_value_by_version("ContactType", "6", version="1"),
    ),
    Op(
        "terminologies_term_by_version",
        "TerminologiesTermByVersion",
        lambda c: c.terminologies_term_by_version("ContactType", version="1"),
    ),
    Op(
        "terminology_versions",
        "TerminologyVersions",
        lambda c: c.terminology_versions("ContactType"),
    ),
)

#: What each operation answers for the arguments above (checked against the baseline).
EXPECTED_SHAPE: dict[str, Callable[[Any], bool]] = {
    "Terminology": lambda r: r == "اسلام",
    "SearchTerminology": lambda r: len(r) == 14,
    "ValidateCts": lambda r: r is True,
    "CtsTerminologies": lambda r: "eRX" in r and len(r) == 24,
    "TerminologyValueByVersion": lambda r: r == "پست الکترونیکی شخصی",
    "TerminologiesTermByVersion": lambda r: len(r) == 14,
    "TerminologyVersions": lambda r: len(r) == 1 and r[0].is_last,
}


@attrs.frozen
class Ctx:
    gw: FakeGateway
    proxy: FaultProxy
    client: maxa.MaxaClient
    op: Op


Step = Callable[[Ctx], Awaitable[None]]


async def _nothing(ctx: Ctx) -> None:
    return None


def _knobs(**knobs: Any) -> Step:
    async def step(ctx: Ctx) -> None:
        ctx.gw.config.update(**knobs)

    return step


def _relay(fault: str) -> Step:
    async def step(ctx: Ctx) -> None:
        ctx.proxy.arm(fault)

    return step


async def _revoke(ctx: Ctx) -> None:
    ctx.gw.revoke_all_tokens()


async def _refresh_during_request(ctx: Ctx) -> None:
    # The token (lifetime 2 s, refresh-ahead at 30%) is due; the next call starts the
    # refresh in the background and sends with the old token, which the refresh revokes
    # while the request is held 0.3 s at the gateway: a 401 in flight.
    await asyncio.sleep(0.65)
    ctx.gw.config.update(refresh_invalidates_old=True, latency=0.3)


async def _refresh_token_dead(ctx: Ctx) -> None:
    await asyncio.sleep(0.25)  # past refresh_token_ttl
    ctx.gw.revoke_all_tokens()


async def _credentials_withdrawn(ctx: Ctx) -> None:
    await asyncio.sleep(0.25)
    ctx.gw.config.password = "withdrawn-password"
    ctx.gw.revoke_all_tokens()


async def _credentials_restored(ctx: Ctx) -> None:
    ctx.gw.config.password = "maxa-test-password"
    # The client remembers a rejected grant for a while (no grant per call); end the pause.
    ctx.client.tokens.retry_now()


@attrs.frozen
class Fault:
    id: str
    label: str
    made_by: str
    on: Step
    off: Step = _nothing
    #: None: the caller gets the answer; else the error class it gets.
    error: type[maxa.MaxaError] | None = None
    status: int | None = None
    #: MAXA sends the gateway sees for one call (None: not asserted, see ``pair``).
    sends: int | None = 1
    #: Sends for Terminology, the one GET, where they differ (aiohttp replays an
    #: idempotent request once, by itself, when the server drops the connection).
    sends_get: int | None = None
    retried: str = "no"
    #: Two concurrent calls, repeated until the gateway answered at least one 429
    #: (a fixed one-second window can split a pair).
    pair: bool = False
    gateway: dict[str, Any] = attrs.field(factory=dict)
    client: dict[str, Any] = attrs.field(factory=dict)
    via_relay: bool = False
    words: str | None = None

    @property
    def outcome(self) -> str:
        if self.error is None:
            return "answer"
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.error.__name__}{status}"


def _service(code: int) -> Fault:
    return Fault(
        f"{code}",
        f"{code} {STATUS_TABLE[code].message}",
        f"fake: error_rate=1, error_statuses=[{code}]",
        _knobs(error_rate=1.0, error_statuses=(code,)),
        _knobs(error_rate=0.0),
        error=maxa.ServiceError,
        status=code,
        sends=ATTEMPTS,
        retried=f"yes, {ATTEMPTS} sends (backoff)",
    )


FAULTS: tuple[Fault, ...] = (
    Fault(
        "token-revoked",
        "access token revoked",
        "fake: revoke_all_tokens()",
        _revoke,
        sends=2,
        retried="replayed once after a refresh grant",
    ),
    Fault(
        "refresh-invalidates-old",
        "refresh-ahead revokes the token of a request in flight",
        "fake: token_ttl=2, refresh_invalidates_old, latency=0.3",
        _refresh_during_request,
        _knobs(refresh_invalidates_old=False, latency=0.0),
        sends=2,
        retried="replayed once with the new token",
        gateway={"token_ttl": 2.0},
        client={"refresh_fraction": 0.3},
    ),
    Fault(
        "refresh-rejected",
        "refresh token rejected (expired)",
        "fake: refresh_token_ttl=0.2, revoke_all_tokens()",
        _refresh_token_dead,
        sends=2,
        retried="replayed once after a password grant",
        gateway={"refresh_token_ttl": 0.2},
    ),
    Fault(
        "credentials-rejected",
        "refresh and password grants both rejected",
        "fake: refresh_token_ttl=0.2, password changed, revoke_all_tokens()",
        _credentials_withdrawn,
        _credentials_restored,
        error=maxa.AuthenticationError,
        status=400,
        sends=1,
        retried="no (one refresh, one password grant)",
        gateway={"refresh_token_ttl": 0.2},
        words="rejected the grant",
    ),
    Fault(
        "429-retry-after",
        "429 with Retry-After",
        "fake: rps_limit=1",
        _knobs(rps_limit=1.0),
        _knobs(rps_limit=None),
        sends=None,
        retried="yes, after its Retry-After (the pace slows; other callers go on)",
        pair=True,
    ),
    Fault(
        "429-no-retry-after",
        "429 without Retry-After",
        "fake: rps_limit=1, retry_after=false",
        _knobs(rps_limit=1.0, retry_after=False),
        _knobs(rps_limit=None, retry_after=True),
        error=maxa.RateLimitedError,
        status=429,
        sends=None,
        retried=f"yes, up to {ATTEMPTS} sends (backoff); answer if the window frees",
        pair=True,
    ),
    Fault(
        "permanent-429",
        "permanent 429 (no permission for the service)",
        "fake: permanent_429",
        _knobs(permanent_429=True),
        _knobs(permanent_429=False),
        error=maxa.RateLimitedError,
        status=429,
        sends=ATTEMPTS,
        retried=f"yes, {ATTEMPTS} sends; message names the missing permission",
        words="permission",
    ),
    Fault(
        "403",
        "403 source IP not registered",
        "fake: blocked_ip",
        _knobs(blocked_ip=True),
        _knobs(blocked_ip=False),
        error=maxa.ForbiddenError,
        status=403,
        words="registered",
    ),
    Fault(
        "410",
        "410 https required",
        "relay: HTTP 410 envelope",
        _relay("410"),
        error=maxa.HttpsRequiredError,
        status=410,
        via_relay=True,
        words="https",
    ),
    Fault(
        "400",
        "400 bad request",
        "relay: HTTP 400 envelope",
        _relay("400"),
        error=maxa.BadRequestError,
        status=400,
        via_relay=True,
    ),
    _service(500),
    _service(503),
    Fault(
        "503-back-later",
        "503 with a Retry-After of 2 minutes (maintenance)",
        "fake: error_rate=1, error_statuses=[503], error_retry_after=120",
        _knobs(error_rate=1.0, error_statuses=(503,), error_retry_after=120.0),
        _knobs(error_rate=0.0, error_retry_after=None),
        error=maxa.ServiceError,
        status=503,
        sends=1,
        retried="no: back later than the policy waits (60 s); `retry_after` says when",
    ),
    _service(504),
    _service(520),
    Fault(
        "dropped",
        "connection dropped without a reply",
        "fake: drop_rate=1",
        _knobs(drop_rate=1.0),
        _knobs(drop_rate=0.0),
        error=maxa.TransportError,
        sends=ATTEMPTS,
        sends_get=2 * ATTEMPTS,
        retried=f"yes, {ATTEMPTS} attempts",
    ),
    Fault(
        "latency",
        f"latency 2 s beyond the {LATENCY_TIMEOUT} s per-attempt timeout",
        "fake: latency=2",
        _knobs(latency=2.0),
        _knobs(latency=0.0),
        error=maxa.TransportError,
        sends=ATTEMPTS,
        retried=f"yes, {ATTEMPTS} sends",
        client={"timeout": maxa.Timeout(request=LATENCY_TIMEOUT, connect=LATENCY_TIMEOUT)},
        words="in time",
    ),
    Fault(
        "html",
        "HTML error page (proxy's 502)",
        "fake: html_rate=1",
        _knobs(html_rate=1.0),
        _knobs(html_rate=0.0),
        error=maxa.ProtocolError,
        status=502,
        sends=ATTEMPTS,
        retried=f"yes, {ATTEMPTS} sends (a 5xx page)",
        words="not JSON",
    ),
    Fault(
        "truncated-json",
        "truncated JSON (honest Content-Length)",
        "relay: real answer cut in half",
        _relay("truncated-json"),
        error=maxa.ProtocolError,
        status=200,
        via_relay=True,
        words="not JSON",
    ),
    Fault(
        "cut-mid-body",
        "connection cut mid-body",
        "relay: Content-Length of the whole, half sent",
        _relay("cut-mid-body"),
        error=maxa.TransportError,
        sends=ATTEMPTS,
        retried=f"yes, {ATTEMPTS} sends",
        via_relay=True,
    ),
)


# --------------------------------------------------------------------------- harness


def _expected_sends(op: Op, fault: Fault) -> int | None:
    if op.wire == "Terminology" and fault.sends_get is not None:
        return fault.sends_get
    return fault.sends


def _sends(ctx: Ctx, fault: Fault) -> int:
    if fault.via_relay:
        return ctx.proxy.sends[ctx.op.wire]
    return ctx.gw.stats.requests_by_operation.get(ctx.op.wire, 0)


def _check_error(exc: BaseException, fault: Fault, op: Op) -> None:
    assert fault.error is not None
    assert isinstance(exc, fault.error), repr(exc)
    assert type(exc) is fault.error  # the exact class, not a sibling's parent
    assert exc.status == fault.status, repr(exc)
    expected_operation = "token" if fault.error is maxa.AuthenticationError else op.wire
    assert exc.operation == expected_operation, repr(exc)
    if fault.words is not None:
        assert fault.words in str(exc), str(exc)


async def _run_pair(ctx: Ctx) -> list[Any]:
    results: list[Any] = []
    for _ in range(3):
        before = ctx.gw.stats.rate_limited
        results += await asyncio.gather(
            ctx.op.invoke(ctx.client), ctx.op.invoke(ctx.client), return_exceptions=True
        )
        if ctx.gw.stats.rate_limited > before:
            break
    return results


@pytest.fixture
async def relay_and_gateway() -> AsyncIterator[tuple[FakeGateway, FaultProxy]]:
    async with FakeGateway(GatewayConfig(seed=11)) as gw, FaultProxy(gw.base_url) as proxy:
        yield gw, proxy


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
@pytest.mark.parametrize("op", OPS, ids=[o.method for o in OPS])
async def test_fault_matrix(op: Op, fault: Fault) -> None:
    async with (
        FakeGateway(GatewayConfig(seed=11, **fault.gateway)) as gw,
        FaultProxy(gw.base_url) as proxy,
    ):
        options: dict[str, Any] = {
            "retry": maxa.RetryPolicy(attempts=ATTEMPTS, backoff=False, deadline=DEADLINE),
            "coalesce": False,
            **fault.client,
        }
        base_url = proxy.base_url if fault.via_relay else gw.base_url
        async with maxa.MaxaClient(gw.credentials, base_url=base_url, **options) as client:
            ctx = Ctx(gw, proxy, client, op)
            baseline = await op.invoke(client)
            assert EXPECTED_SHAPE[op.wire](baseline), baseline
            gw.reset_stats()
            proxy.sends.clear()
            await fault.on(ctx)

            started = time.monotonic()
            if fault.pair:
                results = await _run_pair(ctx)
            else:
                try:
                    results = [await op.invoke(client)]
                except maxa.MaxaError as exc:
                    results = [exc]
            elapsed = time.monotonic() - started
            assert elapsed < DEADLINE + SLACK, elapsed

            for result in results:
                if isinstance(result, BaseException):
                    if fault.error is None:
                        raise AssertionError(f"{fault.id}: expected the answer") from result
                    _check_error(result, fault, op)
                else:
                    # an answer is right even under a fault that may end in an error
                    # (a 429 window that frees in time)
                    assert result == baseline
            if fault.error is not None and not fault.pair:
                assert isinstance(results[0], fault.error)
            expected_sends = _expected_sends(op, fault)
            if expected_sends is not None:
                assert _sends(ctx, fault) == expected_sends, (_sends(ctx, fault), expected_sends)
            if fault.pair:
                assert gw.stats.rate_limited >= 1
                assert client.stats.retries.get("429", 0) >= 1
                if fault.error is not None:
                    # "answer or RateLimitedError": the paced retries may meet the next
                    # window (each result was checked against the baseline or the error
                    # above); a refusal carries no Retry-After the gateway did not send.
                    assert all(
                        r.retry_after is None
                        for r in results
                        if isinstance(r, maxa.RateLimitedError)
                    )
                else:
                    # A one-second Retry-After slows the pace and that call's retry; it
                    # pauses nobody else (no client-wide cooldown).
                    assert client.stats.cooldowns == 0
                    assert client.limiter.pacer.refusals >= 1
            if fault.id in ("token-revoked", "refresh-invalidates-old", "refresh-rejected"):
                assert client.stats.replays_after_401 >= 1
                assert gw.stats.responses_by_status.get(401, 0) >= 1
            if fault.id == "refresh-rejected":
                assert gw.stats.rejected_grants == 1
                assert gw.stats.password_grants == 1

            # the fault goes away: the same client answers, and nothing leaked
            await fault.off(ctx)
            proxy.disarm()
            assert await op.invoke(client) == baseline
            assert client.limiter.in_flight == 0
            assert client.limiter.waiting == 0


# --------------------------------------------------------------------------- transient faults

TRANSIENT = (
    ("401", "replay"),
    ("429-no-retry-after", "retry"),
    ("500", "retry"),
    ("503", "retry"),
    ("504", "retry"),
    ("520", "retry"),
    ("html", "retry"),
    ("drop", "retry"),
    ("cut-mid-body", "retry"),
)


@pytest.mark.parametrize(("fault", "kind"), TRANSIENT, ids=[t[0] for t in TRANSIENT])
@pytest.mark.parametrize("op", OPS, ids=[o.method for o in OPS])
async def test_one_transient_fault_is_absorbed(
    op: Op, fault: str, kind: str, relay_and_gateway: tuple[FakeGateway, FaultProxy]
) -> None:
    """A single bad answer costs one more send, and the caller never sees it."""
    gw, proxy = relay_and_gateway
    async with maxa.MaxaClient(
        gw.credentials,
        base_url=proxy.base_url,
        retry=maxa.RetryPolicy(attempts=ATTEMPTS, backoff=False, deadline=DEADLINE),
    ) as client:
        baseline = await op.invoke(client)
        proxy.sends.clear()
        proxy.arm(fault, times=1)
        started = time.monotonic()
        assert await op.invoke(client) == baseline
        assert time.monotonic() - started < DEADLINE + SLACK
        assert proxy.sends[op.wire] == 2
        assert proxy.injected == 1
        if kind == "replay":
            assert client.stats.replays_after_401 == 1
            assert sum(client.stats.retries.values()) == 0
        elif fault == "drop" and op.wire == "Terminology":
            # a GET: aiohttp itself replays it on a fresh connection, below the client
            assert sum(client.stats.retries.values()) == 0
        else:
            assert sum(client.stats.retries.values()) == 1
        assert client.limiter.in_flight == 0


# --------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize("op", OPS, ids=[o.method for o in OPS])
async def test_a_fault_that_never_clears_ends_at_the_deadline(op: Op) -> None:
    """Unbounded attempts, real back-off, a 503 that never clears: the deadline ends it."""
    deadline = 0.6
    async with FakeGateway(GatewayConfig(seed=3)) as gw:
        policy = maxa.RetryPolicy(attempts=1000, deadline=deadline, base_delay=0.05, max_delay=0.2)
        async with maxa.MaxaClient(gw.credentials, base_url=gw.base_url, retry=policy) as client:
            await op.invoke(client)
            gw.config.update(error_rate=1.0, error_statuses=(503,))
            started = time.monotonic()
            with pytest.raises(maxa.ServiceError) as info:
                await op.invoke(client)
            elapsed = time.monotonic() - started
            assert elapsed < deadline + SLACK
            assert info.value.status == 503
            assert 2 <= gw.stats.requests_by_operation[op.wire] - 1 < 1000
            gw.config.error_rate = 0.0
            assert EXPECTED_SHAPE[op.wire](await op.invoke(client))


async def test_timeouts_that_never_clear_end_at_the_deadline() -> None:
    deadline = 0.7
    async with (
        FakeGateway(GatewayConfig(seed=3)) as gw,
        maxa.MaxaClient(
            gw.credentials,
            base_url=gw.base_url,
            timeout=0.4,
            retry=maxa.RetryPolicy(attempts=1000, deadline=deadline, backoff=False),
        ) as client,
    ):
        await client.terminology("thritaEHR.Religion", "1")
        gw.config.latency = 5.0
        started = time.monotonic()
        with pytest.raises(maxa.TransportError):
            await client.terminology("thritaEHR.Religion", "1")
        elapsed = time.monotonic() - started
        # the last attempt may start just before the deadline: one timeout more
        assert elapsed < deadline + 0.4 + SLACK
        assert 2 <= gw.stats.requests_by_operation["Terminology"] - 1 <= 5
        gw.config.latency = 0.0
        assert await client.terminology("thritaEHR.Religion", "1") == "اسلام"


# --------------------------------------------------------------------------- the document


def render_markdown() -> str:
    """The fault matrix as docs/fault-matrix.md shows it (generated from FAULTS and OPS)."""
    lines = [
        "# Fault matrix",
        "",
        "Generated from `tests/reliability/test_fault_matrix.py` (`FAULTS`, `OPS`): every",
        "cell is a test. Regenerate with",
        "`.venv/bin/python -m tests.reliability.test_fault_matrix > docs/fault-matrix.md`;",
        "a test fails while this page and the tests disagree.",
        "",
        f"Each test: a fresh fake gateway, a warm client (`RetryPolicy(attempts={ATTEMPTS},",
        f"backoff=False, deadline={DEADLINE:g})`, coalescing off), the fault switched on, one",
        "call (two concurrent calls for the 429 rows), then the fault off and one more call.",
        "Asserted for every cell: the caller gets the answer the same client got before the",
        "fault, or exactly the error class and status below, with `operation` set; the call",
        f"ends within deadline + {SLACK:g} s; the gateway saw exactly the sends listed; after",
        "the fault, the same client answers correctly with no limiter slot held.",
        "",
        "## Outcome by operation and fault",
        "",
        "| fault | " + " | ".join(f"`{o.method}`" for o in OPS) + " |",
        "|---|" + "---|" * len(OPS),
    ]
    for fault in FAULTS:
        cell = fault.outcome if fault.error is None else f"`{fault.outcome}`"
        if fault.pair and fault.error is not None:
            cell = f"answer or {cell}"
        lines.append(f"| {fault.label} | " + " | ".join([cell] * len(OPS)) + " |")
    lines += [
        "",
        "## How each fault is made, and what the client does",
        "",
        "| fault | made by | outcome | error class | status | retried? | sends |",
        "|---|---|---|---|---|---|---|",
    ]
    for fault in FAULTS:
        error = f"`maxa.{fault.error.__name__}`" if fault.error else "—"
        status = str(fault.status) if fault.status is not None else "—"
        outcome = "answer" if fault.error is None else "typed error"
        if fault.pair:
            outcome = "answer" if fault.error is None else "answer or typed error"
        sends = "2 calls" if fault.sends is None else str(fault.sends)
        if fault.sends_get is not None:
            sends += f" ({fault.sends_get} for `terminology`, a GET)"
        lines.append(
            f"| {fault.label} | {fault.made_by} | {outcome} | {error} | {status} | "
            f"{fault.retried} | {sends} |"
        )
    lines += [
        "",
        "## One bad answer, then good ones",
        "",
        "`test_one_transient_fault_is_absorbed`: for every operation, the relay spoils exactly",
        "one answer; the caller gets the right answer after exactly one more send.",
        "",
        "| spoiled answer | how the client absorbs it |",
        "|---|---|",
    ]
    for fault, kind in TRANSIENT:
        how = "token refreshed, request replayed" if kind == "replay" else "retried once"
        if fault == "drop":
            how += " (for `terminology`, a GET, aiohttp's own replay absorbs it first)"
        lines.append(f"| {fault} | {how} |")
    lines += [
        "",
        "## Deadlines",
        "",
        "`test_a_fault_that_never_clears_ends_at_the_deadline` (every operation, a 503 that",
        "never clears, 1000 attempts allowed, real back-off) and",
        "`test_timeouts_that_never_clear_end_at_the_deadline`: the call ends with the typed",
        "error once `RetryPolicy.deadline` is spent, not after the attempts.",
        "",
        "A dropped connection under `terminology`, the one GET, costs two sends per attempt:",
        "aiohttp replays an idempotent request once by itself when the server closes the",
        "connection without answering (RFC 9112 §9.3.1); the client's own retries come on top.",
        "",
        "Not retried, by design: 400, 403, 410 and a 200 whose body is not JSON (replaying",
        "the same request cannot change the answer). A 401 is not a retry: it refreshes the",
        "token and replays once.",
        "",
        "## Hostile gateways, careless callers, hostile files",
        "",
        "Cases outside the grid above, each a test (`HOSTILE`; a test checks every named",
        "test exists):",
        "",
        "| case | what happens | test |",
        "|---|---|---|",
    ]
    lines += [f"| {case} | {outcome} | `{where}` |" for case, outcome, where in HOSTILE]
    lines.append("")
    return "\n".join(lines)


#: (case, what happens, file::test) for the hostile cases the grid does not hold.
HOSTILE: tuple[tuple[str, str, str], ...] = (
    (
        "token endpoint answers 307/308 to another host",
        "`ProtocolError` naming the status and Location; the other host sees nothing",
        "tests/reliability/test_hostile_gateway.py::"
        "test_a_redirected_password_grant_posts_the_password_nowhere_else",
    ),
    (
        "a MAXA call answered with a redirect",
        "`ProtocolError`; nothing sent to the foreign host",
        "tests/reliability/test_hostile_gateway.py::"
        "test_a_redirected_call_sends_nothing_to_the_foreign_host",
    ),
    (
        "an endless body, a huge body, a gzip bomb, a huge string in an envelope",
        "`ProtocolError` past the operation's ceiling, memory flat, within the time limit",
        "tests/reliability/test_hostile_gateway.py::"
        "test_a_hostile_body_is_refused_with_flat_memory_in_time",
    ),
    (
        "a `token_type` other than bearer",
        "`ProtocolError`; the token is never sent",
        "tests/reliability/test_hostile_gateway.py::"
        "test_a_token_of_another_type_is_refused_and_never_sent",
    ),
    (
        "a lone surrogate, NUL or U+FFFF in an argument",
        "`InvalidInputError` naming the field; nothing sent",
        "tests/reliability/test_unencodable_calls.py::"
        "test_a_call_with_a_lone_surrogate_is_refused_and_sends_nothing",
    ),
    (
        "such an item inside `validate_many`",
        "one error outcome; the run goes on",
        "tests/reliability/test_unencodable_calls.py::"
        "test_validate_many_gives_an_unsendable_item_its_error_and_goes_on",
    ),
    (
        "rejected credentials, 16 callers looping",
        "grants back off (6 a minute); calls fail at once with the grant's error",
        "tests/client/test_grant_storms.py::"
        "test_rejected_credentials_16_callers_for_a_minute_make_6_grants",
    ),
    (
        "every MAXA call answered 401",
        "a bounded number of grants (6 a minute)",
        "tests/client/test_grant_storms.py::test_a_401_storm_on_operations_makes_6_grants_a_minute",
    ),
    (
        "a token in Redis with CR/LF (fleet mode)",
        "dropped with a warning; one fresh grant; every call answered",
        "tests/fleet/test_token_checks.py::"
        "test_a_bad_stored_token_is_dropped_and_one_grant_follows",
    ),
    (
        "Redis down in fleet mode without `fleet_rate_limit` (the fleet learns its pace)",
        "the gate lets every send through; at its next 429 each client's own pacer finds a "
        "pace again; back on Redis, the fleet paces again",
        "tests/fleet/test_learned_pace.py::"
        "test_with_redis_down_the_clients_own_pacer_finds_a_pace_again",
    ),
    (
        "`aclose()` with calls queued and in flight",
        "each ends with `ClientClosedError`; nothing sent after; no session reopened",
        "tests/client/test_close.py::test_calls_in_flight_and_queued_end_with_client_closed",
    ),
    (
        "`aclose()` during the first grant",
        "every caller gets `ClientClosedError`; no second grant",
        "tests/client/test_close.py::test_closing_during_the_first_grant",
    ),
    (
        "a snapshot file with a recursive view named `terms`",
        "`SnapshotCorruptError` naming it, before any query runs",
        "tests/snapshot/test_hostile_files.py::test_a_recursive_view_is_refused_before_any_query",
    ),
    (
        "a snapshot file with a trigger",
        "refused; `pull` writes nothing",
        "tests/snapshot/test_hostile_files.py::test_pull_into_a_file_with_a_trigger_writes_nothing",
    ),
    (
        "`info` or `--offline` on an empty file",
        "refused; the file is left as it was (0 bytes)",
        "tests/snapshot/test_hostile_files.py::"
        "test_info_and_offline_never_write_into_an_empty_file",
    ),
    (
        "two `maxa validate` runs on one `--out`",
        "the second is refused at once and writes nothing",
        "tests/cli/test_validate_hardening.py::"
        "test_a_second_run_on_the_same_out_is_refused_and_never_writes",
    ),
    (
        "a 6-hour quota",
        "no request after the first 429; callers fail at once with `retry_after`",
        "tests/client/test_rate_control.py::"
        "test_a_six_hour_quota_stops_the_client_after_its_first_429",
    ),
)


def test_every_hostile_case_names_a_test_that_exists() -> None:
    root = DOC.parent.parent
    for _case, _outcome, where in HOSTILE:
        path, _, name = where.partition("::")
        source = (root / path).read_text(encoding="utf-8")
        assert f"def {name}(" in source, where


def test_fault_matrix_document_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/fault-matrix.md is stale: regenerate it with "
        "python -m tests.reliability.test_fault_matrix > docs/fault-matrix.md"
    )


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
