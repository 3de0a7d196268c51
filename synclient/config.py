"""``synclient --config FILE``: several folders, each with one or more servers, in TOML.

::

    interval = 30                      # defaults for every folder (optional)

    [[folders]]
    path = "~/Documents"               # relative paths are relative to this file
    name = "docs"                      # names the folder in messages (default: its name)
    exclude = ["*.tmp", "build/"]
    interval = 10
    conflict = "keep-client"           # keep-client, keep-server or rename
    servers = [
        { url = "http://127.0.0.1:8080", token = "..." },
        { url = "https://backup.example", token_env = "BACKUP_TOKEN" },
    ]

A server may also be written as a bare URL string. Every mistake is reported with the
key that holds it (``folders[1].servers[0].url: ...``), and unknown keys are mistakes
too: a misspelt ``exlude`` must not silently sync what it was meant to leave out.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from synclient.planner import Strategy
from synclient.service import Server, Settings
from synclient.state import server_key


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


FOLDER_KEYS = {"path", "name", "servers", "exclude", "interval", "conflict", "allow_mass_delete"}
DEFAULT_KEYS = {"interval", "exclude", "conflict", "allow_mass_delete"}
SERVER_KEYS = {"url", "token", "token_env"}
STRATEGIES = ", ".join(s.value for s in Strategy)


def _unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string")
    return value


def _interval(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        raise ConfigError(f"{where}: must be a number of seconds, at least 1")
    return float(value)


def _excludes(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of patterns")
    for index, pattern in enumerate(value):
        _string(pattern, f"{where}[{index}]")
    return list(value)


def _strategy(value: Any, where: str) -> Strategy:
    try:
        return Strategy(value)
    except ValueError:
        raise ConfigError(f"{where}: must be one of {STRATEGIES}") from None


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false")
    return value


def url(value: Any, where: str) -> str:
    """A server URL as the client can use it (``http(s)://host[:port][/prefix]``)."""
    text = _string(value, where).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {text!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: {text!r} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{where}: {text!r} has an invalid port") from None
    return text.rstrip("/")


def _server(value: Any, where: str) -> Server:
    if isinstance(value, str):
        return Server(url(value, where))
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a URL or a table with url and token")
    _unknown(value, SERVER_KEYS, f"{where}.")
    if "url" not in value:
        raise ConfigError(f"{where}.url: missing")
    token = value.get("token")
    if token is not None:
        token = _string(token, f"{where}.token")
    if "token_env" in value:
        if token is not None:
            raise ConfigError(f"{where}.token_env: give token or token_env, not both")
        name = _string(value["token_env"], f"{where}.token_env")
        token = os.environ.get(name)
        if not token:
            raise ConfigError(f"{where}.token_env: the environment variable {name} is not set")
    return Server(url(value["url"], f"{where}.url"), token)


def servers(values: list[Server], where: str) -> list[Server]:
    """Check that no server is listed twice for one folder (one base per server)."""
    seen: dict[str, int] = {}
    for index, server in enumerate(values):
        key = server_key(server.url)
        if key in seen and where.startswith("--"):
            raise ConfigError(f"{where} {server.url}: given twice")
        if key in seen:
            raise ConfigError(f"{where}[{index}].url: {server.url} is already {where}[{seen[key]}]")
        seen[key] = index
    return values


def _folder(value: Any, where: str, defaults: dict[str, Any], base_dir: Path) -> Settings:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table ([[folders]])")
    _unknown(value, FOLDER_KEYS, f"{where}.")
    if "path" not in value:
        raise ConfigError(f"{where}.path: missing")
    path = Path(os.path.expanduser(_string(value["path"], f"{where}.path")))
    path = (base_dir / path).resolve()
    raw_servers = value.get("servers")
    if raw_servers is None:
        raise ConfigError(f"{where}.servers: missing (at least one server)")
    if not isinstance(raw_servers, list) or not raw_servers:
        raise ConfigError(f"{where}.servers: must be a non-empty list of servers")
    found = [_server(s, f"{where}.servers[{i}]") for i, s in enumerate(raw_servers)]
    merged = {**defaults, **value}
    settings = Settings(
        local_path=path,
        servers=servers(found, f"{where}.servers"),
        name=_string(value["name"], f"{where}.name") if "name" in value else "",
    )
    origin = lambda key: f"{where}.{key}" if key in value else key  # noqa: E731
    if "interval" in merged:
        settings.interval = _interval(merged["interval"], origin("interval"))
    if "exclude" in merged:
        settings.excludes = _excludes(merged["exclude"], origin("exclude"))
    if "conflict" in merged:
        settings.strategy = _strategy(merged["conflict"], origin("conflict"))
    if "allow_mass_delete" in merged:
        settings.allow_mass_delete = _flag(merged["allow_mass_delete"], origin("allow_mass_delete"))
    return settings


def parse(data: dict[str, Any], base_dir: Path) -> list[Settings]:
    """The folders a parsed config describes (relative paths from ``base_dir``)."""
    _unknown(data, DEFAULT_KEYS | {"folders"}, "")
    defaults = {k: v for k, v in data.items() if k != "folders"}
    folders = data.get("folders")
    if folders is None:
        raise ConfigError("folders: missing (add a [[folders]] table)")
    if not isinstance(folders, list) or not folders:
        raise ConfigError("folders: must be a non-empty array of tables ([[folders]])")
    result = [_folder(f, f"folders[{i}]", defaults, base_dir) for i, f in enumerate(folders)]
    for index, settings in enumerate(result):
        for other_index, other in enumerate(result[:index]):
            a, b = settings.local_path, other.local_path
            if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                raise ConfigError(
                    f"folders[{index}].path: {a} overlaps folders[{other_index}].path ({b});"
                    " a folder can be synced only once, with all its servers"
                )
    return result


def load(path: Path) -> list[Settings]:
    """Read and check the config file ``path``."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse(data, path.resolve().parent)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
