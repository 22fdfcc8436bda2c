"""maxa_async.sync.MaxaClient against the fake gateway: plain values, many threads, bulk."""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import attrs
import pytest

import maxa_async as maxa
from maxa_async.sync import MaxaClient, ValidationRun
from maxa_async.testing import CONTACT_TYPES, CTS_TERMINOLOGIES, FakeGateway

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"


def erx_items(gateway: FakeGateway, count: int, *, wrong_every: int = 7) -> list[maxa.CodedText]:
    """``count`` eRx lines of the latest version; every ``wrong_every``-th has a wrong value."""
    items = []
    for index, term in enumerate(gateway.data.terms("eRx")[:count]):
        value = term.value + " X" if index % wrong_every == 0 else term.value
        items.append(maxa.CodedText(value=value, terminology_id="eRx", coded_string=term.code))
    return items


def expected_validity(gateway: FakeGateway, item: maxa.CodedText) -> bool:
    term = gateway.data.get_term("eRx", item.coded_string)
    return term is not None and term.value == item.value


def test_each_operation_returns_a_plain_value(client: MaxaClient, gateway: FakeGateway) -> None:
    assert client.terminology("thritaEHR.Religion", "1") == "اسلام"
    assert client.validate_cts(
        maxa.CodedText(value=ACETAMINOPHEN, terminology_id="eRx", coded_string="60002")
    )
    assert not client.validate_cts(
        maxa.CodedText(value="WRONG", terminology_id="eRx", coded_string="60002")
    )
    assert client.terminology_value_by_version("eRx", "60002", version="1000") == ACETAMINOPHEN
    versions = client.terminology_versions("eRx")
    assert {v.version for v in versions} == {"1000", "10000"}
    assert [v.version for v in versions if v.is_last] == ["10000"]
    terms = client.terminologies_term_by_version("eRx", version="1000")
    want = {t.code: t.value for t in gateway.data.terms("eRx", "1000")}
    assert {t.coded_string: t.value for t in terms} == want
    contact = client.search_terminology("ContactType", dt.date(2000, 1, 1))
    assert {t.coded_string: t.value for t in contact} == dict(CONTACT_TYPES)
    ids = client.cts_terminologies(maxa.JalaliDateTime(1300, 1, 1))
    assert set(CTS_TERMINOLOGIES) <= set(ids)
    with pytest.raises(maxa.NotFoundError):
        client.terminology("eRx", "no-such-code")
    assert gateway.stats.password_grants == 1


def test_bad_input_raises_before_anything_is_sent(client: MaxaClient, gateway: FakeGateway) -> None:
    with pytest.raises(maxa.InvalidInputError) as caught:
        client.terminology("", "1")
    assert caught.value.field
    with pytest.raises(maxa.InvalidInputError) as window:
        client.validate_many([], window=0)
    assert window.value.field == "window"
    assert gateway.stats.token_requests == 0
    assert gateway.stats.requests == 0


def test_constructor_checks_its_arguments_like_the_async_client(gateway: FakeGateway) -> None:
    with pytest.raises(maxa.InvalidInputError) as caught:
        MaxaClient(gateway.credentials, base_url=gateway.base_url, max_concurrency=0)
    assert caught.value.field == "max_concurrency"
    with pytest.raises(maxa.InvalidInputError) as session:
        MaxaClient(gateway.credentials, base_url=gateway.base_url, session=object())
    assert session.value.field == "session"
    with pytest.raises(maxa.InvalidInputError):
        MaxaClient("not credentials")  # type: ignore[arg-type]


def test_from_env_reads_the_same_variables(gateway: FakeGateway) -> None:
    creds = gateway.credentials
    env = {
        "MAXA_CLIENT_ID": creds.client_id,
        "MAXA_CLIENT_SECRET": creds.client_secret,
        "MAXA_USERNAME": creds.username,
        "MAXA_PASSWORD": creds.password,
        "MAXA_PID": creds.pid,
        "MAXA_BASE_URL": gateway.base_url,
    }
    with MaxaClient.from_env(env, max_concurrency=4) as client:
        assert client.base_url == gateway.base_url
        assert client.terminology("thritaEHR.Religion", "1") == "اسلام"
        assert client.stats_as_dict()["limiter"]["max_concurrency"] == 4


def test_sixteen_threads_share_one_token_pool_and_limiter(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    gateway.config.latency = 0.02  # calls overlap at the gateway
    threads, per_thread = 16, 30
    items = erx_items(gateway, threads * per_thread)
    start = threading.Barrier(threads)
    answers: dict[int, list[Any]] = {}
    failures: list[BaseException] = []

    def work(index: int) -> None:
        mine = items[index * per_thread : (index + 1) * per_thread]
        start.wait(timeout=30)
        try:
            got: list[Any] = [client.validate_cts(item) for item in mine[:-5]]
            got += [client.terminology("eRx", item.coded_string) for item in mine[-5:]]
            answers[index] = got
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures
    assert sorted(answers) == list(range(threads))
    for index, got in answers.items():
        mine = items[index * per_thread : (index + 1) * per_thread]
        assert got[:-5] == [expected_validity(gateway, item) for item in mine[:-5]]
        want = [gateway.data.get_term("eRx", item.coded_string) for item in mine[-5:]]
        assert got[-5:] == [term.value for term in want if term is not None]
    stats = client.stats_as_dict()
    assert gateway.stats.password_grants == 1
    assert stats["password_grants"] == 1
    assert stats["calls"] == threads * per_thread
    assert stats["failures"] == 0
    assert stats["requests_total"] == gateway.stats.requests == threads * per_thread
    assert stats["limiter"]["in_flight"] == 0
    assert gateway.stats.peak_in_flight > 1  # one client, many threads at once


def test_validate_many_yields_outcomes_in_input_order(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    items: list[Any] = erx_items(gateway, 2500)
    items[100] = maxa.CodedText(value="X", terminology_id="eRx", coded_string="")  # bad input
    items[200] = "not a CodedText"
    seen: list[int] = []
    outcomes = list(client.validate_many(items, window=300, progress=seen.append))
    assert [o.item for o in outcomes] == items
    assert seen == list(range(1, len(items) + 1))
    for index, outcome in enumerate(outcomes):
        if index in (100, 200):
            assert isinstance(outcome.error, maxa.InvalidInputError)
            assert outcome.valid is None
        else:
            assert outcome.error is None
            assert outcome.valid is expected_validity(gateway, items[index])
    assert gateway.stats.requests_by_operation["ValidateCts"] == len(items) - 2
    assert client.stats_as_dict()["limiter"]["in_flight"] == 0


def test_validate_many_reads_its_input_lazily_in_the_calling_thread(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    terms = gateway.data.terms("eRx")[:500]
    drawn = 0
    readers: set[int] = set()

    def endless() -> Iterator[maxa.CodedText]:
        nonlocal drawn
        for term in itertools.cycle(terms):
            drawn += 1
            readers.add(threading.get_ident())
            yield maxa.CodedText(value=term.value, terminology_id="eRx", coded_string=term.code)

    window = 200
    with client.validate_many(endless(), window=window) as run:
        assert isinstance(run, ValidationRun)
        first = list(itertools.islice(run, 3000))
    assert len(first) == 3000
    assert all(o.valid for o in first)
    # Never more than the window plus one hand-over batch ahead of the consumer.
    assert 3000 <= drawn <= 3000 + 2 * window
    assert readers == {threading.get_ident()}
    assert next(run, None) is None  # closed
    assert client.stats_as_dict()["limiter"]["in_flight"] == 0


def test_an_input_that_fails_stops_the_run_with_its_error(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    items = erx_items(gateway, 50)

    def broken() -> Iterator[maxa.CodedText]:
        yield from items
        raise OSError("disk gone")

    taken = []
    with pytest.raises(OSError, match="disk gone"):
        for outcome in client.validate_many(broken()):
            taken.append(outcome)
    assert len(taken) <= 50
    assert client.validate_cts(items[1]) is expected_validity(gateway, items[1])


@attrs.frozen
class FakeRequest:
    """What a Django view reads from its request (``request.GET``)."""

    GET: dict[str, str]


@attrs.frozen
class FakeResponse:
    status: int
    data: dict[str, Any]


def test_inside_a_django_style_view_served_by_a_thread_pool(gateway: FakeGateway) -> None:
    # As a Django project would: one client at module (app) level, blocking views, and a
    # WSGI server that calls them from its worker threads.
    maxa_client = MaxaClient(
        gateway.credentials, base_url=gateway.base_url, retry=maxa.RetryPolicy.for_tests()
    )

    def check_prescription_line(request: FakeRequest) -> FakeResponse:
        item = maxa.CodedText(
            value=request.GET["value"], terminology_id="eRx", coded_string=request.GET["code"]
        )
        try:
            valid = maxa_client.validate_cts(item)
        except maxa.InvalidInputError as exc:
            return FakeResponse(400, {"error": exc.field})
        name = maxa_client.terminology("eRx", item.coded_string) if valid else None
        return FakeResponse(200, {"valid": valid, "name": name})

    items = erx_items(gateway, 60, wrong_every=3)
    requests = [FakeRequest({"code": i.coded_string, "value": i.value}) for i in items]
    requests.append(FakeRequest({"code": "", "value": "x"}))
    try:
        with ThreadPoolExecutor(max_workers=8) as server:
            responses = list(server.map(check_prescription_line, requests))
    finally:
        maxa_client.close()
    assert responses[-1] == FakeResponse(400, {"error": "coded_text.coded_string"})
    for item, response in zip(items, responses, strict=False):
        valid = expected_validity(gateway, item)
        name = item.value if valid else None
        assert response == FakeResponse(200, {"valid": valid, "name": name})
    assert gateway.stats.password_grants == 1
    assert maxa_client.closed


def test_close_is_clean_idempotent_and_final(gateway: FakeGateway) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with MaxaClient(gateway.credentials, base_url=gateway.base_url) as client:
            assert client.terminology("thritaEHR.Religion", "1") == "اسلام"
            loops = [t for t in threading.enumerate() if t.name == "maxa-sync-loop"]
            assert len(loops) == 1
        client.close()
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert not loops[0].is_alive()
    assert client.closed and "closed" in repr(client)
    with pytest.raises(RuntimeError, match="closed"):
        client.terminology("thritaEHR.Religion", "1")
    with pytest.raises(RuntimeError, match="closed"):
        list(client.validate_many(erx_items(gateway, 3)))


def test_a_client_never_used_starts_no_thread_and_closes(gateway: FakeGateway) -> None:
    before = sum(t.name == "maxa-sync-loop" for t in threading.enumerate())
    client = MaxaClient(gateway.credentials, base_url=gateway.base_url)
    assert sum(t.name == "maxa-sync-loop" for t in threading.enumerate()) == before
    client.close()
    assert gateway.stats.token_requests == 0


def test_a_garbage_collected_client_stops_its_loop(gateway: FakeGateway) -> None:
    client = MaxaClient(gateway.credentials, base_url=gateway.base_url)
    assert client.terminology("thritaEHR.Religion", "1") == "اسلام"
    loop_thread = next(t for t in threading.enumerate() if t.name == "maxa-sync-loop")
    del client
    gc.collect()
    loop_thread.join(timeout=10)
    assert not loop_thread.is_alive()


def test_middlewares_reach_the_session_of_the_sync_client(gateway: FakeGateway) -> None:
    seen: list[tuple[str, int]] = []

    async def record(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        seen.append((request.url.path.rsplit("/", 1)[-1], response.status))
        return response

    with MaxaClient(
        gateway.credentials,
        base_url=gateway.base_url,
        retry=maxa.RetryPolicy.for_tests(),
        middlewares=[record],
    ) as client:
        assert client.terminology("thritaEHR.Religion", "1") == "اسلام"
    assert seen == [("token", 200), ("Terminology", 200)]
