"""Reading a config file from disk: JSON as-is, a Caddyfile through the adapter."""

from __future__ import annotations

import json
import os
from typing import Any

from caddytw.config.errors import ConfigError


def is_caddyfile(path: str, adapter: str | None = None) -> bool:
    if adapter:
        return adapter == "caddyfile"
    return os.path.basename(path).lower().startswith("caddyfile")


def load_config_file(path: str, adapter: str | None = None) -> dict[str, Any]:
    """The config dict in ``path``; errors name the file and say what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    if is_caddyfile(path, adapter):
        from caddytw.caddyfile import CaddyfileError, adapt

        try:
            config, _warnings = adapt(text, path)
        except CaddyfileError as error:
            raise ConfigError("", str(error)) from None
        return config
    if adapter not in (None, "", "json"):
        raise ConfigError("", f"unknown config adapter {adapter!r}")
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            "", f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: the config must be a JSON object")
    return data
