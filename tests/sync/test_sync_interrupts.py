"""Ctrl-C in a blocking call or mid-bulk cancels the work in the loop; the client keeps
working. SIGINT is sent to the main thread (where pytest runs the test), as a terminal's
Ctrl-C is, once the gateway shows the request in flight."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from maxa_async.sync import MaxaClient
from maxa_async.testing import FakeGateway

from .test_sync_client import erx_items, expected_validity

BOUND = 30.0  # seconds: every wait here ends by then


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@contextlib.contextmanager
def ctrl_c_when(condition: Callable[[], bool]) -> Iterator[threading.Event]:
    """Send SIGINT to the main thread once ``condition()`` holds; yields 'sent'.

    Its handler raises KeyboardInterrupt only inside the block: a signal that arrived
    late (the call ended first) fails the test's own assertions instead of stopping the
    whole pytest session."""
    assert threading.current_thread() is threading.main_thread()
    armed = True

    def interrupt(signum: int, frame: object) -> None:
        if armed:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    sent = threading.Event()
    stop = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        deadline = time.monotonic() + BOUND
        while not stop.is_set() and time.monotonic() < deadline:
            if condition():
                sent.set()
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.005)

    timer = threading.Thread(target=fire, daemon=True)
    timer.start()
    try:
        yield sent
    finally:
        armed = False
        stop.set()
        timer.join()
        time.sleep(0.05)  # a signal still pending is handled here, by the disarmed handler
        signal.signal(signal.SIGINT, previous)


def limiter_in_flight(client: MaxaClient) -> int:
    return int(client.stats_as_dict()["limiter"]["in_flight"])


def test_ctrl_c_during_a_call_cancels_it_and_the_client_keeps_working(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    assert client.terminology("thritaEHR.Religion", "1") == "اسلام"  # token in hand
    gateway.config.latency = 5.0
    with (
        ctrl_c_when(lambda: gateway.stats.in_flight >= 1) as sent,
        pytest.raises(KeyboardInterrupt),
    ):
        client.terminology("eRx", "60002")
    assert sent.is_set()
    assert limiter_in_flight(client) == 0  # the cancelled call released its slot
    assert eventually(lambda: gateway.stats.in_flight == 0)
    assert gateway.stats.client_closed == 1  # the request was abandoned, not awaited
    gateway.config.latency = 0.0
    assert client.terminology("eRx", "60002").startswith("ACETAMINOPHEN")
    assert gateway.stats.password_grants == 1
    assert client.stats_as_dict()["failures"] == 0


def test_ctrl_c_in_one_thread_leaves_the_other_threads_calls_alone(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    assert client.terminology("thritaEHR.Religion", "1") == "اسلام"
    gateway.config.latency = 1.0
    items = erx_items(gateway, 4, wrong_every=2)
    answers: dict[int, bool] = {}

    def other(index: int) -> None:
        answers[index] = client.validate_cts(items[index])

    others = [threading.Thread(target=other, args=(i,)) for i in range(len(items))]
    for thread in others:
        thread.start()
    with (
        ctrl_c_when(lambda: gateway.stats.in_flight >= len(items) + 1),
        pytest.raises(KeyboardInterrupt),
    ):
        client.terminology("eRx", "60002")
    for thread in others:
        thread.join(timeout=BOUND)
    assert answers == {i: expected_validity(gateway, item) for i, item in enumerate(items)}
    assert gateway.stats.client_closed == 1
    assert limiter_in_flight(client) == 0


def test_ctrl_c_while_waiting_for_bulk_outcomes(client: MaxaClient, gateway: FakeGateway) -> None:
    items = erx_items(gateway, 3000)
    assert client.validate_cts(items[1]) is True
    gateway.config.latency = 2.0
    run = client.validate_many(items, window=256)
    with (
        ctrl_c_when(lambda: gateway.stats.in_flight >= 8) as sent,
        pytest.raises(KeyboardInterrupt),
    ):
        for _ in run:
            pass
    assert sent.is_set()
    assert next(run, None) is None  # the interrupted run is over
    assert limiter_in_flight(client) == 0  # its workers were cancelled before next() raised
    assert eventually(lambda: gateway.stats.in_flight == 0)
    assert gateway.stats.client_closed >= 8
    gateway.config.latency = 0.0
    again = list(client.validate_many(items[:400]))
    assert [o.valid for o in again] == [expected_validity(gateway, i) for i in items[:400]]
    assert gateway.stats.password_grants == 1


def test_keyboard_interrupt_raised_by_the_consumer_mid_bulk(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    items = erx_items(gateway, 5000)
    gateway.config.latency = 0.002
    taken = 0
    with pytest.raises(KeyboardInterrupt), client.validate_many(items, window=128) as run:
        for outcome in run:
            assert outcome.valid is expected_validity(gateway, outcome.item)
            taken += 1
            if taken == 300:
                raise KeyboardInterrupt
    assert taken == 300
    assert limiter_in_flight(client) == 0  # leaving the with block stopped the run
    assert gateway.stats.requests_by_operation["ValidateCts"] < len(items)
    gateway.config.latency = 0.0
    assert client.validate_cts(items[0]) is expected_validity(gateway, items[0])
    assert gateway.stats.password_grants == 1


def test_a_run_dropped_by_an_exception_is_stopped_when_collected(
    client: MaxaClient, gateway: FakeGateway
) -> None:
    items = erx_items(gateway, 5000)
    gateway.config.latency = 0.002

    def consume() -> int:
        taken = 0
        for _ in client.validate_many(items, window=128):  # no with block, no close()
            taken += 1
            if taken == 200:
                raise KeyboardInterrupt
        return taken

    with pytest.raises(KeyboardInterrupt):
        consume()
    assert eventually(lambda: limiter_in_flight(client) == 0)
    sent = gateway.stats.requests_by_operation["ValidateCts"]
    assert sent < len(items)
    gateway.config.latency = 0.0
    assert client.validate_cts(items[3]) is expected_validity(gateway, items[3])
