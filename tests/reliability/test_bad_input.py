"""Bad input at the API: a typed error naming the argument, and nothing sent.

Every argument of every operation gets empty, blank, non-ASCII, wrongly typed and huge
values, and ``since`` gets impossible Jalali dates. Each must raise
``maxa.InvalidInputError`` whose ``.field`` names the argument, with a short message,
before any token grant or request: the fake gateway's counters stay at zero.
Constructing a client with bad options fails at once, with the option's name.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import maxa_async as maxa
from maxa_async.testing import FakeGateway, GatewayConfig

HUGE = "x" * 1_000_000  # 1 MB
GOOD_SINCE = maxa.JalaliDateTime(1390, 10, 10)
GOOD_TEXT = maxa.CodedText("تلفن منزل", "ContactType", "1")

#: Values no string argument accepts.
BAD_STRINGS: list[Any] = [
    "",
    "   ",
    "\t\n",
    None,
    5,
    5.0,
    True,
    b"eRx",
    ["eRx"],
    {"id": "eRx"},
    HUGE,
]
#: Values no terminology id accepts, on top of BAD_STRINGS.
BAD_IDS: list[Any] = [
    *BAD_STRINGS,
    "eRxé",
    "thrिताEHR.Religion",  # the guide's corrupted sample
    "ای‌آر‌ایکس",
    "e\x00Rx",
    "eRx\u200b",
    "x" * 129,
]
#: Impossible or unreadable ``since`` values.
BAD_SINCE: list[Any] = [
    "1402/12/30",  # 1402 is not a leap year: Esfand has 29 days
    "1402/13/01",
    "1402/00/10",
    "1402/07/31",  # months 7-11 have 30 days
    "1402/01/01 24:00",
    "1402/01/01 23:60",
    "1402/01/01 23:59:60",
    "0000/01/01",
    "۱۴۰۲/۱۲/۳۰",  # the same impossible date in Persian digits
    "yesterday",
    "",
    HUGE,
    None,
    5,
    1402.5,
    b"1402/01/01",
    ["1402/01/01"],
    {"year": 1402},
    dt.time(10, 0),
    dt.datetime(1, 1, 1),  # before Jalali year 1
]

Invoke = Callable[[maxa.MaxaClient, Any], Awaitable[Any]]

#: (operation, argument, how to call it with that argument bad, the bad values)
CASES: list[tuple[str, str, Invoke, list[Any]]] = [
    ("terminology", "terminology_id", lambda c, v: c.terminology(v, "1"), BAD_IDS),
    (
        "terminology",
        "coded_string",
        lambda c, v: c.terminology("thritaEHR.Religion", v),
        BAD_STRINGS,
    ),
    (
        "search_terminology",
        "terminology_id",
        lambda c, v: c.search_terminology(v, GOOD_SINCE),
        BAD_IDS,
    ),
    ("search_terminology", "since", lambda c, v: c.search_terminology("eRx", v), BAD_SINCE),
    ("validate_cts", "coded_text", lambda c, v: c.validate_cts(v), BAD_STRINGS[3:]),
    (
        "validate_cts",
        "coded_text.value",
        lambda c, v: c.validate_cts(maxa.CodedText(v, "eRx", "60002")),
        [*BAD_STRINGS[:9], "x" * 8193],
    ),
    (
        "validate_cts",
        "coded_text.terminology_id",
        lambda c, v: c.validate_cts(maxa.CodedText("v", v, "60002")),
        BAD_IDS,
    ),
    (
        "validate_cts",
        "coded_text.coded_string",
        lambda c, v: c.validate_cts(maxa.CodedText("v", "eRx", v)),
        BAD_STRINGS,
    ),
    ("cts_terminologies", "since", lambda c, v: c.cts_terminologies(v), BAD_SINCE),
    (
        "terminology_value_by_version",
        "terminology_id",
        lambda c, v: c.terminology_value_by_version(v, "60002", version="1000"),
        BAD_IDS,
    ),
    (
        "terminology_value_by_version",
        "coded_string",
        lambda c, v: c.terminology_value_by_version("eRx", v, version="1000"),
        BAD_STRINGS,
    ),
    (
        "terminology_value_by_version",
        "version",
        lambda c, v: c.terminology_value_by_version("eRx", "60002", version=v),
        BAD_STRINGS,
    ),
    (
        "terminologies_term_by_version",
        "terminology_id",
        lambda c, v: c.terminologies_term_by_version(v, version="10000"),
        BAD_IDS,
    ),
    (
        "terminologies_term_by_version",
        "version",
        lambda c, v: c.terminologies_term_by_version("eRx", version=v),
        BAD_STRINGS,
    ),
    (
        "terminology_versions",
        "terminology_id",
        lambda c, v: c.terminology_versions(v),
        BAD_IDS,
    ),
]


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig(seed=2)) as gw:
        yield gw


def _untouched(gw: FakeGateway) -> None:
    assert gw.stats.token_requests == 0
    assert gw.stats.requests == 0


@pytest.mark.parametrize(
    ("operation", "field", "invoke", "values"),
    CASES,
    ids=[f"{c[0]}-{c[1]}" for c in CASES],
)
async def test_bad_arguments_are_refused_by_name_and_nothing_is_sent(
    gateway: FakeGateway, operation: str, field: str, invoke: Invoke, values: list[Any]
) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        for value in values:
            with pytest.raises(maxa.InvalidInputError) as info:
                await invoke(client, value)
            error = info.value
            assert error.field == field, (value if value is not HUGE else "HUGE", error)
            assert isinstance(error, ValueError)  # InvalidInputError is both
            assert len(str(error)) < 400  # a 1 MB argument is not echoed
            assert error.retryable is False
        _untouched(gateway)
        assert sum(client.stats.requests.values()) == 0


async def test_non_ascii_ids_are_named_and_shown_briefly(gateway: FakeGateway) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        with pytest.raises(maxa.InvalidInputError) as info:
            await client.terminology("thrिताEHR.Religion", "1")
    assert info.value.field == "terminology_id"
    assert "printable ASCII" in str(info.value)
    _untouched(gateway)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("1402/12/30", "since"),
        ("1402/13/01", "since"),
        ("1402/01/01 24:00", "since"),
    ],
)
async def test_impossible_jalali_dates_say_what_is_wrong(
    gateway: FakeGateway, text: str, field: str
) -> None:
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        with pytest.raises(maxa.InvalidInputError) as info:
            await client.search_terminology("ContactType", text)
    assert info.value.field == field
    words = {"1402/12/30": "day", "1402/13/01": "month", "1402/01/01 24:00": "hour"}[text]
    assert words in str(info.value)
    _untouched(gateway)


def test_impossible_jalali_dates_refused_at_construction() -> None:
    for args, field in (
        ((1402, 12, 30), "day"),
        ((1402, 13, 1), "month"),
        ((1402, 1, 1, 24), "hour"),
        ((1402, 1, 1, 0, 60), "minute"),
        ((1402, 1, 1, 0, 0, 60), "second"),
        ((0, 1, 1), "year"),
        ((1402.0, 1, 1), "year"),
        ((1402, True, 1), "month"),
    ):
        with pytest.raises(maxa.InvalidInputError) as info:
            maxa.JalaliDateTime(*args)
        assert info.value.field == field, args
    assert maxa.JalaliDateTime(1403, 12, 30).day == 30  # 1403 is a leap year


async def test_validate_many_answers_bad_items_without_sending(gateway: FakeGateway) -> None:
    items: list[Any] = [
        None,
        "eRx,60002",
        maxa.CodedText("", "eRx", "1"),
        maxa.CodedText("v", "eRxé", "1"),
        maxa.CodedText("v", "eRx", HUGE),
        maxa.CodedText(HUGE, "eRx", "1"),
        maxa.CodedText(5, "eRx", "1"),  # type: ignore[arg-type]
    ]
    fields = [
        "coded_text",
        "coded_text",
        "coded_text.value",
        "coded_text.terminology_id",
        "coded_text.coded_string",
        "coded_text.value",
        "coded_text.value",
    ]
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
        outcomes = [o async for o in client.validate_many(items)]
        assert [o.item for o in outcomes] == items
        assert all(o.valid is None for o in outcomes)
        assert [o.error.field for o in outcomes if o.error] == fields  # type: ignore[attr-defined]
        for bad_window in (0, -1, "8", True, 2.5):
            with pytest.raises(maxa.InvalidInputError) as info:
                async for _ in client.validate_many([GOOD_TEXT], window=bad_window):
                    pass  # pragma: no cover - refused before the first item
            assert info.value.field == "window"
    _untouched(gateway)


# --------------------------------------------------------------------------- construction

CREDS = maxa.Credentials("cid", "secret", "user", "password", "pid")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_concurrency", 0),
        ("max_concurrency", -1),
        ("max_concurrency", "8"),
        ("max_concurrency", 8.0),
        ("max_concurrency", True),
        ("max_concurrency", 10_001),
        ("max_concurrency", None),
        ("timeout", -1),
        ("timeout", 0),
        ("timeout", "5"),
        ("timeout", True),
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("base_url", "ftp://x"),
        ("base_url", "http://example.com"),
        ("base_url", "http://10.0.0.1"),
        ("base_url", "http://192.168.1.10:8080"),
        ("base_url", "http://127.0.0.1.example.com"),
        ("base_url", "https://"),
        ("base_url", ""),
        ("base_url", None),
        ("base_url", 5),
        ("base_url", "apigateway.behdasht.gov.ir"),
        ("base_url", "https://x?q=1"),
        ("base_url", "https://x#fragment"),
        ("base_url", "https://user:pw-in-url@x"),
        ("retry", "x"),
        ("retry", 3),
        ("retry_budget", "x"),
        ("cache", {}),
        ("ssl", "x"),
        ("ssl", None),
        ("token_store", "x"),
        ("rate_gate", object()),
        ("credentials", None),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_bad_client_options_fail_at_construction_by_name(option: str, value: Any) -> None:
    if option == "credentials":
        with pytest.raises(maxa.InvalidInputError) as info:
            maxa.MaxaClient(value)
    else:
        with pytest.raises(maxa.InvalidInputError) as info:
            maxa.MaxaClient(CREDS, **{option: value})
    assert info.value.field == option
    assert "pw-in-url" not in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("rate_limit", 0, "rate_limit"),
        ("rate_limit", -1, "rate_limit"),
        ("rate_limit", float("nan"), "rate_limit"),
        ("refresh_fraction", 0, "refresh_fraction"),
        ("refresh_fraction", 1, "refresh_fraction"),
        ("refresh_fraction", float("nan"), "refresh_fraction"),
        ("latency_tolerance", 0.5, "latency_tolerance"),
        ("latency_tolerance", float("nan"), "latency_tolerance"),
        ("latency_tolerance", "x", "latency_tolerance"),
    ],
)
def test_bad_tuning_options_fail_at_construction(option: str, value: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        maxa.MaxaClient(CREDS, **{option: value})


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: maxa.RetryPolicy(attempts=0), "attempts"),
        (lambda: maxa.RetryPolicy(attempts=True), "attempts"),
        (lambda: maxa.RetryPolicy(attempts="3"), "attempts"),
        (lambda: maxa.RetryPolicy(deadline=-1), "deadline"),
        (lambda: maxa.RetryPolicy(deadline=float("nan")), "deadline"),
        (lambda: maxa.RetryPolicy(base_delay=-1), "base_delay"),
        (lambda: maxa.RetryPolicy(max_delay=float("inf")), "max_delay"),
        (lambda: maxa.RetryPolicy(max_retry_after=float("nan")), "max_retry_after"),
        (lambda: maxa.RetryPolicy(retry_on=5), "retry_on"),
        (lambda: maxa.Timeout(request=0), "request"),
        (lambda: maxa.Timeout(request=float("nan")), "request"),
        (lambda: maxa.Timeout(connect=True), "connect"),
        (lambda: maxa.ResponseCache(maxsize=0), "maxsize"),
        (lambda: maxa.ResponseCache(ttl=0), "ttl"),
    ],
)
def test_bad_policy_objects_fail_at_construction(make: Callable[[], Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make()


def test_good_edge_options_are_accepted() -> None:
    for base_url in ("http://127.0.0.1:8080", "http://localhost", "http://[::1]:9", "HTTPS://x"):
        assert maxa.MaxaClient(CREDS, base_url=base_url).base_url.startswith("http")
    context = ssl.create_default_context()
    assert maxa.MaxaClient(CREDS, ssl=context, max_concurrency=1, timeout=0.5) is not None
    assert maxa.MaxaClient(CREDS, max_concurrency=10_000, ssl=False) is not None


@pytest.mark.parametrize("field", ["client_id", "client_secret", "username", "password", "pid"])
@pytest.mark.parametrize("value", ["", "  ", None, 5])
def test_bad_credentials_name_the_field(field: str, value: Any) -> None:
    parts = {"client_id": "c", "client_secret": "s", "username": "u", "password": "p", "pid": "i"}
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.Credentials(**{**parts, field: value})
    assert info.value.field == field


@pytest.mark.parametrize("pid", ["a\nb", "a\r\nX-Injected: 1", "pid\x00", "پید", "p\x7f"])
def test_a_pid_that_cannot_be_a_header_is_refused_at_construction(pid: str) -> None:
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.Credentials("c", "s", "u", "p", pid)
    assert info.value.field == "pid"
