"""The protocol core is sans-I/O: importing it pulls in neither aiohttp nor asyncio.

Checked in a fresh interpreter (this one has pytest-asyncio loaded, hence asyncio).
Every other test in this directory is a plain ``def`` that runs without an event loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import maxa_async

PACKAGE_DIR = Path(maxa_async.__file__).resolve().parent
CORE = ("errors", "jalali", "models", "converter", "envelope", "operations", "oauth")
FORBIDDEN = ("asyncio", "aiohttp")


def _run(script: str) -> dict[str, list[str]]:
    completed = subprocess.run(
        [sys.executable, "-I", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, list[str]] = json.loads(completed.stdout)
    return result


def test_core_modules_import_neither_aiohttp_nor_asyncio() -> None:
    # The package's __init__ re-exports the client (aiohttp): load the core modules
    # under a bare package object so that only their own imports count.
    result = _run(
        f"""
        import importlib, json, sys, types
        before = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
        package = types.ModuleType("maxa_async")
        package.__path__ = [{str(PACKAGE_DIR)!r}]
        sys.modules["maxa_async"] = package
        for name in {CORE!r}:
            importlib.import_module("maxa_async." + name)
        # exercise them too: build and parse a call, a token, a date
        from maxa_async import operations, oauth, jalali
        call = operations.terminology_versions("eRx")
        call.parse(200, {{}}, b'{{"result": {{"data": []}}, "status": {{"statusCode": 200}}}}')
        oauth.parse_token_response(200, {{}}, b'{{"access_token": "a", "expires_in": 1}}', now=0)
        jalali.JalaliDateTime.now()
        print(json.dumps({{
            "before": before,
            "after": sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r}),
            "loaded": sorted(m for m in sys.modules if m.startswith("maxa_async")),
        }}))
        """
    )
    assert result["before"] == []  # the interpreter itself starts without them
    assert result["after"] == [], f"a core module imports {result['after']}"
    assert set(result["loaded"]) == {"maxa_async", *(f"maxa_async.{name}" for name in CORE)}


def test_importing_the_core_through_the_package_stays_sans_io() -> None:
    result = _run(
        f"""
        import importlib, json, sys
        for name in {CORE!r}:
            importlib.import_module("maxa_async." + name)
        print(json.dumps({{"after": sorted(
            m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})}}))
        """
    )
    assert result["after"] == []
