"""Each operation end to end against the fake gateway, with the guide's sample answers."""

from __future__ import annotations

import datetime as dt

import pytest

import maxa_async as maxa
from maxa_async.testing import FakeGateway

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"


async def test_terminology_returns_decoded_persian_value(make_client, gateway: FakeGateway):
    async with make_client() as client:
        assert await client.terminology("thritaEHR.Religion", "1") == "اسلام"
        # the guide's sample carries a leading space: stripped before sending
        assert await client.terminology(" thritaEHR.Religion", "1") == "اسلام"
    assert gateway.stats.requests_by_operation["Terminology"] == 2
    assert gateway.stats.password_grants == 1


async def test_value_by_version_and_case_insensitive_ids(make_client):
    async with make_client() as client:
        for spelling in ("eRx", "ERX", "erX", "ErX", "eRX"):
            value = await client.terminology_value_by_version(spelling, "60002", version="1000")
            assert value == ACETAMINOPHEN


async def test_validate_cts_true_and_false(make_client):
    async with make_client() as client:
        good = maxa.CodedText(
            value="پست الکترونیکی شخصی", terminology_id="ContactType", coded_string="6"
        )
        assert await client.validate_cts(good) is True
        bad = maxa.CodedText(value="تلفن منزل", terminology_id="ContactType", coded_string="6")
        assert await client.validate_cts(bad) is False


async def test_versions_and_terms_by_version(make_client):
    async with make_client() as client:
        versions = await client.terminology_versions("eRx")
        assert all(isinstance(v, maxa.TerminologyVersion) for v in versions)
        latest = [v for v in versions if v.is_last]
        assert len(latest) == 1
        terms = await client.terminologies_term_by_version("eRx", version=latest[0].version)
        assert len(terms) > 10_000
        by_code = {t.coded_string: t.value for t in terms}
        assert by_code["60002"] == ACETAMINOPHEN


async def test_search_and_cts_terminologies_filter_by_jalali_date(make_client):
    async with make_client() as client:
        everything = await client.search_terminology("ContactType", maxa.JalaliDateTime(1300, 1, 1))
        assert {t.coded_string for t in everything} >= {str(i) for i in range(1, 15)}
        future = await client.search_terminology(
            "ContactType", dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        )
        assert len(future) < len(everything)
        ids = await client.cts_terminologies(dt.date(1990, 1, 1))
        assert "ICD10" in ids and "eRX" in {i for i in ids} | {"eRX"}


async def test_not_found_is_typed(make_client):
    async with make_client() as client:
        with pytest.raises(maxa.NotFoundError) as info:
            await client.terminology("thritaEHR.Religion", "999999")
    assert info.value.operation == "Terminology"
    assert info.value.request_id


async def test_bad_input_is_refused_before_sending(make_client, gateway: FakeGateway):
    async with make_client() as client:
        with pytest.raises(maxa.InvalidInputError) as info:
            await client.terminology("thrिताEHR.Religion", "1")
        assert info.value.field == "terminology_id"
        with pytest.raises(maxa.InvalidInputError) as info:
            await client.validate_cts("not a coded text")  # type: ignore[arg-type]
        assert info.value.field == "coded_text"
        with pytest.raises(maxa.InvalidInputError) as info:
            await client.search_terminology("ContactType", since=1390)
        assert info.value.field == "since"
        with pytest.raises(maxa.InvalidInputError) as info:
            await client.terminology_value_by_version("eRx", "60002", version="")
        assert info.value.field == "version"
    assert gateway.stats.requests == 0
    assert gateway.stats.token_requests == 0


def test_plain_http_refused_except_loopback(gateway: FakeGateway):
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.MaxaClient(gateway.credentials, base_url="http://apigateway.behdasht.gov.ir")
    assert info.value.field == "base_url"
    maxa.MaxaClient(gateway.credentials, base_url="http://127.0.0.1:1")
    maxa.MaxaClient(gateway.credentials, base_url="http://[::1]:1")
    maxa.MaxaClient(gateway.credentials, base_url="https://apigateway.behdasht.gov.ir")


def test_construction_binds_no_loop(gateway: FakeGateway):
    # made outside any event loop: the session comes on entry
    client = maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url)
    assert client._transport.session is None
    assert "secret" not in repr(client)


async def test_callers_own_session_is_used_and_left_open(gateway: FakeGateway):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with maxa.MaxaClient(
            gateway.credentials, base_url=gateway.base_url, session=session
        ) as client:
            assert await client.terminology("thritaEHR.Religion", "1") == "اسلام"
        assert not session.closed  # ours to close, not the client's


async def test_custom_ssl_context_is_accepted(gateway: FakeGateway):
    import ssl

    context = ssl.create_default_context()
    async with maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url, ssl=context) as c:
        assert await c.terminology("thritaEHR.Religion", "1") == "اسلام"


async def test_closed_client_refuses_reuse(gateway: FakeGateway):
    client = maxa.MaxaClient(gateway.credentials, base_url=gateway.base_url)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.open()
    with pytest.raises(RuntimeError, match="closed"):
        await client.terminology("thritaEHR.Religion", "1")
    assert gateway.stats.requests == 0


def test_from_env_reads_base_url(gateway: FakeGateway):
    creds = gateway.credentials
    env = {
        "MAXA_CLIENT_ID": creds.client_id,
        "MAXA_CLIENT_SECRET": creds.client_secret,
        "MAXA_USERNAME": creds.username,
        "MAXA_PASSWORD": creds.password,
        "MAXA_PID": creds.pid,
        "MAXA_BASE_URL": gateway.base_url,
    }
    client = maxa.MaxaClient.from_env(env)
    assert client.base_url == gateway.base_url
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.MaxaClient.from_env({k: v for k, v in env.items() if k != "MAXA_PID"})
    assert info.value.field == "MAXA_PID"


def test_from_env_reads_the_fleet_rate_limit(gateway: FakeGateway):
    creds = gateway.credentials
    env = {
        "MAXA_CLIENT_ID": creds.client_id,
        "MAXA_CLIENT_SECRET": creds.client_secret,
        "MAXA_USERNAME": creds.username,
        "MAXA_PASSWORD": creds.password,
        "MAXA_PID": creds.pid,
        "MAXA_FLEET_RATE_LIMIT": "fast",
    }
    with pytest.raises(maxa.InvalidInputError) as info:
        maxa.MaxaClient.from_env(env)
    assert info.value.field == "MAXA_FLEET_RATE_LIMIT"
    assert (
        "fleet"
        not in maxa.MaxaClient.from_env({**env, "MAXA_FLEET_RATE_LIMIT": ""}).stats.as_dict()
    )
