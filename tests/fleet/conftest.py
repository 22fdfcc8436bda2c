"""Fixtures for fleet mode: a real redis-server per session (and private ones on demand),
and the fake gateway in its own process.

No Redis binary: the tests skip locally, but fail when ``CI`` is set (CI must run them).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import maxa_async as maxa
from maxa_async.fleet import Fleet, RedisRateGate

REDIS_BINARY = shutil.which("redis-server")
WORKER = Path(__file__).with_name("worker.py")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_redis() -> str:
    if REDIS_BINARY is not None:
        return REDIS_BINARY
    if _in_ci():
        pytest.fail("CI is set but redis-server is not installed (apt-get install redis-server)")
    pytest.skip("no redis-server binary on PATH (apt-get install redis-server); CI runs these")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``redis-server`` on 127.0.0.1 and a random free port; no persistence."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _flush(url: str) -> None:
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.flushdb()


@pytest.fixture(scope="session")
def session_redis() -> Iterator[str]:
    """``MAXA_TEST_REDIS_URL`` (a Redis started by .ci/run, whose database the tests
    empty), else a redis-server of this session's own."""
    given = os.environ.get("MAXA_TEST_REDIS_URL", "").strip()
    if given:
        yield given
        return
    server = RedisServer(require_redis())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_url(session_redis: str) -> str:
    """The session's Redis, emptied for this test."""
    _flush(session_redis)
    return session_redis


@pytest.fixture
def private_redis() -> Iterator[Callable[[], RedisServer]]:
    """Start Redis servers of this test's own (to stop and restart); all stopped after."""
    binary = require_redis()
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer(binary)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class GatewayProcess:
    """``python -m maxa_async.testing`` in its own process, and its HTTP control routes."""

    def __init__(self, info: dict[str, Any], proc: subprocess.Popen[str]) -> None:
        self.info = info
        self.proc = proc
        self.base_url: str = info["base_url"]

    @property
    def credentials(self) -> maxa.Credentials:
        info = self.info
        return maxa.Credentials(
            client_id=info["client_id"],
            client_secret=info["client_secret"],
            username=info["username"],
            password=info["password"],
            pid=info["pid"],
        )

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/__stats", timeout=5) as response:
            stats: dict[str, Any] = json.loads(response.read())
            return stats


@contextlib.contextmanager
def gateway_process(*knobs: str) -> Iterator[GatewayProcess]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0", "--no-generated", *knobs],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake gateway did not start")
        yield GatewayProcess(json.loads(line), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


class Workers:
    """Worker processes (tests/fleet/worker.py), each with its own MaxaClient."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, gateway: GatewayProcess, *args: str) -> subprocess.Popen[str]:
        """A worker; it builds its client, prints READY and waits for :meth:`go`."""
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--gateway", json.dumps(gateway.info), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def go(procs: list[subprocess.Popen[str]], lead: float = 0.3) -> float:
        """Tell workers to start together ``lead`` seconds from now; returns that epoch."""
        for proc in procs:
            Workers.expect_line(proc, "READY", timeout=30)
        start_at = time.time() + lead
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at}\n")
            proc.stdin.flush()
        return start_at

    @staticmethod
    def expect_line(proc: subprocess.Popen[str], text: str, timeout: float) -> None:
        """Wait (bounded) for the worker to print ``text`` on a line of its own."""
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def read() -> None:
            lines.put(stdout.readline())

        deadline = time.monotonic() + timeout
        while True:
            threading.Thread(target=read, daemon=True).start()
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} from the worker in {timeout}s") from None
            if line.strip() == text:
                return
            assert line, f"the worker ended before printing {text!r}"

    @staticmethod
    def result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        """The worker's last stdout line (its JSON report), once it exits."""
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker exited with {proc.returncode}: {out[-2000:]}"
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return report

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


@pytest.fixture
def workers() -> Iterator[Workers]:
    pool = Workers()
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
async def gates(redis_url: str) -> AsyncIterator[contextlib.AsyncExitStack]:
    """Closes the fleets made by :func:`make_gate`."""
    async with contextlib.AsyncExitStack() as stack:
        yield stack


def make_gate(
    stack: contextlib.AsyncExitStack,
    redis_url: str,
    credentials: maxa.Credentials,
    **options: object,
) -> RedisRateGate:
    """One process's rate gate (a Fleet of its own on the account's shared keys)."""
    fleet = Fleet(redis_url, credentials=credentials, **options)  # type: ignore[arg-type]
    stack.push_async_callback(fleet.aclose)
    return fleet.rate_gate
