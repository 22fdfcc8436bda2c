"""Unsendable characters through the client: one clear error, nothing sent, runs go on.

A lone surrogate used to escape as orjson's bare TypeError: a single call crashed, and
``validate_many`` ended the whole run at that item (0 of 6 outcomes). Now the builder's
InvalidInputError names the field, the call sends nothing, and ``validate_many`` gives
that item an error outcome and the rest their answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest

import maxa_async as maxa
from maxa_async.errors import InvalidInputError
from maxa_async.testing import FakeGateway, GatewayConfig

pytestmark = pytest.mark.timeout(60)

HOME_PHONE: Final = maxa.CodedText("تلفن منزل", "ContactType", "1")
EMAIL: Final = maxa.CodedText("پست الکترونیکی شخصی", "ContactType", "6")
WRONG: Final = maxa.CodedText("فاکس منزل", "ContactType", "1")


async def test_a_call_with_a_lone_surrogate_is_refused_and_sends_nothing() -> None:
    async with (
        FakeGateway(GatewayConfig(seed=11)) as gw,
        maxa.MaxaClient(gw.credentials, base_url=gw.base_url) as client,
    ):
        calls: list[tuple[str, Any]] = [
            ("coded_string", client.terminology("thritaEHR.Religion", "\ud800")),
            ("terminology_id", client.terminology("\ud800", "1")),
            ("coded_text.value", client.validate_cts(maxa.CodedText("\ud800", "eRx", "1"))),
            ("version", client.terminology_value_by_version("eRx", "60002", version="1\x00")),
            ("version", client.terminologies_term_by_version("eRx", version="\uffff")),
        ]
        for field, call in calls:
            with pytest.raises(InvalidInputError) as caught:
                await call
            assert caught.value.field == field
        sent = gw.stats.requests + gw.stats.token_requests
    assert sent == 0  # refused before the grant, even


@pytest.mark.parametrize("source", ["list", "async"])
async def test_validate_many_gives_an_unsendable_item_its_error_and_goes_on(source: str) -> None:
    items = [
        HOME_PHONE,
        maxa.CodedText("\ud800", "ContactType", "1"),
        WRONG,
        maxa.CodedText("x", "ContactType", "6\udfff"),
        EMAIL,
        maxa.CodedText("a\x00b", "ContactType", "2"),
    ]

    async def aiter_items() -> AsyncIterator[maxa.CodedText]:
        for item in items:
            yield item

    async with (
        FakeGateway(GatewayConfig(seed=11)) as gw,
        maxa.MaxaClient(
            gw.credentials, base_url=gw.base_url, retry=maxa.RetryPolicy.for_tests()
        ) as client,
    ):
        feed: Any = items if source == "list" else aiter_items()
        outcomes = [outcome async for outcome in client.validate_many(feed)]
        sent = gw.stats.requests_by_operation.get("ValidateCts", 0)
    assert [o.item for o in outcomes] == items
    assert [o.valid for o in outcomes] == [True, None, False, None, True, None]
    errors = [o.error for o in outcomes if o.error is not None]
    assert [type(e) for e in errors] == [InvalidInputError] * 3
    assert [e.field for e in errors if isinstance(e, InvalidInputError)] == [
        "coded_text.value",
        "coded_text.coded_string",
        "coded_text.value",
    ]
    assert sent == 3
    assert client.stats.failures == 3
