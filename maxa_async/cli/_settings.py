"""Where the command line finds its settings: flags, then the environment, then ``.env``."""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs

from ..client import DEFAULT_BASE_URL
from ..models import Credentials
from ._errors import UsageProblem

__all__ = [
    "DEFAULT_SNAPSHOT",
    "ENV_NAMES",
    "GlobalOptions",
    "Mode",
    "Settings",
    "read_dotenv",
    "resolve_settings",
]

#: The snapshot file when neither ``--snapshot`` nor ``MAXA_SNAPSHOT`` names one.
DEFAULT_SNAPSHOT = "maxa-snapshot.db"

#: Where a command's answers come from: the gateway, the snapshot file, or both.
Mode = Literal["online", "offline", "hybrid"]

#: Setting name -> environment variable.
ENV_NAMES: Mapping[str, str] = types.MappingProxyType(
    {
        "client_id": "MAXA_CLIENT_ID",
        "client_secret": "MAXA_CLIENT_SECRET",
        "username": "MAXA_USERNAME",
        "password": "MAXA_PASSWORD",
        "pid": "MAXA_PID",
        "base_url": "MAXA_BASE_URL",
        "redis_url": "MAXA_REDIS_URL",
        "snapshot": "MAXA_SNAPSHOT",
        "proxy": "MAXA_PROXY",
        "ca_bundle": "MAXA_CA_BUNDLE",
    }
)

_CREDENTIAL_FIELDS = ("client_id", "client_secret", "username", "password", "pid")


@attrs.define
class GlobalOptions:
    """The options every command accepts (before or after the command's name)."""

    client_id: str | None = None
    client_secret: str | None = None
    username: str | None = None
    password: str | None = None
    pid: str | None = None
    base_url: str | None = None
    redis_url: str | None = None
    proxy: str | None = None
    ca_bundle: str | None = None
    env_file: str | None = None
    snapshot: str | None = None
    emulator: bool = False
    json: bool = False
    debug: bool = False
    otel: bool = False

    def flag(self, name: str) -> str | None:
        value: str | None = getattr(self, name)
        return value


@attrs.frozen(repr=False)
class Settings:
    """Resolved connection settings. ``credentials`` is None when some are missing."""

    base_url: str
    credentials: Credentials | None
    redis_url: str | None
    missing: tuple[str, ...]
    sources: Mapping[str, str]  # setting -> "flag" | "environment" | ".env path"
    snapshot: str = DEFAULT_SNAPSHOT  # the snapshot file (relative to the working directory)
    proxy: str | None = None
    ca_bundle: str | None = None

    def require_credentials(self) -> Credentials:
        if self.credentials is None:
            names = ", ".join(ENV_NAMES[name] for name in self.missing)
            raise UsageProblem(
                f"missing credentials: set {names} (environment or .env), pass "
                f"--{self.missing[0].replace('_', '-')} and friends, or use --emulator"
            )
        return self.credentials

    def __repr__(self) -> str:  # never shows a secret: Credentials redacts them
        return f"Settings(base_url={self.base_url!r}, credentials={self.credentials!r})"


def read_dotenv(path: Path) -> dict[str, str]:
    """A small ``.env`` reader: ``KEY=VALUE`` lines, ``export`` prefixes, ``#`` comments,
    single or double quotes around the value. No interpolation, no multi-line values."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageProblem(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise UsageProblem(f"{path}, line {number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def resolve_settings(
    options: GlobalOptions,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Flags win over environment variables, which win over the ``.env`` file.

    The ``.env`` file is ``--env-file`` (which must exist) or ``./.env`` (if present).
    """
    env = os.environ if environ is None else environ
    if options.env_file is not None:
        dotenv = read_dotenv(Path(options.env_file))
        dotenv_label = options.env_file
    else:
        default = (cwd or Path.cwd()) / ".env"
        dotenv = read_dotenv(default) if default.is_file() else {}
        dotenv_label = ".env"
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name, variable in ENV_NAMES.items():
        for source, value in (
            ("flag", options.flag(name)),
            ("environment", env.get(variable)),
            (dotenv_label, dotenv.get(variable)),
        ):
            if value is not None and value.strip():
                values[name] = value.strip()
                sources[name] = source
                break
    missing = tuple(name for name in _CREDENTIAL_FIELDS if name not in values)
    credentials = (
        None if missing else Credentials(**{name: values[name] for name in _CREDENTIAL_FIELDS})
    )
    return Settings(
        base_url=values.get("base_url", DEFAULT_BASE_URL),
        credentials=credentials,
        redis_url=values.get("redis_url"),
        missing=missing,
        sources=sources,
        snapshot=values.get("snapshot", DEFAULT_SNAPSHOT),
        proxy=values.get("proxy"),
        ca_bundle=values.get("ca_bundle"),
    )
