"""The learned fleet pace (no ``fleet_rate_limit``): the rule against a real Redis with
explicit counts, and a fleet of real processes against the fake gateway's limiters."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import redis.asyncio as aioredis

import maxa_async as maxa
from maxa_async.fleet import Fleet, RedisRateGate
from maxa_async.testing import FakeGateway, GatewayConfig

from .conftest import RedisServer, Workers, gateway_process, make_gate

CREDS = maxa.Credentials(
    client_id="client-l", client_secret="secret", username="user-l", password="pw", pid="pid-l"
)


def _gate(stack: contextlib.AsyncExitStack, redis_url: str, **options: object) -> RedisRateGate:
    return make_gate(stack, redis_url, CREDS, **options)


def _answers(gate: RedisRateGate, admitted: int = 0, refused: int = 0) -> None:
    for _ in range(admitted):
        gate.observe(False, None)
    for _ in range(refused):
        gate.observe(True, 1.0)


async def _pace_state(redis_url: str, gate: RedisRateGate) -> dict[str, float]:
    async with aioredis.from_url(redis_url) as peek:
        raw = await peek.hgetall(gate.fleet.key("pace"))
    return {
        key.decode() if isinstance(key, bytes) else key: float(value) for key, value in raw.items()
    }


async def _set_curve(
    redis_url: str,
    gate: RedisRateGate,
    *,
    estimate: float,
    start: float,
    since_cut: float,
    ramp: bool = False,
    idle_for: float = 0.0,
) -> None:
    """Put the fleet's pace on its curve (a reopening after a cut, generation 2: cubic, or
    the ramp), ``since_cut`` seconds after the cut (Redis's clock). The fleet took every
    slot of that pace until ``idle_for`` seconds ago (its timeline is free from then)."""
    async with aioredis.from_url(redis_url) as peek:
        seconds, micros = await peek.time()
        now = int(seconds) * 1_000_000 + int(micros)
        mapping = {
            "gen": "2",
            "w": str(estimate),
            "start": str(start),
            "epoch": f"{now - since_cut * 1e6:.0f}",
            "spent": "0",
            "ramp": "1" if ramp else "0",
        }
        await peek.hset(gate.fleet.key("pace"), mapping=mapping)  # type: ignore[arg-type]
        await peek.set(gate.fleet.key("gcra"), f"{now - idle_for * 1e6:.0f}")


async def test_unpaced_until_refused_and_the_fleet_cuts_once_per_congestion_event(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    first, second = _gate(gates, redis_url), _gate(gates, redis_url)
    _answers(first, admitted=100)
    _answers(second, admitted=100)
    await asyncio.gather(first.acquire(None), second.acquire(None))  # the counts go along
    assert first.pace is None and second.pace is None  # admitted only: nothing paced
    assert first.waits == second.waits == 0

    # The same burst refused in both processes: the first report cuts, the second one's
    # refusals were of sends made before that cut and cut nothing more.
    _answers(first, refused=5)
    _answers(second, refused=5)
    await first.acquire(None)
    await second.acquire(None)
    assert (first.pace_cuts, second.pace_cuts) == (1, 0)
    state = await _pace_state(redis_url, first)
    assert state["gen"] == 1 and state["spent"] == 1
    # Spent: probes only, at half what the burst delivered (its 200 successes over the
    # last second, the newest 10 ms of it only just begun).
    assert 200 <= state["seen"] <= 200 / 0.99
    assert state["probe"] == pytest.approx(state["seen"] / 2)
    assert second.pace is not None and second.pace <= state["probe"]

    # A probe admitted: the window reopened, and it held what the second before it did
    # (the reopening's own success is the next window's).
    _answers(second, admitted=1)
    await second.acquire(None)
    state = await _pace_state(redis_url, second)
    assert state["gen"] == 2 and state["spent"] == 0
    assert 200 <= state["w"] <= 200 / 0.99
    assert state["start"] == pytest.approx(0.97 * state["w"])
    assert state["ramp"] == 1  # the first window reopened at once: a ramp from there
    assert second.pace is not None and second.pace == pytest.approx(state["start"], rel=0.05)

    # Refused again at the new pace: one more cut, reported by whichever process saw it.
    _answers(second, refused=5)
    await second.acquire(None)
    assert (first.pace_cuts, second.pace_cuts) == (1, 1)
    assert (await _pace_state(redis_url, second))["gen"] == 3


async def test_a_stray_refusal_or_two_cut_nothing(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    _answers(gate, admitted=100, refused=3)  # refused at once: the first cut
    await gate.acquire(None)
    _answers(gate, admitted=1)  # a probe admitted: reopened
    await gate.acquire(None)
    assert gate.pace_cuts == 1
    assert (await _pace_state(redis_url, gate))["gen"] == 2
    _answers(gate, admitted=300, refused=2)  # two at the new pace: fewer than three
    await gate.acquire(None)
    _answers(gate, admitted=300, refused=1)  # three, but 1% of the recent answers
    await gate.acquire(None)
    assert gate.pace_cuts == 1
    assert (await _pace_state(redis_url, gate))["gen"] == 2


async def test_long_retry_afters_are_the_cooldowns_not_the_paces(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    for _ in range(10):
        gate.observe(True, 5.0)
    await gate.acquire(None)
    assert gate.pace_cuts == 0 and gate.pace is None


async def test_a_spent_window_gets_few_probes_and_slots_reserved_before_a_cut_are_void(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate, other = _gate(gates, redis_url), _gate(gates, redis_url)
    _answers(gate, admitted=100, refused=3)
    await gate.acquire(None)  # the cut: spent, probes at 50/s, halving every 50 ms
    kinds = [(await gate._reserve(-1, "reserve", 0))[0] for _ in range(10)]
    # The next probe's slot or two are taken; the other callers are told to ask again
    # later (a queue of slots at a probe's pace would hold them long after a reopening).
    assert kinds.count(0) <= 3 and kinds.count(3) >= 7

    _answers(gate, admitted=1)
    await gate.acquire(None)  # reopened: generation 2, the timeline starts afresh
    kind, _, generation = await other._reserve(-1, "reserve", 0)
    assert (kind, generation) == (0, 2)
    async with aioredis.from_url(redis_url) as peek:
        tat = await peek.get(gate.fleet.key("gcra"))
        # A slot's time came at the pace it was reserved at: only the cooldown is checked.
        assert (await gate._reserve(-1, "check", 2))[:1] == (0,)
        assert await peek.get(gate.fleet.key("gcra")) == tat
        # Another process cut the pace meanwhile: the slot is void, a new one is taken.
        _answers(other, refused=5)
        await other._reserve(-1, "report", 0)
        kind, _, generation = await gate._reserve(-1, "check", 2)
        assert generation == 3 and kind == 0
        assert await peek.get(gate.fleet.key("gcra")) not in (None, tat)


async def test_a_reopening_nobody_probed_takes_the_second_before_the_cut(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    _answers(gate, admitted=1)
    await gate.acquire(None)
    await _set_curve(redis_url, gate, estimate=100, start=50, since_cut=1.5)  # 100/s
    await gate.acquire(None)  # a send at that pace (generation 2)
    _answers(gate, admitted=150, refused=10)
    await gate.acquire(None)  # refused at 100/s: the cut
    state = await _pace_state(redis_url, gate)
    assert state["spent"] == 1 and 151 <= state["seen"] <= 151 / 0.99
    async with aioredis.from_url(redis_url) as peek:
        # Every caller slept a Retry-After: the last refused probe was long ago.
        await peek.hset(gate.fleet.key("pace"), "last", f"{state['last'] - 500_000:.0f}")
    _answers(gate, admitted=1)
    await gate.acquire(None)
    state = await _pace_state(redis_url, gate)
    # What the second before the cut delivered, but no more than the pace refused.
    assert state["spent"] == 0 and state["w"] == pytest.approx(100, rel=0.02)


async def _first_window_reopened_late(
    redis_url: str, gate: RedisRateGate, *, sent_for: float, probed: bool = False
) -> dict[str, float]:
    """An unpaced start: 30 successes, the first 10 counted ``sent_for`` seconds before
    the other 20 and 5 refusals (the first cut). The reopening comes 0.9 s later: every
    caller asleep on its Retry-After (no refused probe just before it), or, if
    ``probed``, the window's end probed (a refused probe just before it). Returns the
    pace state after it."""
    _answers(gate, admitted=10)
    await gate.acquire(None)
    await asyncio.sleep(sent_for)
    _answers(gate, admitted=20, refused=5)
    await gate.acquire(None)
    assert gate.pace_cuts == 1
    state = await _pace_state(redis_url, gate)
    async with aioredis.from_url(redis_url) as peek:
        late = {"since": f"{state['since'] - 900_000:.0f}"}
        if not probed:
            late["last"] = f"{state['last'] - 900_000:.0f}"
        await peek.hset(gate.fleet.key("pace"), mapping=late)  # type: ignore[arg-type]
    _answers(gate, admitted=1)
    await gate.acquire(None)
    return await _pace_state(redis_url, gate)


async def test_a_first_window_cut_within_half_a_second_ramps_though_nobody_probed_it(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    # Seen with 4 processes of 8 lanes at a token bucket (200/s, burst 20): every lane
    # refused 0.2 s in and asleep for a second. The second before the cut held the burst
    # and a few refills (29/s); a cubic from there took seconds to reach 200/s.
    gate = _gate(gates, redis_url)
    state = await _first_window_reopened_late(redis_url, gate, sent_for=0.0)
    assert state["history"] < 0.5
    assert state["spent"] == 0 and state["gen"] == 2
    assert 30 <= state["w"] <= 30 / 0.99  # the second before the cut: 30 successes
    assert state["ramp"] == 1  # from there the pace doubles every 250 ms


async def test_a_first_window_after_a_longer_start_is_measured_as_it_was(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    state = await _first_window_reopened_late(redis_url, gate, sent_for=0.6)
    assert 0.6 <= state["history"] <= 1.0
    assert state["spent"] == 0 and 30 <= state["w"] <= 30 / 0.99
    assert state["ramp"] == 0  # a window measured over most of a second: the cubic


async def test_a_first_window_probed_at_its_end_is_measured_whole(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    # A fixed window whose end a probe found: the second before the reopening is the
    # window, however short the start before the cut was.
    gate = _gate(gates, redis_url)
    state = await _first_window_reopened_late(redis_url, gate, sent_for=0.0, probed=True)
    assert state["history"] < 0.5
    assert state["spent"] == 0 and 30 <= state["w"] <= 30 / 0.99
    assert state["ramp"] == 0


async def test_after_a_cut_the_pace_climbs_back_while_the_fleet_uses_it(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    _answers(gate, refused=3)
    await gate.acquire(None)  # the first cut; a later one's curve is set by hand below

    async def pace_at(since_cut: float, idle_for: float = 0.0) -> float:
        await _set_curve(
            redis_url, gate, estimate=100, start=50, since_cut=since_cut, idle_for=idle_for
        )
        await gate.acquire(None)
        assert gate.pace is not None
        return gate.pace

    # The cubic: from the start at the cut, back to the estimate 1.5 s later, flat there.
    assert await pace_at(0.0) == pytest.approx(50, rel=0.05)
    assert await pace_at(1.5) == pytest.approx(100, rel=0.02)
    # The fleet took every slot: far past the estimate on the curve, though none of its
    # sends was answered yet (a climb held to what was delivered stuck there).
    assert await pace_at(4.5) == pytest.approx(500, rel=0.02)
    # Idle for the last 3 s (callers away): the curve waited where it was 1.5 s after the
    # cut, and waits no more once the fleet is back.
    assert await pace_at(4.5, idle_for=3.0) == pytest.approx(100, rel=0.02)
    state = await _pace_state(redis_url, gate)
    async with aioredis.from_url(redis_url) as peek:
        seconds, micros = await peek.time()
    on_curve = (int(seconds) * 1_000_000 + int(micros) - state["epoch"]) / 1e6
    assert 1.5 <= on_curve < 2.5
    assert gate.pace_cuts == 1


async def test_a_ramp_its_callers_slept_through_climbs_once_they_are_back(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    # The traced collapse: a token bucket's first window reopened at once, from an estimate
    # of 30/s (its burst), and every caller then slept a Retry-After. The ramp used to be
    # held at twice what was delivered meanwhile (nothing), so the pace stayed at 30/s,
    # and what it delivered, a second behind, held it there for seconds.
    gate = _gate(gates, redis_url)
    _answers(gate, refused=3)
    await gate.acquire(None)
    # A second on the ramp, all of it idle: the callers come back to the pace they left.
    await _set_curve(redis_url, gate, estimate=30, start=29, since_cut=1.0, ramp=True, idle_for=1)
    await gate.acquire(None)
    assert gate.pace == pytest.approx(29, rel=0.05)
    # Then they keep the timeline busy: the ramp doubles every 250 ms, delivered or not.
    await _set_curve(redis_url, gate, estimate=30, start=29, since_cut=0.5, ramp=True)
    await gate.acquire(None)
    assert gate.pace == pytest.approx(4 * 29, rel=0.05)


async def test_slots_are_reserved_at_most_a_quarter_second_ahead(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    _answers(gate, refused=3)
    await gate.acquire(None)
    await _set_curve(redis_url, gate, estimate=4, start=2, since_cut=1.5)  # 4/s, flat
    answers = [await gate._reserve(-1, "reserve", 0) for _ in range(10)]
    kinds = [kind for kind, _, _ in answers]
    # Now and 250 ms later; the other callers ask again later (about when their slot
    # would have been 125 ms off), so a pace raised meanwhile reaches them.
    assert kinds == [0, 0] + [3] * 8
    assert all(0.3 <= micros / 1e6 <= 0.4 for _, micros, _ in answers[2:])


async def _cut_at_500(redis_url: str, gate: RedisRateGate) -> dict[str, float]:
    """Bring ``gate``'s fleet to a pace of 500/s, then have 60 answers admitted and 5
    refused: the cut. Returns the pace state just after it."""
    _answers(gate, refused=3)
    await gate.acquire(None)
    await _set_curve(redis_url, gate, estimate=100, start=50, since_cut=4.5)  # 500/s
    await gate.acquire(None)
    _answers(gate, admitted=60, refused=5)
    await gate.acquire(None)  # the cut, at 500/s
    return await _pace_state(redis_url, gate)


async def test_a_limiter_admitting_again_at_once_is_measured_just_before_the_cut(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    state = await _cut_at_500(redis_url, gate)
    assert state["spent"] == 1 and state["top"] == pytest.approx(500, rel=0.02)
    _answers(gate, admitted=1)
    await gate.acquire(None)  # a probe admitted at once: a token bucket, say
    # The second before held those 60 successes only (its callers slept, or sent at
    # slower paces); the quarter second before the cut, in which they all came, says
    # what the limiter admits.
    state = await _pace_state(redis_url, gate)
    assert state["spent"] == 0 and 60 / 0.25 <= state["w"] <= 60 / 0.24


async def test_a_window_reopening_later_is_still_measured_whole(
    redis_url: str, gates: contextlib.AsyncExitStack
) -> None:
    gate = _gate(gates, redis_url)
    state = await _cut_at_500(redis_url, gate)
    async with aioredis.from_url(redis_url) as peek:
        # Cut half a second ago (a fixed window's end came later), and probed since.
        await peek.hset(gate.fleet.key("pace"), "since", f"{state['since'] - 500_000:.0f}")
    _answers(gate, admitted=1)
    await gate.acquire(None)
    state = await _pace_state(redis_url, gate)
    assert state["spent"] == 0 and 60 <= state["w"] <= 60 / 0.99


async def test_the_learned_pace_spaces_the_fleets_sends_and_starts_no_task(
    redis_url: str, gates: contextlib.AsyncExitStack, tasks_created: list[str]
) -> None:
    first, second = _gate(gates, redis_url), _gate(gates, redis_url)
    _answers(first, refused=3)
    await first.acquire(None)
    await _set_curve(redis_url, first, estimate=20, start=10, since_cut=1.5)  # 20/s, flat
    tasks_created.clear()
    for gate in (first, second, first, second, first, second):
        await gate.acquire(None)
        _answers(gate, admitted=1)
    # Six sends at 20/s: the first went at once, the other five waited for their slots
    # (each 50 ms after the one before, less the time the round trips took).
    assert first.waits + second.waits == 5
    assert first.wait_total + second.wait_total >= 0.1
    # Successes ride along with the reservations: no task of the gate's (redis-py starts
    # its own to send commands).
    assert [name for name in tasks_created if name.startswith(("RedisRateGate", "Fleet"))] == []


async def test_a_burst_of_refusals_is_reported_at_once_by_one_task_that_aclose_ends(
    redis_url: str, tasks_created: list[str]
) -> None:
    fleet = Fleet(redis_url, credentials=CREDS)
    gate = fleet.rate_gate
    try:
        _answers(gate, admitted=50, refused=10)  # no acquire follows: all lanes wait
        assert tasks_created.count("RedisRateGate._report") == 1
        state: dict[str, float] = {}
        for _ in range(200):  # bounded: reported about 20 ms later
            state = await _pace_state(redis_url, gate)
            if state:
                break
            await asyncio.sleep(0.01)
        assert state["gen"] == 1 and gate.pace_cuts == 1
        _answers(gate, refused=3)  # another burst: its report is pending at the close
        assert tasks_created.count("RedisRateGate._report") == 2
    finally:
        await fleet.aclose()
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current and not t.done()] == []


async def test_redis_down_lets_everything_through_and_observe_never_raises(
    private_redis: Any,
) -> None:
    server: RedisServer = private_redis()
    fleet = Fleet(server.url, credentials=CREDS, retry_after=60.0, redis_timeout=0.5)
    gate = fleet.rate_gate
    try:
        _answers(gate, admitted=10, refused=5)
        await gate.acquire(None)
        assert gate.pace_cuts == 1
        server.stop()
        _answers(gate, refused=50)
        for _ in range(20):
            await gate.acquire(None)
        assert fleet.degraded is True
        assert gate.waits == 0
    finally:
        await fleet.aclose()


async def test_with_redis_down_the_clients_own_pacer_finds_a_pace_again(
    private_redis: Any,
) -> None:
    server: RedisServer = private_redis()
    config = GatewayConfig(rps_limit=50, rate_limiter="token-bucket", rate_burst=2)
    async with FakeGateway(config) as gateway:
        fleet = Fleet(
            server.url, credentials=gateway.credentials, retry_after=60.0, redis_timeout=0.5
        )
        assert fleet.rate_gate.learns_pace is True
        async with maxa.MaxaClient(
            gateway.credentials, base_url=gateway.base_url, fleet=fleet
        ) as client:
            assert client.limiter.pacer.adaptive is False  # the fleet paces
            await client.terminology("thritaEHR.Religion", "1")  # the token, through Redis
            server.stop()
            items = [
                maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
                for i in range(40)
            ]
            await asyncio.gather(*(client.validate_cts(item) for item in items))
            assert fleet.degraded is True
            assert fleet.rate_gate.learns_pace is False
            assert gateway.stats.rate_limited >= 1
            # Refused while the gate could not learn: the client's own pacer paces again.
            assert client.limiter.pacer.adaptive is True
            assert client.stats.as_dict()["limiter"]["pace_cuts"] >= 1


async def test_a_learning_client_leaves_no_task_behind(redis_url: str) -> None:
    config = GatewayConfig(rps_limit=50, rate_limiter="token-bucket", rate_burst=2)
    async with (
        FakeGateway(config) as gateway,
        maxa.MaxaClient(
            gateway.credentials, base_url=gateway.base_url, redis_url=redis_url
        ) as client,
    ):
        items = [
            maxa.CodedText(value=f"v{i}", terminology_id="ContactType", coded_string="1")
            for i in range(40)
        ]
        await asyncio.gather(*(client.validate_cts(item) for item in items))
        stats = client.stats.as_dict()
        assert gateway.stats.rate_limited >= 1  # it was refused, so it learned a pace
        assert stats["fleet"]["pace_cuts"] >= 1
        # The fleet paces: the client's own pacer left the refusals to it.
        assert stats["limiter"]["pace_cuts"] == 0 and stats["limiter"]["pace"] is None
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current and not t.done()] == []


# ---------------------------------------------------------------------- processes

FLEET = 4
DURATION = 5.0
RATE = 200


@pytest.mark.parametrize(
    "knobs",
    [
        pytest.param(("--rate-limiter", "fixed"), id="fixed-1s"),
        pytest.param(("--rate-limiter", "token-bucket", "--rate-burst", "20"), id="bucket-R/10"),
    ],
)
def test_a_fleet_without_a_rate_limit_learns_its_shared_pace(
    redis_url: str, workers: Workers, knobs: tuple[str, ...]
) -> None:
    with gateway_process("--rps-limit", str(RATE), *knobs) as gateway:
        common = ("--redis-url", redis_url, "--duration", str(DURATION), "--concurrency", "8")
        procs = [workers.start(gateway, *common, "--name", f"w{i}") for i in range(FLEET)]
        start_at = workers.go(procs)
        reports = [workers.result(proc, timeout=60) for proc in procs]
        stats = gateway.stats()
    shape = GatewayConfig(
        rps_limit=RATE,
        rate_limiter=knobs[1],
        rate_burst=float(knobs[3]) if len(knobs) > 3 else None,
    ).make_rate_limiter()
    assert shape is not None
    admitted = shape.capacity(start_at, start_at + DURATION)
    assert admitted is not None
    ok = sum(r["ok"] for r in reports)
    share_429 = stats["rate_limited"] / stats["requests"]
    print(f"learned fleet pace, {knobs[1]}: {ok / admitted:.0%} of admitted, {share_429:.1%} 429")
    for report in reports:
        assert report["errors"] == {}, report
        assert report["fleet"]["degraded"] is False
        assert report["fleet"]["learned_pace"] is not None
    assert sum(r["fleet"]["pace_cuts"] for r in reports) >= 1
    # Generous bounds for a shared, noisy machine (the benchmark says how close it gets):
    # without the learned pace, processes each finding their share overshoot into about
    # a fifth of answers refused.
    assert ok >= 0.6 * admitted
    assert share_429 <= 0.12, stats
