"""The shared token: single flight, refresh-ahead, compare-and-invalidate, fallbacks."""

from __future__ import annotations

import asyncio
import time

import attrs
import pytest

import maxa_async as maxa
from maxa_async.auth import GRANT_RETRY, GrantPolicy, TokenManager
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


async def test_cold_client_2000_concurrent_calls_one_password_grant(make_client, gateway):
    async with make_client(max_concurrency=64) as client:
        results = await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(2000)))
    assert results == ["اسلام"] * 2000
    assert gateway.stats.password_grants == 1
    assert gateway.stats.refresh_grants == 0
    assert gateway.stats.token_requests == 1
    assert client.stats.password_grants == 1


async def test_token_lifetime_2s_under_load_refreshes_ahead(make_client, gateway):
    gateway.config.token_ttl = 2.0
    errors: list[BaseException] = []
    done = 0

    async def worker(stop: float) -> None:
        nonlocal done
        i = 0
        while time.monotonic() < stop:
            i += 1
            try:
                await client.terminology_value_by_version("eRx", "60002", version="1000")
                done += 1
            except maxa.MaxaError as exc:  # pragma: no cover - would fail the test
                errors.append(exc)
            await asyncio.sleep(0.005)

    async with make_client(max_concurrency=16, coalesce=False) as client:
        stop = time.monotonic() + 8.0
        await asyncio.gather(*(worker(stop) for _ in range(16)))
    assert errors == []
    assert done > 1000
    assert gateway.stats.password_grants == 1
    # refresh-ahead at 75% of a 2 s lifetime: one refresh every ~1.5 s over ~8 s
    assert 4 <= gateway.stats.refresh_grants <= 6, gateway.stats.refresh_grants
    assert gateway.stats.responses_by_status.get(401, 0) == 0


async def test_revocations_are_invisible_to_callers(make_client, gateway):
    gateway.config.revoke_every = 97
    async with make_client(max_concurrency=32) as client:
        items = [
            maxa.CodedText(value="تلفن منزل", terminology_id="ContactType", coded_string="1")
        ] * 1
        outcomes = [
            o
            async for o in client.validate_many(
                maxa.CodedText(value=f"v{i}", terminology_id="eRx", coded_string=str(60000 + i))
                for i in range(1500)
            )
        ]
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error][:3]
        assert await client.validate_cts(items[0]) is True
    assert gateway.stats.revocations >= 10
    # a thousand 401s would be a thousand refreshes; compare-and-invalidate keeps it near
    # one refresh per revocation
    grants = gateway.stats.refresh_grants + gateway.stats.password_grants
    assert grants <= gateway.stats.revocations + 2
    assert client.stats.replays_after_401 >= gateway.stats.revocations


async def test_refresh_invalidates_old_token_switch(make_client, gateway):
    gateway.config.token_ttl = 1.0
    gateway.config.refresh_invalidates_old = True
    async with make_client(max_concurrency=8) as client:
        stop = time.monotonic() + 3.0
        n = 0
        while time.monotonic() < stop:
            assert await client.terminology(*RELIGION) == "اسلام"
            n += 1
            await asyncio.sleep(0.01)
    assert gateway.stats.password_grants == 1
    assert gateway.stats.refresh_grants >= 2


async def test_rejected_refresh_falls_back_to_password(make_client, gateway):
    gateway.config.token_ttl = 0.6
    gateway.config.refresh_token_ttl = 0.3  # the refresh token dies before refresh-ahead
    async with make_client() as client:
        assert await client.terminology(*RELIGION) == "اسلام"
        await asyncio.sleep(0.7)
        assert await client.terminology(*RELIGION) == "اسلام"
    assert gateway.stats.password_grants == 2
    assert gateway.stats.rejected_grants >= 1
    assert client.stats.refresh_grants == 0


async def test_bad_password_fails_fast_for_every_waiter(gateway):
    creds = attrs.evolve(gateway.credentials, password="wrong")
    async with maxa.MaxaClient(creds, base_url=gateway.base_url) as client:
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.terminology(*RELIGION) for _ in range(50)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
    assert all(isinstance(r, maxa.AuthenticationError) for r in results)
    assert elapsed < 10.0  # no back-off between rejected grants
    assert gateway.stats.token_requests <= 3
    assert gateway.stats.requests == 0
    assert "wrong" not in str(results[0]) and "wrong" not in repr(results[0])


async def test_next_call_after_auth_failure_waits_for_the_pause_then_tries_again(gateway):
    # A rejected grant is remembered for a while: a grant per call risks a lockout.
    creds = attrs.evolve(gateway.credentials, password="wrong")
    async with maxa.MaxaClient(creds, base_url=gateway.base_url) as client:
        frozen = time.time()
        client.tokens.clock = lambda: frozen
        for _ in range(3):
            with pytest.raises(maxa.AuthenticationError):
                await client.terminology(*RELIGION)
        assert gateway.stats.token_requests == 1
        client.tokens.retry_now()
        with pytest.raises(maxa.AuthenticationError):
            await client.terminology(*RELIGION)
    assert gateway.stats.token_requests == 2


async def test_cancelled_caller_does_not_abort_shared_grant(make_client, gateway: FakeGateway):
    gateway.config.latency = 0.0
    async with make_client() as client:
        first = asyncio.create_task(client.terminology(*RELIGION))
        second = asyncio.create_task(client.terminology(*RELIGION))
        await asyncio.sleep(0)  # both waiting on the one grant
        first.cancel()
        assert await second == "اسلام"
        with pytest.raises(asyncio.CancelledError):
            await first
    assert gateway.stats.password_grants == 1


# --------------------------------------------------------------------------- grant retries
# A grant round's requests retry by GrantPolicy.retry, through RetryPolicy.decide.

GRANT_OK = (
    200,
    {},
    b'{"access_token": "at-1", "token_type": "bearer", "refresh_token": "rt-1", "expires_in": 600}',
)
UNAVAILABLE = (503, {}, b'{"status": {"statusCode": 503, "message": "down"}}')
CREDS = maxa.Credentials("cid", "secret", "user", "password", "pid")


class GrantScript:
    """Token endpoint answers in order (the last one repeats); counts the requests."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.answers = list(answers)
        self.sent = 0

    async def __call__(self, request: object) -> tuple[int, dict[str, str], bytes]:
        self.sent += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _manager(send: GrantScript, **options: object) -> TokenManager:
    return TokenManager(CREDS, send, **options)  # type: ignore[arg-type]


def test_the_default_grant_retry_is_three_quick_attempts() -> None:
    retry = GrantPolicy().retry
    assert retry is GRANT_RETRY
    error = maxa.ServiceError("down", status=503)
    assert [retry.decide(error, n, 0.0) for n in (1, 2, 3)] == [0.2, 0.4, None]


async def test_a_grant_round_retries_a_5xx_as_its_policy_says() -> None:
    send = GrantScript(UNAVAILABLE)
    manager = _manager(send)
    with pytest.raises(maxa.ServiceError):
        await manager.get()
    assert send.sent == 3

    send = GrantScript(UNAVAILABLE)
    policy = GrantPolicy(retry=maxa.RetryPolicy(attempts=5, backoff=False))
    manager = _manager(send, grant_policy=policy)
    with pytest.raises(maxa.ServiceError):
        await manager.get()
    assert send.sent == 5

    send = GrantScript(UNAVAILABLE, UNAVAILABLE, GRANT_OK)
    manager = _manager(send, grant_policy=policy)
    assert (await manager.get()).access_token == "at-1"
    assert send.sent == 3


async def test_a_rejected_grant_is_never_retried() -> None:
    send = GrantScript((400, {}, b'{"error": "invalid_grant"}'))
    manager = _manager(send)
    with pytest.raises(maxa.AuthenticationError):
        await manager.get()
    assert send.sent == 1


async def test_a_token_endpoint_retry_after_is_waited_when_short_and_ends_the_round_when_long() -> (
    None
):
    short = GrantScript((429, {"Retry-After": "0"}, b""), GRANT_OK)
    manager = _manager(short)
    assert (await manager.get()).access_token == "at-1"
    assert short.sent == 2

    long = GrantScript((429, {"Retry-After": "30"}, b""))
    manager = _manager(long)
    with pytest.raises(maxa.RateLimitedError) as caught:
        await manager.get()
    assert long.sent == 1  # a Retry-After over GRANT_RETRY.max_retry_after: no retry
    assert caught.value.status == 429 and caught.value.retry_after == 30.0


async def test_the_grant_cap_is_a_client_limit_error() -> None:
    send = GrantScript(GRANT_OK)
    manager = _manager(send, grant_policy=GrantPolicy(max_grants_per_minute=2))
    for _ in range(2):
        await manager.invalidate(await manager.get())
    with pytest.raises(maxa.ClientLimitError) as caught:
        await manager.get()
    assert send.sent == 2
    error = caught.value
    assert isinstance(error, maxa.RateLimitedError)
    assert (error.status, error.retryable, error.operation) == (None, False, "token")
    assert error.retry_after is not None and 0 < error.retry_after <= 60


def test_grant_attempts_and_backoff_shorthands_set_the_grant_retry() -> None:
    manager = _manager(GrantScript(GRANT_OK), grant_attempts=2, grant_backoff=0.5)
    retry = manager.grant_policy.retry
    assert (retry.attempts, retry.base_delay) == (2, 0.5)
    assert retry.delay(1) == 0.5 and retry.delay(2) == 1.0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"refresh_fraction": 1.0}, "refresh_fraction"),
        ({"refresh_fraction": float("nan")}, "refresh_fraction"),
        ({"grant_policy": "often"}, "grant_policy"),
        ({"grant_attempts": 0}, "RetryPolicy.attempts"),
    ],
)
def test_bad_token_settings_are_config_errors(options: dict[str, object], field: str) -> None:
    with pytest.raises(maxa.ConfigError) as caught:
        _manager(GrantScript(GRANT_OK), **options)
    assert caught.value.field == field


def test_bad_grant_policies_are_config_errors() -> None:
    for options, field in (
        ({"retry": 3}, "GrantPolicy.retry"),
        ({"base_delay": -1}, "GrantPolicy.base_delay"),
        ({"max_grants_per_minute": 0}, "GrantPolicy.max_grants_per_minute"),
    ):
        with pytest.raises(maxa.ConfigError) as caught:
            GrantPolicy(**options)  # type: ignore[arg-type]
        assert caught.value.field == field
