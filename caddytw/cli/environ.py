"""``--envfile`` loading and the ``environ`` listing, as Caddy does them."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

from caddytw.tls.config import default_storage_root


class EnvfileError(Exception):
    """An envfile line that is not ``KEY=VALUE``."""


def parse_envfile(text: str, name: str = "envfile") -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments, blank lines, ``export`` and quotes allowed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            raise EnvfileError(f"{name}:{number}: can't parse line, want KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_envfiles(paths: list[str]) -> None:
    """Set the variables of each file that the environment does not already set."""
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            values = parse_envfile(handle.read(), path)
        for key, value in values.items():
            os.environ.setdefault(key, value)


def environ_lines() -> list[str]:
    """What ``caddytw environ`` (and ``run --environ``) prints: our facts, then the env."""
    from caddytw.config.autosave import autosave_path, config_dir

    facts = [
        f"caddy.HomeDir={os.path.expanduser('~')}",
        f"caddy.AppDataDir={default_storage_root()}",
        f"caddy.AppConfigDir={config_dir()}",
        f"caddy.ConfigAutosavePath={autosave_path()}",
        f"caddy.Version={version_string()}",
        f"runtime.GOOS={sys.platform}",
        f"runtime.GOARCH={platform.machine()}",
        f"runtime.Compiler={platform.python_implementation()}",
        f"runtime.NumCPU={os.cpu_count()}",
        f"runtime.Version=python{platform.python_version()}",
        f"os.Getwd={os.getcwd()}",
        "",
    ]
    return facts + [f"{key}={value}" for key, value in sorted(os.environ.items())]


def version_string() -> str:
    """The installed caddytw version, or ``(devel)`` in a checkout that is not installed."""
    try:
        return metadata.version("caddytw")
    except metadata.PackageNotFoundError:
        return "(devel)"
