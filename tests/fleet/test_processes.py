"""Fleet mode with real processes: 8 workers (each its own MaxaClient), one real Redis,
the fake gateway in its own process. What the gateway counted is the evidence."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import redis

from maxa_async.fleet import default_key_prefix

from .conftest import GatewayProcess, RedisServer, Workers, gateway_process
from .worker import BUCKET

FLEET = 8


def _start_fleet(
    workers: Workers,
    gateway: GatewayProcess,
    redis_url: str,
    *,
    duration: float,
    count: int = FLEET,
    extra: tuple[str, ...] = (),
    crasher: tuple[str, ...] | None = None,
) -> tuple[float, list[Any]]:
    """Start ``count`` workers (plus one with ``crasher`` arguments, last) together."""
    common = ("--redis-url", redis_url, "--duration", str(duration))
    procs = [workers.start(gateway, *common, "--name", f"w{i}", *extra) for i in range(count)]
    if crasher is not None:
        procs.append(workers.start(gateway, *common, "--name", "crasher", *extra, *crasher))
    return workers.go(procs), procs


def _summary(reports: list[dict[str, Any]]) -> str:
    ok = sum(r["ok"] for r in reports)
    replays = sum(r["stats"]["replays_after_401"] for r in reports)
    slowest = max(r["max_latency"] for r in reports)
    return f"{ok} validations, {replays} 401 replays, slowest call {slowest:.2f}s"


def _assert_no_errors(reports: list[dict[str, Any]]) -> None:
    for report in reports:
        assert report["errors"] == {}, report
        assert report["ok"] > 0, report


def test_eight_cold_processes_make_exactly_one_password_grant(
    redis_url: str, workers: Workers
) -> None:
    with gateway_process() as gateway:
        _, procs = _start_fleet(workers, gateway, redis_url, duration=1.5)
        reports = [workers.result(proc, timeout=30) for proc in procs]
        stats = gateway.stats()
    _assert_no_errors(reports)
    assert stats["password_grants"] == 1, stats
    assert stats["refresh_grants"] == 0, stats
    # One process granted; the seven others used the token it stored.
    assert sorted(r["stats"]["password_grants"] for r in reports) == [0] * (FLEET - 1) + [1]
    assert all(r["fleet"]["degraded"] is False for r in reports)


def test_refreshes_follow_the_token_lifetime_not_the_process_count(
    redis_url: str, workers: Workers
) -> None:
    ttl, duration = 2.0, 8.0
    with gateway_process("--token-ttl", str(ttl), "--refresh-invalidates-old") as gateway:
        _, procs = _start_fleet(workers, gateway, redis_url, duration=duration)
        reports = [workers.result(proc, timeout=40) for proc in procs]
        stats = gateway.stats()
    print("refresh test:", stats["refresh_grants"], "refreshes;", _summary(reports))
    _assert_no_errors(reports)
    expected = duration / (ttl * 0.75)  # about 5.3: one refresh per 1.5 s, fleet-wide
    assert stats["password_grants"] == 1, stats
    assert expected - 2 <= stats["refresh_grants"] <= expected + 2, stats
    # Each refresh the gateway granted was one process's (a grant in flight when its
    # process stopped at the end of the run is counted by the gateway alone).
    counted = sum(r["stats"]["refresh_grants"] for r in reports)
    assert stats["refresh_grants"] - 1 <= counted <= stats["refresh_grants"], stats
    # Every refresh revoked the old token; in-flight 401s were replayed, never surfaced.
    # A refresh costs at most about one 401 per call in flight (8 processes x 8 lanes) and
    # the few sent before the others adopt the new token: no storm.
    replays = sum(r["stats"]["replays_after_401"] for r in reports)
    assert replays <= stats["refresh_grants"] * FLEET * 8 * 2
    assert sum(r["ok"] for r in reports) > 1000


def test_a_lease_holder_killed_mid_refresh_blocks_the_fleet_no_longer_than_the_lease(
    redis_url: str, workers: Workers
) -> None:
    lease, ttl = 2.0, 4.0
    with gateway_process("--token-ttl", str(ttl)) as gateway:
        lease_args = ("--lease-seconds", str(lease))
        # The crasher refreshes first (at half the lifetime) and freezes inside the grant.
        _, procs = _start_fleet(
            workers,
            gateway,
            redis_url,
            duration=9.0,
            count=FLEET - 1,
            extra=lease_args,
            crasher=("--refresh-fraction", "0.5", "--hang-on-refresh"),
        )
        crasher = procs.pop()
        workers.expect_line(crasher, "HOLDING", timeout=15)
        lease_key = default_key_prefix(gateway.credentials) + ":lease"
        with redis.Redis.from_url(redis_url) as peek:
            # Alive, the holder keeps renewing: longer than one lease, nobody else grants.
            time.sleep(lease + 0.5)
            assert peek.exists(lease_key) == 1
            assert gateway.stats()["refresh_grants"] == 0
            os.kill(crasher.pid, signal.SIGKILL)
            killed = time.monotonic()
            crasher.wait(timeout=5)
            while gateway.stats()["refresh_grants"] == 0:
                assert time.monotonic() - killed < lease + 10.0, "the fleet never took over"
                time.sleep(0.05)
            recovered = time.monotonic() - killed
        reports = [workers.result(proc, timeout=40) for proc in procs]
        stats = gateway.stats()
    print(f"kill test: recovered {recovered:.2f}s after the kill;", _summary(reports))
    assert recovered <= lease + 5.0, recovered  # the lease ran out, then one worker took over
    _assert_no_errors(reports)  # callers waited for the token, none failed
    assert stats["password_grants"] == 1, stats
    assert sum(r["fleet"]["lease_takeovers"] for r in reports) >= 1
    for report in reports:  # every worker validated again after the takeover
        assert sum(report["buckets"][-6:]) > 0, report["buckets"]


def test_redis_stopped_mid_run_falls_back_to_per_process_with_one_warning(
    private_redis: Any, workers: Workers
) -> None:
    server: RedisServer = private_redis()
    stop_after = 2.0
    with gateway_process("--token-ttl", "2") as gateway:
        start_at, procs = _start_fleet(workers, gateway, server.url, duration=6.0, count=4)
        time.sleep(max(0.0, start_at + stop_after - time.time()))
        before = gateway.stats()
        server.stop()
        reports = [workers.result(proc, timeout=40) for proc in procs]
        after = gateway.stats()
    print("redis-down test:", after["refresh_grants"] - before["refresh_grants"], _summary(reports))
    _assert_no_errors(reports)
    first_bucket_after = int((stop_after + 0.5) / BUCKET)
    for report in reports:
        assert sum(report["buckets"][first_bucket_after:]) > 50, report["buckets"]
        assert report["fleet"]["degraded"] is True
        assert report["fleet"]["redis_errors"] >= 1
        assert report["fleet"]["degradations"] == 1
        assert len(report["fleet_warnings"]) == 1, report["fleet_warnings"]
        assert "fleet mode degraded" in report["fleet_warnings"][0]
    # Each process now refreshes on its own (2 s tokens over the 4 s without Redis).
    assert after["refresh_grants"] - before["refresh_grants"] >= len(reports)
