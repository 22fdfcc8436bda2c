"""validate_many's default window: one item waiting out a whole-second Retry-After must not
stall the run, whatever the rate. The window holds at least 16,384 items, not only 16 per
slot: at thousands of requests a second, 16 x 64 items are sent within half a second."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

import maxa_async as maxa
from maxa_async.bulk import default_window
from maxa_async.testing import FakeGateway

HEAD = "the item that waits"
OTHERS = 600


def test_the_default_window_holds_16_per_slot_and_at_least_16384() -> None:
    assert default_window(2) == 16_384
    assert default_window(64) == 16_384
    assert default_window(1024) == 16 * 1024
    assert default_window(4096) == 16 * 4096


def _holding_back_the_head(
    released: list[int],
) -> Callable[[ClientRequest, ClientHandlerType], Awaitable[ClientResponse]]:
    """A middleware that keeps the first item's request back (as a Retry-After would) until
    every other item was answered, or 10 s passed; ``released`` gets the count of other
    items answered by then."""
    answered = 0
    all_answered = asyncio.Event()

    async def hold(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        nonlocal answered
        if not request.url.path.endswith("ValidateCts"):
            return await handler(request)  # the token grant
        if HEAD.encode() in await request.body.as_bytes():
            async with asyncio.timeout(10):
                await all_answered.wait()
            released.append(answered)
            return await handler(request)
        response = await handler(request)
        answered += 1
        if answered == OTHERS:
            all_answered.set()
        return response

    return hold


@pytest.mark.parametrize("concurrency", [2, 8])
async def test_one_item_held_back_does_not_stall_the_items_after_it(
    make_client: Callable[..., maxa.MaxaClient], gateway: FakeGateway, concurrency: int
) -> None:
    # With a window of 16 per slot (32 or 128 items), the run would stop taking items once
    # that many were in progress behind the held one, and the wait would time out.
    items = [maxa.CodedText(value=HEAD, terminology_id="ContactType", coded_string="1")]
    items += [
        maxa.CodedText(value=f"other {i}", terminology_id="ContactType", coded_string="1")
        for i in range(OTHERS)
    ]
    released: list[int] = []
    async with make_client(
        max_concurrency=concurrency, middlewares=[_holding_back_the_head(released)]
    ) as client:
        outcomes = [outcome async for outcome in client.validate_many(items)]
    assert released == [OTHERS]  # every other item was answered while the head waited
    assert [outcome.item for outcome in outcomes] == items  # and still yielded in order
    assert all(outcome.error is None for outcome in outcomes)
    assert gateway.stats.requests_by_operation["ValidateCts"] == OTHERS + 1
