"""Grant storms (issue 15, item 5): a failed grant is remembered, grants back off and are
capped per minute, a 401 storm on operations costs a bounded number of grants.

Time is a fake clock the test moves (``client.tokens.clock``): 16 callers call in lock
step, one round per tick, for a simulated minute. The grant counts are exact: they follow
from the policy alone (see :func:`grants_in`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import orjson
import pytest
from aiohttp import web

import maxa_async as maxa
from maxa_async.auth import GrantPolicy, TokenManager
from maxa_async.oauth import TokenRequest
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")
CALLERS = 16
TICK = 0.25  # seconds of fake time between two rounds of calls
MINUTE = 60.0
STEADY = GrantPolicy(jitter=False)  # the default pauses (1 s doubling to 60 s), no jitter


class FakeClock:
    def __init__(self, now: float | None = None) -> None:
        # whole seconds: the ticks and pauses added to it stay exact
        self.now = float(int(time.time())) if now is None else now

    def __call__(self) -> float:
        return self.now


def grants_in(policy: GrantPolicy, seconds: float) -> int:
    """Grant rounds a storm makes in ``seconds`` when every round fails: one now, the
    next after delay(1), then delay(2) later... (each failing at the moment it starts)."""
    at, rounds = 0.0, 0
    while at < seconds:
        rounds += 1
        at += policy.delay(rounds)
    return rounds


def test_the_steady_policy_allows_six_grants_a_minute() -> None:
    # 0, 1, 3, 7, 15, 31; the seventh would be at 63 s
    assert grants_in(STEADY, MINUTE) == 6
    assert [STEADY.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


async def _storm(
    client: maxa.MaxaClient, clock: FakeClock, seconds: float, tick: float = TICK
) -> Counter[str]:
    """CALLERS calls a round, a round each ``tick`` of fake time; what they raised."""
    seen: Counter[str] = Counter()
    for _ in range(round(seconds / tick)):
        results = await asyncio.gather(
            *(client.terminology(*RELIGION) for _ in range(CALLERS)), return_exceptions=True
        )
        seen.update(type(r).__name__ for r in results)
        clock.now += tick
    return seen


def _storm_client(
    credentials: maxa.Credentials, base_url: str, policy: GrantPolicy = STEADY
) -> tuple[maxa.MaxaClient, FakeClock]:
    client = maxa.MaxaClient(
        credentials, base_url=base_url, coalesce=False, retry=maxa.RetryPolicy.for_tests()
    )
    clock = FakeClock()
    client.tokens.clock = clock
    client.tokens.grant_policy = policy
    return client, clock


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("maxa_async") and r.levelno >= logging.WARNING
    ]


# --------------------------------------------------------------------------- a token
# endpoint with the answers the fake gateway has no knob for


@attrs.define
class TokenEndpoint:
    """``POST /oauth/token`` answering one fixed reply, on 127.0.0.1; counts requests."""

    status: int
    body: bytes
    content_type: str = "application/json"
    requests: Counter[str] = attrs.field(factory=Counter)
    base_url: str = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests[request.path] += 1
        if request.path != "/oauth/token":
            return web.Response(status=404)
        await request.read()
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)


@pytest.fixture
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[TokenEndpoint]:
    status, body, content_type = request.param
    server = TokenEndpoint(status, body, content_type)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server._handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def _token_json(**fields: Any) -> bytes:
    return orjson.dumps({"access_token": "a1b2c3", "token_type": "bearer", **fields})


HTML_PAGE = b"<html><body><h1>Welcome</h1>Please sign in.</body></html>"
BAD_ANSWERS = {
    "401": (401, b"", "text/plain"),
    "html-200": (200, HTML_PAGE, "text/html"),
    "expires-in-minus-5": (200, _token_json(expires_in=-5), "application/json"),
    "expires-in-zero": (200, _token_json(expires_in=0), "application/json"),
    "expires-in-half-a-second": (200, _token_json(expires_in=0.5), "application/json"),
}
EXPECTED_ERROR = {
    "401": maxa.AuthenticationError,
    "html-200": maxa.ProtocolError,
    "expires-in-minus-5": maxa.ProtocolError,
    "expires-in-zero": maxa.ProtocolError,
    "expires-in-half-a-second": maxa.ProtocolError,
}


# --------------------------------------------------------------------------- tests


async def test_rejected_credentials_16_callers_for_a_minute_make_6_grants(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    creds = attrs.evolve(gateway.credentials, password="wrong")
    client, clock = _storm_client(creds, gateway.base_url)
    async with client:
        seen = await _storm(client, clock, MINUTE)
        state = client.stats.as_dict()
    grants = grants_in(STEADY, MINUTE)
    rounds = round(MINUTE / TICK)
    assert gateway.stats.token_requests == grants == 6
    assert gateway.stats.rejected_grants == grants
    assert gateway.stats.requests == 0  # no MAXA request without a token
    assert seen == {"AuthenticationError": CALLERS * rounds}
    assert len(_warnings(caplog)) == 1
    assert "invalid_grant" in _warnings(caplog)[0]
    assert state["failed_grants"] == grants
    assert state["grant_failure_episodes"] == 1
    # at least one per round of paused calls (callers that come together share one)
    assert state["grants_skipped"] >= rounds - grants
    assert state["failures"] == CALLERS * rounds
    guard = state["grants"]
    assert guard["failures_in_row"] == grants
    assert guard["paused"] is True
    # the sixth round failed at 31 s and paused for 32 s; the clock stands at 60 s
    assert guard["retry_in"] == pytest.approx(31 + 32 - MINUTE)
    assert guard["retry_at"] == pytest.approx(clock.now + guard["retry_in"])
    assert guard["grants_last_minute"] == grants - 1  # the one at 0 s left it at 60 s


async def test_calls_in_a_pause_get_a_copy_of_the_grants_error(gateway: FakeGateway) -> None:
    creds = attrs.evolve(gateway.credentials, password="wrong")
    client, _ = _storm_client(creds, gateway.base_url)
    async with client:
        errors = []
        for _ in range(3):
            with pytest.raises(maxa.AuthenticationError) as caught:
                await client.terminology(*RELIGION)
            errors.append(caught.value)
    first, second, third = errors
    assert gateway.stats.token_requests == 1
    assert second is not first and third is not second  # no ever-growing traceback
    assert {str(e) for e in errors} == {str(first)}  # same message, status, request id
    assert second.status == 400 and second.operation == "token"
    assert "no token grant for 1.0s" in "".join(getattr(second, "__notes__", []))
    assert not getattr(first, "__notes__", [])
    assert "wrong" not in str(second) + repr(second)


@pytest.mark.parametrize("endpoint", BAD_ANSWERS.values(), ids=BAD_ANSWERS, indirect=True)
async def test_a_bad_answer_from_the_token_endpoint_makes_6_grants_a_minute(
    endpoint: TokenEndpoint, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    case = request.node.callspec.id
    creds = maxa.Credentials("cid", "secret", "user", "password", "pid")
    client, clock = _storm_client(creds, endpoint.base_url)
    async with client:
        seen = await _storm(client, clock, MINUTE)
    assert endpoint.requests == {"/oauth/token": grants_in(STEADY, MINUTE)}
    assert seen == {EXPECTED_ERROR[case].__name__: CALLERS * round(MINUTE / TICK)}
    assert len(_warnings(caplog)) == 1
    assert client.stats.failed_grants == 6


async def test_a_401_storm_on_operations_makes_6_grants_a_minute(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Every MAXA call answered 401 with a fresh token (here: a pid the gateway refuses)."""
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    creds = attrs.evolve(gateway.credentials, pid="not-our-pid")
    client, clock = _storm_client(creds, gateway.base_url)
    async with client:
        seen = await _storm(client, clock, MINUTE)
        stats = client.stats
    # The first refused token is granted again at once (it may have been revoked just
    # after its grant); from the second on, the pauses are those of failed grants.
    grants = 1 + grants_in(STEADY, MINUTE)
    assert gateway.stats.token_requests == grants == 7
    # the refresh token is kept: a 401 on the access token says nothing about it
    assert (gateway.stats.password_grants, gateway.stats.refresh_grants) == (1, 6)
    # each fresh token met at most one round of callers, one send each (how many of the
    # round sent before the first 401 came back is the limiter's business)
    assert grants <= gateway.stats.requests <= CALLERS * grants
    assert gateway.stats.responses_by_status == {401: gateway.stats.requests}
    assert seen == {"AuthenticationError": CALLERS * round(MINUTE / TICK)}
    assert stats.rejected_fresh_tokens == grants
    assert stats.grant_failure_episodes == 1
    assert len(_warnings(caplog)) == 1
    assert "401" in _warnings(caplog)[0]


async def test_grants_per_minute_are_capped_even_without_pauses(gateway: FakeGateway) -> None:
    creds = attrs.evolve(gateway.credentials, password="wrong")
    policy = GrantPolicy(base_delay=0, max_grants_per_minute=5)
    client, clock = _storm_client(creds, gateway.base_url, policy)
    async with client:
        seen = await _storm(client, clock, 150.0, tick=1.0)
    # 5 grants at 0-4 s, at 60-64 s and at 120-124 s
    assert gateway.stats.token_requests == 15
    assert seen == {"AuthenticationError": CALLERS * 150}


async def test_token_endpoint_5xx_rounds_back_off_too(gateway: FakeGateway) -> None:
    gateway.config.token_error_rate = 1.0
    client, clock = _storm_client(gateway.credentials, gateway.base_url)
    async with client:
        seen = await _storm(client, clock, 10.0, tick=1.0)
    # rounds at 0, 1, 3 and 7 s, each of three attempts (the grant's own retry)
    assert grants_in(STEADY, 10.0) == 4
    assert gateway.stats.token_requests == 4 * 3
    assert seen == {"ServiceError": CALLERS * 10}


async def test_16_callers_looping_in_real_time_with_the_default_policy(
    gateway: FakeGateway,
) -> None:
    """The issue's scenario as it was seen (7,747 grants in 5 s), in real time for 2 s
    with the default, jittered policy: rounds at 0, then 0.5-1 s, then 1.5-3 s later..."""
    creds = attrs.evolve(gateway.credentials, password="wrong")
    seen: Counter[str] = Counter()

    async def caller(client: maxa.MaxaClient, stop: float) -> None:
        while time.monotonic() < stop:
            try:
                await client.terminology(*RELIGION)
            except maxa.MaxaError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(0.002)

    async with maxa.MaxaClient(creds, base_url=gateway.base_url, coalesce=False) as client:
        stop = time.monotonic() + 2.0
        await asyncio.gather(*(caller(client, stop) for _ in range(CALLERS)))
    assert 1 <= gateway.stats.token_requests <= 3
    assert set(seen) == {"AuthenticationError"}
    assert sum(seen.values()) >= CALLERS


async def test_a_successful_grant_ends_the_pause_and_the_episode(
    gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    client, clock = _storm_client(gateway.credentials, gateway.base_url)
    right = gateway.config.password
    gateway.config.password = "changed-at-the-gateway"  # the account is locked
    async with client:
        seen = await _storm(client, clock, 2.0)  # grants at 0 and 1 s fail
        assert gateway.stats.token_requests == 2
        gateway.config.password = right  # unlocked
        clock.now += 1.0  # past the 2 s pause begun at 1 s
        assert await client.terminology(*RELIGION) == "اسلام"
        guard = client.stats.as_dict()["grants"]
    assert seen == {"AuthenticationError": CALLERS * 8}
    assert gateway.stats.password_grants == 1
    assert guard == {
        "failures_in_row": 0,
        "paused": False,
        "retry_in": 0.0,
        "retry_at": None,
        "grants_last_minute": 3,
    }
    assert len(_warnings(caplog)) == 1
    assert any("after 2 failed grant round(s)" in r.getMessage() for r in caplog.records)


async def test_revoked_tokens_that_served_calls_are_not_a_storm(
    make_client: Callable[..., maxa.MaxaClient], gateway: FakeGateway
) -> None:
    """A 401 for a token that had answers is a revocation: re-grant at once, no pause."""
    async with make_client() as client:
        for _ in range(5):
            assert await client.terminology(*RELIGION) == "اسلام"
            gateway.revoke_all_tokens()
    assert client.stats.replays_after_401 == 4
    assert gateway.stats.refresh_grants == 4
    assert client.stats.rejected_fresh_tokens == 0
    assert client.stats.grant_failure_episodes == 0


async def test_one_token_revoked_right_after_its_grant_is_granted_again_at_once(
    make_client: Callable[..., maxa.MaxaClient],
    gateway: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="maxa_async")
    async with make_client() as client:
        for _ in range(3):
            assert await client.terminology(*RELIGION) == "اسلام"
            token = client.tokens.token
            assert token is not None
            await client.tokens.invalidate(token)
            await client.tokens.get()  # a new token, no answer with it yet...
            gateway.revoke_all_tokens()  # ...and it is revoked
            assert await client.terminology(*RELIGION) == "اسلام"
    assert client.stats.rejected_fresh_tokens == 3
    assert client.stats.grant_failure_episodes == 0
    assert _warnings(caplog) == []
    assert gateway.stats.refresh_grants == 6


# --------------------------------------------------------------------------- the manager


class Script:
    """Grant answers from a script: ``(status, body)`` each."""

    def __init__(self, *answers: tuple[int, bytes]) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []

    async def __call__(self, request: TokenRequest) -> tuple[int, dict[str, str], bytes]:
        self.seen.append(request.grant_type)
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return status, {}, body


REJECTED = (400, b'{"error": "invalid_grant", "error_description": "Bad credentials"}')
GRANTED = (200, _token_json(expires_in=100))
CREDS = maxa.Credentials("cid", "secret", "user", "password", "pid")


async def _fails(manager: TokenManager) -> None:
    with pytest.raises(maxa.AuthenticationError):
        await manager.get()


async def test_after_a_success_the_next_failure_pauses_from_the_first_step_again() -> None:
    clock = FakeClock()
    send = Script(REJECTED, REJECTED, REJECTED, GRANTED, REJECTED)
    manager = TokenManager(CREDS, send, clock=clock, grant_policy=STEADY)
    for step in (0.0, 1.0, 2.0):  # fail at 0 (pause 1), 1 (pause 2), 3 (pause 4)
        clock.now += step
        await _fails(manager)
    assert send.seen == ["password"] * 3
    clock.now += 3.5
    await _fails(manager)  # still paused: nothing sent
    assert len(send.seen) == 3
    clock.now += 0.5
    token = await manager.get()
    await manager.invalidate(token)  # revoked (no answers to judge: no stats here)
    await _fails(manager)  # the fifth grant, rejected: a pause of 1 s, not 8
    assert manager.grant_state()["retry_in"] == 1.0
    assert len(send.seen) == 5
    manager.retry_now()
    assert manager.grant_state()["paused"] is False


async def test_a_clock_that_goes_back_ends_a_pause() -> None:
    clock = FakeClock()
    send = Script(REJECTED)
    manager = TokenManager(CREDS, send, clock=clock, grant_policy=STEADY)
    await _fails(manager)
    clock.now -= 3600  # the wall clock was set back an hour
    await _fails(manager)
    assert len(send.seen) == 2


async def test_a_short_lived_token_counts_as_a_failed_grant() -> None:
    clock = FakeClock()
    send = Script((200, _token_json(expires_in=2)))
    manager = TokenManager(CREDS, send, clock=clock, grant_policy=GrantPolicy(min_lifetime=5))
    with pytest.raises(maxa.ProtocolError, match="less than the 5s a token must"):
        await manager.get()
    with pytest.raises(maxa.ProtocolError):
        await manager.get()
    assert len(send.seen) == 1


def test_policy_values_are_checked() -> None:
    for bad in (
        {"base_delay": -1},
        {"max_delay": float("nan")},
        {"min_lifetime": True},
        {"max_grants_per_minute": 0},
        {"max_grants_per_minute": 2.5},
    ):
        with pytest.raises(ValueError, match="GrantPolicy"):
            GrantPolicy(**bad)
    jittered = GrantPolicy()
    for failures in range(1, 12):
        ceiling = STEADY.delay(failures)
        assert ceiling / 2 <= jittered.delay(failures) <= ceiling <= 60
    assert GrantPolicy(base_delay=0).delay(5) == 0.0
