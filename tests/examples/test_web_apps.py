"""The FastAPI and aiohttp examples, served against the fake gateway."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from maxa_async.testing import FakeGateway

ACETAMINOPHEN = "ACETAMINOPHEN 100 mg / 1mL 15 mL SOLUTION / DROPS ORAL"

PRESCRIPTION = {
    "items": [
        {"terminology": "eRx", "code": "60002", "value": ACETAMINOPHEN},
        {"terminology": "eRx", "code": "60002", "value": "ACETAMINOPHEN 500 mg TABLET"},
        {"terminology": "thritaEHR.Religion", "code": "1", "value": "اسلام"},
        {"terminology": "eRx", "code": "", "value": ACETAMINOPHEN},
        {"code": "60281", "value": "MOMETASONE FUROATE 0.1 % 15 g CREAM TOPICAL [MEGACORT]"},
    ]
}
EXPECTED = ["valid", "invalid", "valid", "error", "valid"]


def _check(body: dict[str, Any]) -> None:
    assert body["valid"] is False
    assert [item["status"] for item in body["items"]] == EXPECTED
    assert [item["index"] for item in body["items"]] == [0, 1, 2, 3, 4]
    assert body["items"][3]["message"] == "coded_text.coded_string: must not be empty"
    assert body["items"][4]["terminology"] == "eRx"  # the default


async def test_fastapi_one_client_for_the_lifespan(
    fake_gateway: FakeGateway, fastapi_app: ModuleType
) -> None:
    settings = fastapi_app.Settings(fake_gateway.credentials, base_url=fake_gateway.base_url)
    app = fastapi_app.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            first = await http.post("/prescriptions/validate", json=PRESCRIPTION)
            assert first.status_code == 200, first.text
            _check(first.json())

            good = {"items": [{"terminology": "eRx", "code": "60002", "value": ACETAMINOPHEN}]}
            second = await http.post("/prescriptions/validate", json=good)
            assert second.json()["valid"] is True

            refused = await http.post("/prescriptions/validate", json={"items": []})
            assert refused.status_code == 422
        client = app.state.maxa
    # One client, one token for every request; closed with the app.
    assert fake_gateway.stats.password_grants == 1
    assert fake_gateway.stats.requests_by_operation["ValidateCts"] >= 4
    assert client.stats.password_grants == 1
    with pytest.raises(RuntimeError, match="closed"):  # the lifespan closed it
        await client.open()


async def test_fastapi_reports_gateway_failures_per_item(
    fake_gateway: FakeGateway, fastapi_app: ModuleType
) -> None:
    fake_gateway.config.blocked_ip = True
    settings = fastapi_app.Settings(fake_gateway.credentials, base_url=fake_gateway.base_url)
    app = fastapi_app.create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            body = (await http.post("/prescriptions/validate", json=PRESCRIPTION)).json()
    # The empty code is refused before sending; the others meet the blocked IP.
    assert [item["status"] for item in body["items"]] == ["error"] * 5
    assert "MAXA could not answer" in body["items"][0]["message"]
    assert "status=403" in body["items"][0]["message"]


async def test_aiohttp_cleanup_ctx_client(
    fake_gateway: FakeGateway, aiohttp_app: ModuleType
) -> None:
    settings = aiohttp_app.Settings(fake_gateway.credentials, base_url=fake_gateway.base_url)
    app = aiohttp_app.create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        response = await http.post("/prescriptions/validate", json=PRESCRIPTION)
        assert response.status == 200, await response.text()
        _check(await response.json())

        not_json = await http.post("/prescriptions/validate", data=b"{nope")
        assert not_json.status == 400
        bad = await http.post("/prescriptions/validate", json={"items": [{"code": 1}]})
        assert bad.status == 400
        assert "must be strings" in (await bad.json())["error"]
        client = app[aiohttp_app.MAXA_CLIENT]
    with pytest.raises(RuntimeError, match="closed"):  # cleanup_ctx closed it
        await client.open()
    assert fake_gateway.stats.password_grants == 1
