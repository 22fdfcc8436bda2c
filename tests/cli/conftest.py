"""The CLI under test runs as a real process against a fake gateway that is a real process."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

#: Every subprocess gets this many seconds, at most.
TIMEOUT = 60.0

_CREDENTIAL_ENV = {
    "client_id": "MAXA_CLIENT_ID",
    "client_secret": "MAXA_CLIENT_SECRET",
    "username": "MAXA_USERNAME",
    "password": "MAXA_PASSWORD",
    "pid": "MAXA_PID",
    "base_url": "MAXA_BASE_URL",
}


def clean_environ() -> dict[str, str]:
    """The test process's environment without any MAXA_* setting."""
    return {key: value for key, value in os.environ.items() if not key.startswith("MAXA_")}


def start_ready_process(args: list[str], *, timeout: float = TIMEOUT) -> tuple[Any, dict[str, Any]]:
    """Start a process that prints one JSON ready line; return it and the parsed line."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_environ(),
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else b""
    if not line:
        stop_process(process)
        raise RuntimeError(f"{args} did not print its ready line")
    return process, json.loads(line)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=TIMEOUT)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return process.returncode


@attrs.frozen
class Gateway:
    """A fake gateway process: its ready line, and the MAXA_* variables pointing at it."""

    info: Mapping[str, str]

    @property
    def env(self) -> dict[str, str]:
        env = clean_environ()
        env.update({variable: self.info[key] for key, variable in _CREDENTIAL_ENV.items()})
        return env

    @property
    def base_url(self) -> str:
        return self.info["base_url"]


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    process, info = start_ready_process(
        [sys.executable, "-m", "maxa_async.testing", "--port", "0", "--seed", "1"]
    )
    try:
        yield Gateway(info)
    finally:
        stop_process(process)


@attrs.frozen
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_maxa(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> Result:
    """``python -m maxa_async.cli ARGS`` with no stdin and piped output (like CI)."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "maxa_async.cli", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=dict(env) if env is not None else clean_environ(),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Result(
        completed.returncode,
        completed.stdout.decode("utf-8"),
        completed.stderr.decode("utf-8"),
        time.monotonic() - started,
    )


@pytest.fixture
def maxa(gateway: Gateway, tmp_path: Path) -> Any:
    """``maxa(*args, env=None)``: run the CLI in ``tmp_path`` against the session's gateway."""

    def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT) -> Result:
        return run_maxa(
            *args, env=gateway.env if env is None else env, cwd=tmp_path, timeout=timeout
        )

    return run
