"""Per-attempt time limits: one timer for all attempts in flight (transport._Deadlines),
checked against a gateway that answers late, and at the unit level for the cases a
real server cannot time exactly (a caller's cancellation meeting the deadline)."""

from __future__ import annotations

import asyncio
import time

import pytest

import maxa_async as maxa
from maxa_async.testing import FakeGateway
from maxa_async.transport import _Deadlines

RELIGION = ("thritaEHR.Religion", "1")


async def test_a_late_answer_times_out_near_the_limit(make_client, gateway: FakeGateway):
    gateway.config.latency = 2.0
    async with make_client(timeout=0.3, retry=maxa.RetryPolicy.for_tests(attempts=1)) as client:
        await client.open()
        started = time.monotonic()
        with pytest.raises(maxa.TransportError, match="did not answer in time") as caught:
            await client.terminology(*RELIGION)
        took = time.monotonic() - started
        # the limit and the timer's slack: well before the answer at 2 s
        assert 0.3 <= took < 1.9, took
        assert caught.value.operation == "Terminology"
        assert client.stats.responses[0] == 1
    gateway.config.latency = 0.0


async def test_only_the_late_attempts_time_out_and_are_retried(make_client, gateway):
    # 8 calls reach the gateway while it answers in 1.5 s, then 32 while it answers at
    # once: the 8 time out after 0.4 s and their retry succeeds; the 32 are untouched.
    items = [
        maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
        for i in range(40)
    ]
    async with make_client(timeout=0.4, retry=maxa.RetryPolicy.for_tests(attempts=2)) as client:
        await client.terminology(*RELIGION)  # the token, outside the counts
        gateway.config.latency = 1.5
        slow = [asyncio.ensure_future(client.validate_cts(item)) for item in items[:8]]
        await asyncio.sleep(0.1)  # all 8 are in the gateway, sleeping
        gateway.config.latency = 0.0
        fast = await asyncio.gather(*(client.validate_cts(item) for item in items[8:]))
        assert client.stats.retries["transport"] == 0  # the fast ones did not wait
        assert await asyncio.gather(*slow) == [False] * 8
        assert fast == [False] * 32
        assert client.stats.retries["transport"] == 8
        assert client.stats.responses[0] == 8
        assert client.stats.failures == 0
        assert client.limiter.in_flight == 0


async def test_a_cancelled_caller_is_cancelled_not_timed_out(make_client, gateway):
    gateway.config.latency = 2.0
    async with make_client(timeout=5.0) as client:
        await client.open()
        task = asyncio.ensure_future(client.terminology(*RELIGION))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.limiter.in_flight == 0
        assert not client._transport._deadlines._live
        assert not client._transport._deadlines.expired
    gateway.config.latency = 0.0


async def test_the_timer_is_armed_only_while_attempts_are_in_flight(make_client, gateway):
    async with make_client(timeout=30.0) as client:
        deadlines = client._transport._deadlines
        assert deadlines._handle is None  # nothing sent yet
        await asyncio.gather(*(client.terminology(*RELIGION) for _ in range(50)))
        assert not deadlines._live  # every attempt forgotten once answered
        assert deadlines._handle is not None  # armed at the first send, fires later
    assert deadlines._handle is None  # close() disarms it: no callback outlives the client


# ------------------------------------------------------------------ unit level


async def _parked(deadlines: _Deadlines, started: asyncio.Event) -> str:
    """An 'attempt' shaped as AiohttpTransport.request: register, wait, classify."""
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    key = deadlines.start(task.get_loop(), task)
    try:
        started.set()
        await asyncio.sleep(10)
        return "answered"
    except asyncio.CancelledError:
        if deadlines.end(key) and task.uncancel() <= cancelling:
            return "timed out"
        raise
    finally:
        deadlines.end(key)


async def test_expiry_cancels_and_marks_only_the_late_ones() -> None:
    deadlines = _Deadlines(0.2)
    started = asyncio.Event()
    first = asyncio.ensure_future(_parked(deadlines, started))
    await started.wait()
    await asyncio.sleep(0.15)
    started.clear()
    second = asyncio.ensure_future(_parked(deadlines, started))  # expires 0.15 s later
    await started.wait()
    assert await first == "timed out"
    assert not second.done()  # the sweep re-armed for it instead of cutting it short
    assert await second == "timed out"
    assert not deadlines._live and not deadlines.expired
    deadlines.close()


async def test_a_caller_cancel_meeting_the_deadline_stays_a_cancellation() -> None:
    deadlines = _Deadlines(0.1)
    started = asyncio.Event()
    task = asyncio.ensure_future(_parked(deadlines, started))
    await started.wait()
    if deadlines._handle is not None:
        deadlines._handle.cancel()  # the test runs the sweep itself, at a chosen moment
    await asyncio.sleep(0.15)  # past the deadline
    deadlines._sweep(asyncio.get_running_loop())  # the deadline cancels the task...
    task.cancel()  # ...and its caller cancels it too, before it runs again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines.expired
    deadlines.close()


async def test_a_deadline_passing_as_the_answer_arrives_is_a_time_out() -> None:
    # The answer is in (the task is scheduled to resume) when the sweep runs in the same
    # loop turn: the deadline wins, the attempt reports a time-out, and the task is left
    # with no cancellation pending.
    deadlines = _Deadlines(0.01)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    started = asyncio.Event()

    async def attempt() -> str:
        task = asyncio.current_task()
        assert task is not None
        key = deadlines.start(loop, task)
        try:
            started.set()
            return await answer
        except asyncio.CancelledError:
            if deadlines.end(key) and task.uncancel() <= 0:
                return "timed out"
            raise
        finally:
            deadlines.end(key)

    task = asyncio.ensure_future(attempt())
    await started.wait()
    if deadlines._handle is not None:
        deadlines._handle.cancel()  # the test runs the sweep itself, at a chosen moment
    await asyncio.sleep(0.02)  # past the deadline
    answer.set_result("answered")  # the task is now scheduled to resume...
    deadlines._sweep(loop)  # ...and the sweep runs first
    assert await task == "timed out"
    assert task.cancelling() == 0
    assert not deadlines._live and not deadlines.expired
    deadlines.close()
