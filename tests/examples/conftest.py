"""Fixtures for the examples: an in-process fake gateway, and the examples as modules."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from maxa_async.testing import FakeGateway, GatewayConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (a folder of scripts, not a package)."""
    module_name = f"maxa_examples_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fastapi_app() -> ModuleType:
    return load_example("fastapi_app")


@pytest.fixture(scope="session")
def aiohttp_app() -> ModuleType:
    return load_example("aiohttp_app")


@pytest.fixture
async def fake_gateway() -> AsyncIterator[FakeGateway]:
    async with FakeGateway(GatewayConfig(seed=5)) as gateway:
        yield gateway
