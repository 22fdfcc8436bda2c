"""Retries, typed errors, cancellation and validate_many against a misbehaving gateway."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import pytest

import maxa_async as maxa
from maxa_async.testing import FakeGateway

RELIGION = ("thritaEHR.Religion", "1")


def contact(code: int, value: str) -> maxa.CodedText:
    return maxa.CodedText(value=value, terminology_id="ContactType", coded_string=str(code))


CONTACT_VALUES = {
    1: "تلفن منزل",
    2: "تلفن محل کار",
    3: "تلفن همراه شخصی",
    6: "پست الکترونیکی شخصی",
    14: "نشانی محل کار",
}


def mixed_items(n: int) -> list[tuple[maxa.CodedText, bool]]:
    items = []
    codes = sorted(CONTACT_VALUES)
    for i in range(n):
        code = codes[i % len(codes)]
        valid = i % 3 != 0
        value = CONTACT_VALUES[code] if valid else f"نادرست {i}"
        items.append((contact(code, value), valid))
    return items


async def test_5xx_and_dropped_connections_lose_nothing(make_client, gateway: FakeGateway):
    gateway.config.error_rate = 0.05
    gateway.config.drop_rate = 0.01
    expected = mixed_items(3000)
    async with make_client(
        max_concurrency=32, retry=maxa.RetryPolicy(attempts=8, backoff=False)
    ) as client:
        outcomes = [o async for o in client.validate_many(item for item, _ in expected)]
    assert len(outcomes) == len(expected)
    for outcome, (item, valid) in zip(outcomes, expected, strict=True):
        assert outcome.item is item
        assert outcome.error is None, outcome.error
        assert outcome.valid is valid
    assert gateway.stats.dropped > 0
    assert sum(gateway.stats.responses_by_status.get(s, 0) for s in (499, 500, 503, 504, 520)) > 0
    assert sum(client.stats.retries.values()) > 0


@pytest.mark.parametrize(
    ("knob", "error", "status", "words"),
    [
        ("blocked_ip", maxa.ForbiddenError, 403, "registered"),
        ("permanent_429", maxa.RateLimitedError, 429, "permission"),
    ],
)
async def test_blocking_modes_surface_typed_errors(
    make_client, gateway, knob, error, status, words
):
    async with make_client(retry=maxa.RetryPolicy(attempts=3, backoff=False)) as client:
        await client.terminology(*RELIGION)  # token first, then the gateway turns hostile
        setattr(gateway.config, knob, True)
        gateway.config.retry_after = False
        with pytest.raises(error) as info:
            await client.terminology(*RELIGION)
    assert info.value.status == status
    assert words in str(info.value)
    assert info.value.operation == "Terminology"


async def test_non_retryable_errors_surface_at_once(make_client, gateway):
    async with make_client() as client:
        with pytest.raises(maxa.NotFoundError):
            await client.terminology_value_by_version("eRx", "60002", version="no-such-version")
    # one request, no retries
    assert gateway.stats.requests_by_operation["TerminologyValueByVersion"] == 1
    assert sum(client.stats.retries.values()) == 0


async def test_html_error_pages_are_retried(make_client, gateway):
    gateway.config.html_rate = 0.2
    async with make_client(retry=maxa.RetryPolicy(attempts=10, backoff=False)) as client:
        results = await asyncio.gather(
            *(
                client.terminology_value_by_version("eRx", "60002", version="1000")
                for _ in range(200)
            ),
        )
    assert len(results) == 200


async def test_cancel_half_of_500_in_flight_calls_leaks_nothing(make_client, gateway):
    gateway.config.latency = 0.05
    async with make_client(max_concurrency=32, coalesce=False) as client:
        tasks = [
            asyncio.create_task(client.terminology_value_by_version("eRx", "60002", version="1000"))
            for _ in range(500)
        ]
        await asyncio.sleep(0.12)
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        assert cancelled >= 200
        odd = [r for r in results if not isinstance(r, str | asyncio.CancelledError)]
        assert odd == [], odd[:3]
        assert client.limiter.in_flight == 0
        assert client.limiter.waiting == 0
        gateway.config.latency = 0.0
        # the server still finishes the abandoned requests; count from a clean slate
        for _ in range(500):
            if not gateway.stats.in_flight:
                break
            await asyncio.sleep(0.01)
        gateway.reset_stats()
        again = await asyncio.gather(
            *(
                client.terminology_value_by_version("eRx", "60002", version="1000")
                for _ in range(500)
            )
        )
        assert len(again) == 500
        assert client.limiter.in_flight == 0
        assert client.limiter.waiting == 0
    assert gateway.stats.peak_in_flight <= 32


async def test_validate_many_accepts_async_iterables_and_bad_items(make_client):
    async def source():
        yield contact(1, CONTACT_VALUES[1])
        yield "garbage"
        yield contact(2, "wrong")

    async with make_client() as client:
        outcomes = [o async for o in client.validate_many(source())]
    assert [o.valid for o in outcomes] == [True, None, False]
    assert isinstance(outcomes[1].error, maxa.InvalidInputError)


async def test_validate_many_stopping_early_cancels_the_window(make_client):
    async with make_client(max_concurrency=8) as client:
        seen = 0
        async for _ in client.validate_many(contact(1, CONTACT_VALUES[1]) for _ in range(10_000)):
            seen += 1
            if seen == 50:
                break
        await asyncio.sleep(0.05)
        assert client.limiter.in_flight == 0


async def test_validate_many_memory_is_bounded(make_client, gateway):
    """300,000 items: memory at the end is no larger than after the first 40,000.

    Items cycle over 3,000 distinct (code, value) pairs with a cache on, so the run is
    3,000 real requests plus 297,000 answers from memory: both paths of the window."""
    total = 300_000

    def items():
        for i in range(total):
            key = i % 3000
            yield contact(1 + key % 14, f"v{key}")

    cache = maxa.ResponseCache(maxsize=10_000, ttl=600)
    async with make_client(max_concurrency=32, cache=cache) as client:
        count = 0
        early = late = 0
        previous = -1
        async for outcome in client.validate_many(items()):
            assert outcome.error is None
            assert outcome.item.value == f"v{count % 3000}"  # input order
            count += 1
            if count == 10_000:
                tracemalloc.start()  # trace only the steady state: cheaper, same answer
            elif count == 40_000:
                gc.collect()
                early = tracemalloc.get_traced_memory()[0]
            previous = count
        gc.collect()
        late = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    assert previous == count == total
    assert gateway.stats.requests_by_operation["ValidateCts"] <= 3_000 + 64
    assert late - early < 500_000, (early, late)
