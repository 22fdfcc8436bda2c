"""Plain-aiohttp helpers for the fake gateway's own tests (deliberately not our client)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import attrs
import orjson

from maxa_async.testing import OPERATIONS_PREFIX, FakeGateway

FROM_1390 = {
    "iSOStringField": "",
    "yearField": 1390,
    "monthField": 10,
    "dayField": 10,
    "hourField": 10,
    "minuteField": 10,
    "secondField": 10,
}

#: A valid body for each operation (the guide's samples).
SAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "Terminology": {"terminologyId": " thritaEHR.Religion", "codedString": "1"},
    "SearchTerminology": {"TerminologyId": "ContactType", "FromDate": FROM_1390},
    "ValidateCts": {
        "DoCodedText": {
            "valueField": "پست الکترونیکی شخصی",
            "terminology_idField": "ContactType",
            "coded_stringField": "6",
        }
    },
    "CtsTerminologies": {"FromDate": {k: v for k, v in FROM_1390.items() if k != "iSOStringField"}},
    "TerminologyValueByVersion": {
        "terminologyId": "ERX",
        "codedString": "60002",
        "version": "1000",
    },
    "TerminologiesTermByVersion": {"terminologyId": "ContactType", "version": "1"},
    "TerminologyVersions": {"terminologyId": "ErX"},
}

METHODS = {name: ("GET" if name == "Terminology" else "POST") for name in SAMPLE_BODIES}

VALID = SAMPLE_BODIES["ValidateCts"]


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def data(self) -> Any:
        """``result.data`` of a success envelope."""
        envelope = self.json()
        assert envelope["status"] == {"statusCode": 200, "message": "OK"}, envelope
        assert envelope["result"]["status"] == {"statusCode": 200}, envelope
        return envelope["result"]["data"]

    @property
    def is_not_found(self) -> bool:
        return self.status == 200 and self.json() == {
            "result": {"status": {"statusCode": 404}},
            "status": {"statusCode": 200, "message": "OK"},
        }


class Wire:
    """Talks to one fake gateway with a plain aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, gateway: FakeGateway) -> None:
        self.session = session
        self.gateway = gateway
        self.access: str | None = None
        self.refresh: str | None = None

    @property
    def url(self) -> str:
        return self.gateway.base_url

    async def raw(
        self, method: str, path: str, *, data: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        async with self.session.request(
            method, self.url + path, data=data, headers=headers or {}
        ) as response:
            return Reply(response.status, dict(response.headers), await response.read())

    async def token(self, form: dict[str, str], *, client: tuple[str, str] | None = None) -> Reply:
        cfg = self.gateway.config
        login, secret = client or (cfg.client_id, cfg.client_secret)
        headers = {"Authorization": aiohttp.encode_basic_auth(login, secret)}
        return await self.raw("POST", "/oauth/token", data=form, headers=headers)

    async def login(self) -> str:
        cfg = self.gateway.config
        reply = await self.token(
            {"grant_type": "password", "username": cfg.username, "password": cfg.password}
        )
        assert reply.status == 200, reply
        self.access = reply.json()["access_token"]
        self.refresh = reply.json()["refresh_token"]
        return self.access

    async def refresh_grant(self, refresh: str | None = None) -> Reply:
        reply = await self.token(
            {"grant_type": "refresh_token", "refresh_token": refresh or self.refresh or ""}
        )
        if reply.status == 200:
            self.access = reply.json()["access_token"]
            self.refresh = reply.json()["refresh_token"]
        return reply

    async def call(
        self,
        operation: str,
        body: Any = None,
        *,
        method: str | None = None,
        token: str | None = None,
        pid: str | None = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> Reply:
        if token is None:
            token = self.access or await self.login()
        sent = {
            "Content-Type": "application/json",
            "pid": self.gateway.config.pid if pid is None else pid,
            "Authorization": f"Bearer {token}",
        }
        sent.update(headers or {})
        payload = (
            raw_body
            if raw_body is not None
            else orjson.dumps(SAMPLE_BODIES[operation] if body is None else body)
        )
        return await self.raw(
            method or METHODS[operation], OPERATIONS_PREFIX + operation, data=payload, headers=sent
        )

    async def validate(self, **kwargs: Any) -> Reply:
        return await self.call("ValidateCts", VALID, **kwargs)

    async def stats(self) -> dict[str, Any]:
        reply = await self.raw("GET", "/__stats")
        assert reply.status == 200
        return dict(reply.json())


def wait_for_window_start(margin: float = 0.6) -> None:
    """Sleep (< 1 s) until early in a wall-clock second, so a burst fits in one window."""
    fraction = time.time() % 1.0
    if fraction > 1.0 - margin:
        time.sleep(1.0 - fraction + 0.01)
