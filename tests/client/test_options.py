"""ClientOptions: every keyword option checked by its field, before anything is sent;
``options=`` whole; the token store's and rate gate's ``aclose`` awaited once."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import maxa_async as maxa
from maxa_async.auth import MemoryTokenStore
from maxa_async.events import RequestEvent, ResponseEvent
from maxa_async.options import FLEET_OPTION_NAMES
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


class _StoreWithoutAclose:
    """A store written against the protocol before it had aclose."""

    async def load(self) -> maxa.Token | None:
        return None

    async def save(self, token: maxa.Token) -> None:
        return None

    async def invalidate(self, access_token: str) -> None:
        return None

    def refresh_lease(self) -> contextlib.AbstractAsyncContextManager[bool]:
        return MemoryTokenStore().refresh_lease()


class _CountingStore(MemoryTokenStore):
    """The in-memory store, counting the closes the client asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    async def aclose(self) -> None:
        self.closes += 1


class _CountingGate:
    """A rate gate that lets everything through and counts what it is asked."""

    def __init__(self) -> None:
        self.acquired = 0
        self.closes = 0

    async def acquire(self, deadline: float | None) -> None:
        self.acquired += 1

    def observe(self, rate_limited: bool, retry_after: float | None) -> None:
        return None

    async def cool_down(self, seconds: float) -> None:
        return None

    @property
    def learns_pace(self) -> bool:
        return False

    async def aclose(self) -> None:
        self.closes += 1


BAD_OPTIONS: list[tuple[str, Any]] = [
    ("base_url", "ftp://x"),
    ("base_url", 5),
    ("base_url", "https://user:pw-in-url@x"),
    ("max_concurrency", 0),
    ("max_concurrency", "8"),
    ("max_concurrency", True),
    ("max_concurrency", 10_001),
    ("timeout", -1),
    ("timeout", "5"),
    ("timeout", math.nan),
    ("retry", 3),
    ("retry_budget", "x"),
    ("adaptive", "yes"),
    ("rate_limit", 0),
    ("rate_limit", math.nan),
    ("rate_limit", "5"),
    ("fail_fast", 1),
    ("coalesce", None),
    ("cache", {}),
    ("session", object()),
    ("ssl", "x"),
    ("ca_bundle", "/no/such/ca.pem"),
    ("ca_bundle", 5),
    ("proxy", "socks5://127.0.0.1:1080"),
    ("proxy", ""),
    ("trust_env", "yes"),
    ("token_store", "x"),
    ("token_store", _StoreWithoutAclose()),
    ("rate_gate", object()),
    ("fleet", "redis://127.0.0.1:6379/0"),
    ("redis_url", "http://pw-in-url@localhost:6379"),
    ("fleet_rate_limit", 0),
    ("fleet_rate_limit", -1.5),
    ("fleet_options", "lease_seconds=3"),
    ("fleet_options", {"lease_secs": 3}),
    ("refresh_fraction", 0),
    ("refresh_fraction", 1),
    ("refresh_fraction", math.nan),
    ("latency_tolerance", 0.5),
    ("latency_tolerance", "x"),
    ("on_request", "x"),
    ("on_response", 5),
    ("max_response_bytes", 0),
    ("max_response_bytes", {"NoSuchOperation": 1000}),
    ("max_response_bytes", {"Terminology": -1}),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS, ids=lambda v: repr(v)[:30])
async def test_a_bad_option_is_a_config_error_naming_it_before_anything_is_sent(
    gateway: FakeGateway, option: str, value: Any
) -> None:
    options = {"base_url": gateway.base_url, option: value}
    with pytest.raises(maxa.ConfigError) as by_keyword:
        maxa.MaxaClient(gateway.credentials, **options)
    with pytest.raises(maxa.ConfigError) as by_object:
        maxa.ClientOptions(**options)
    for caught in (by_keyword.value, by_object.value):
        assert caught.field.split("[")[0] == option  # max_response_bytes['Terminology']
        assert isinstance(caught, maxa.InvalidInputError) and isinstance(caught, ValueError)
        assert str(caught).startswith(f"{caught.field}: ")
        assert "pw-in-url" not in str(caught)
    assert str(by_keyword.value) == str(by_object.value)
    assert gateway.stats.token_requests == 0
    assert gateway.stats.requests == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("max_concurrency", 8.0, "max_concurrency: must be an int"),
        ("max_concurrency", 0, "max_concurrency: must be between 1 and 10000"),
        ("retry", "x", "retry: must be a maxa.RetryPolicy or None"),
        ("retry_budget", 1, "retry_budget: must be a maxa.RetryBudget or None"),
        ("timeout", 0, "timeout: must be a Timeout or a positive number"),
        ("ssl", None, "ssl: must be True, False or an ssl.SSLContext"),
        ("trust_env", 0, "trust_env: must be True or False"),
        ("cache", [], "cache: must be a maxa.ResponseCache or None"),
        (
            "redis_url",
            "localhost:6379",
            "redis_url: must start with redis://, rediss:// or unix://",
        ),
    ],
)
def test_the_messages_are_those_the_client_always_gave(
    option: str, value: Any, message: str
) -> None:
    with pytest.raises(maxa.ConfigError) as caught:
        maxa.ClientOptions(**{option: value})
    assert str(caught.value) == message


async def test_a_ca_bundle_that_is_not_pem_is_refused_by_the_client_before_sending(
    gateway: FakeGateway,
) -> None:
    options = maxa.ClientOptions(base_url=gateway.base_url, ca_bundle=__file__)  # a file
    with pytest.raises(maxa.ConfigError, match="not a readable PEM file") as caught:
        maxa.MaxaClient(gateway.credentials, options=options)
    assert caught.value.field == "ca_bundle"
    with pytest.raises(maxa.ConfigError, match="either ca_bundle or ssl") as both:
        maxa.ClientOptions(ca_bundle=__file__, ssl=False)
    assert both.value.field == "ca_bundle"
    assert gateway.stats.token_requests == gateway.stats.requests == 0


def test_the_defaults_are_the_keyword_defaults() -> None:
    options = maxa.ClientOptions()
    client = maxa.MaxaClient(maxa.Credentials("c", "s", "u", "p", "pid"))
    assert client.options == options
    assert options.base_url == maxa.DEFAULT_BASE_URL
    assert options.max_concurrency == 64
    assert options.timeout == maxa.Timeout()
    assert (options.retry, options.retry_budget, options.rate_limit) == (None, None, None)
    assert (options.adaptive, options.fail_fast, options.coalesce) == (True, False, True)
    assert (options.ssl, options.trust_env, options.refresh_fraction) == (True, False, 0.75)
    assert options.fleet is None and options.redis_url is None


def test_options_round_trip() -> None:
    hooked: list[object] = []
    options = maxa.ClientOptions(
        base_url="http://127.0.0.1:9",
        max_concurrency=3,
        timeout=2,
        retry=maxa.RetryPolicy(attempts=2),
        retry_budget=maxa.RetryBudget(),
        adaptive=False,
        rate_limit=50.0,
        cache=maxa.ResponseCache(),
        proxy=" http://proxy.internal:3128 ",
        fleet_options={"lease_seconds": 3},
        latency_tolerance=3.0,
        on_request=hooked.append,
        max_response_bytes={"Terminology": 1000},
    )
    assert options.timeout == maxa.Timeout(request=2.0, connect=2.0)  # seconds: one Timeout
    assert options.proxy == "http://proxy.internal:3128"  # kept normalised
    again = maxa.ClientOptions(**attrs.asdict(options, recurse=False))
    assert again == options
    assert attrs.evolve(options) == options
    assert attrs.evolve(options, max_concurrency=4) != options
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        options.max_concurrency = 5  # type: ignore[misc]
    client = maxa.MaxaClient(maxa.Credentials("c", "s", "u", "p", "pid"), options=options)
    assert client.options is options
    assert client.limiter.max_concurrency == 3
    assert client.base_url == "http://127.0.0.1:9"
    keywords = maxa.MaxaClient(
        maxa.Credentials("c", "s", "u", "p", "pid"),
        **{field.name: getattr(options, field.name) for field in attrs.fields(maxa.ClientOptions)},
    )
    assert keywords.options == options
    # the caller's mapping may change afterwards; the options do not
    source = {"lease_seconds": 3.0}
    frozen = maxa.ClientOptions(fleet_options=source)
    source["lease_seconds"] = 99.0
    assert frozen.fleet_options == {"lease_seconds": 3.0}


def test_a_proxy_or_redis_password_is_not_in_the_repr() -> None:
    options = maxa.ClientOptions(
        proxy="http://user:proxy-secret@proxy.internal:3128",
        redis_url="redis://:redis-secret@cache.internal:6379/0",
    )
    text = repr(options)
    assert "proxy-secret" not in text and "redis-secret" not in text
    assert "proxy.internal" in text and "cache.internal" in text
    assert options.proxy is not None and "proxy-secret" in options.proxy  # still usable


async def test_a_client_made_from_options_works(gateway: FakeGateway) -> None:
    options = maxa.ClientOptions(
        base_url=gateway.base_url, max_concurrency=2, retry=maxa.RetryPolicy.for_tests()
    )
    async with maxa.MaxaClient(gateway.credentials, options=options) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
        assert client.options is options
        assert client.with_options(timeout=5).options is options
    assert gateway.stats.requests == 1
    assert gateway.stats.password_grants == 1


async def test_hooks_given_in_options_are_called(gateway: FakeGateway) -> None:
    requests: list[RequestEvent] = []
    responses: list[ResponseEvent] = []

    def on_request(event: RequestEvent) -> None:
        requests.append(event)

    options = maxa.ClientOptions(
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy.for_tests(),
        on_request=on_request,
        on_response=responses.append,
    )
    async with maxa.MaxaClient(gateway.credentials, options=options) as client:
        await client.terminology(*RELIGION)
        await client.terminology(*RELIGION)
    assert [(e.operation, e.attempt) for e in requests] == [("Terminology", 1)] * 2
    assert [(e.operation, e.status, e.attempts) for e in responses] == [("Terminology", 200, 1)] * 2


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("max_concurrency", 8), ("base_url", "http://127.0.0.1:9"), ("on_response", print)],
)
def test_options_and_keywords_together_are_refused(keyword: str, value: Any) -> None:
    creds = maxa.Credentials("c", "s", "u", "p", "pid")
    with pytest.raises(maxa.ConfigError, match="either options= or keyword options") as caught:
        maxa.MaxaClient(creds, options=maxa.ClientOptions(), **{keyword: value})
    assert caught.value.field == keyword
    with pytest.raises(maxa.ConfigError) as wrong:
        maxa.MaxaClient(creds, options={"max_concurrency": 8})  # type: ignore[arg-type]
    assert wrong.value.field == "options"


def test_fleet_and_the_options_to_make_one_are_refused_together() -> None:
    from maxa_async.fleet import Fleet

    creds = maxa.Credentials("c", "s", "u", "p", "pid")
    fleet = Fleet("redis://127.0.0.1:9/0", credentials=creds)  # never connected here
    for extra in (
        {"redis_url": "redis://127.0.0.1:9/0"},
        {"fleet_rate_limit": 10.0},
        {"fleet_options": {"burst": 2}},
    ):
        with pytest.raises(maxa.ConfigError, match="not both") as caught:
            maxa.MaxaClient(creds, fleet=fleet, **extra)
        assert caught.value.field == next(iter(extra))
    client = maxa.MaxaClient(creds, fleet=fleet)
    assert client.tokens.store is fleet.token_store
    assert client.options.fleet is fleet
    assert set(client.stats.as_dict()["fleet"]) == set(fleet.stats())
    mine = _CountingStore()
    assert maxa.MaxaClient(creds, fleet=fleet, token_store=mine).tokens.store is mine


def test_fleet_option_names_match_the_fleet() -> None:
    import inspect

    from maxa_async.fleet import Fleet

    parameters = set(inspect.signature(Fleet).parameters)
    assert parameters - {"redis_url", "credentials", "rate_limit"} == FLEET_OPTION_NAMES


def test_from_env_fills_in_what_options_leave_at_the_default(tmp_path: Path) -> None:
    env = {
        "MAXA_CLIENT_ID": "c",
        "MAXA_CLIENT_SECRET": "s",
        "MAXA_USERNAME": "u",
        "MAXA_PASSWORD": "p",
        "MAXA_PID": "pid",
        "MAXA_BASE_URL": "http://127.0.0.1:9",
        "MAXA_PROXY": "http://proxy.internal:3128",
    }
    plain = maxa.MaxaClient.from_env(env, options=maxa.ClientOptions(max_concurrency=5))
    assert plain.base_url == "http://127.0.0.1:9"
    assert plain.options.proxy == "http://proxy.internal:3128"
    assert plain.options.max_concurrency == 5
    own = maxa.ClientOptions(base_url="http://127.0.0.1:10")
    assert maxa.MaxaClient.from_env(env, options=own).base_url == "http://127.0.0.1:10"
    keyword = maxa.MaxaClient.from_env(env, base_url="http://127.0.0.1:11", max_concurrency=4)
    assert keyword.options == maxa.ClientOptions(
        base_url="http://127.0.0.1:11", max_concurrency=4, proxy="http://proxy.internal:3128"
    )
    with pytest.raises(maxa.ConfigError) as caught:
        maxa.MaxaClient.from_env({**env, "MAXA_FLEET_RATE_LIMIT": "fast"})
    assert caught.value.field == "MAXA_FLEET_RATE_LIMIT"


def test_from_env_leaves_the_fleet_variables_when_a_fleet_is_given() -> None:
    from maxa_async.fleet import Fleet

    creds = maxa.Credentials("c", "s", "u", "p", "pid")
    env = {
        "MAXA_CLIENT_ID": "c",
        "MAXA_CLIENT_SECRET": "s",
        "MAXA_USERNAME": "u",
        "MAXA_PASSWORD": "p",
        "MAXA_PID": "pid",
        "MAXA_REDIS_URL": "redis://127.0.0.1:9/0",
        "MAXA_FLEET_RATE_LIMIT": "100",
    }
    fleet = Fleet("redis://127.0.0.1:9/1", credentials=creds)
    by_keyword = maxa.MaxaClient.from_env(env, fleet=fleet)
    by_options = maxa.MaxaClient.from_env(env, options=maxa.ClientOptions(fleet=fleet))
    for client in (by_keyword, by_options):
        assert client.options.fleet is fleet
        assert client.options.redis_url is None and client.options.fleet_rate_limit is None
    made = maxa.MaxaClient.from_env(env)
    assert made.options.redis_url == "redis://127.0.0.1:9/0"
    assert made.options.fleet_rate_limit == 100.0


@contextlib.asynccontextmanager
async def _counted_client(
    gateway: FakeGateway, store: _CountingStore, gate: _CountingGate
) -> AsyncIterator[maxa.MaxaClient]:
    async with maxa.MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        token_store=store,
        rate_gate=gate,
        retry=maxa.RetryPolicy.for_tests(),
    ) as client:
        yield client


async def test_the_store_and_gate_are_closed_exactly_once(gateway: FakeGateway) -> None:
    store, gate = _CountingStore(), _CountingGate()
    async with _counted_client(gateway, store, gate) as client:
        assert await client.terminology(*RELIGION) == "اسلام"
        view = client.with_options(timeout=5)
        assert store.closes == gate.closes == 0
    assert store.closes == gate.closes == 1
    await client.aclose()  # closing again is harmless, and closes nothing twice
    await view.aclose()
    assert store.closes == gate.closes == 1
    assert gate.acquired == gateway.stats.requests == 1


async def test_closing_a_view_closes_the_store_once(gateway: FakeGateway) -> None:
    store, gate = _CountingStore(), _CountingGate()
    async with _counted_client(gateway, store, gate) as client:
        await client.with_options(retry=maxa.RetryPolicy(attempts=1)).aclose()
        assert store.closes == gate.closes == 1
        with pytest.raises(maxa.ClientClosedError):
            await client.terminology(*RELIGION)
    assert store.closes == gate.closes == 1
    assert gateway.stats.requests == 0


async def test_the_default_memory_store_closes_quietly(gateway: FakeGateway) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        assert isinstance(client.tokens.store, maxa.TokenStore)
        assert isinstance(client.tokens.store, MemoryTokenStore)
    await client.tokens.store.aclose()  # a no-op, as often as asked
