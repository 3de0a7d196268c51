"""Real processes for the sync-safety tests (issue 12), built on the synclient harness.

:class:`SafetyServer` is the synclient harness's ``file_sync`` server with the knobs the
safety tests need: extra handler fields, extra routes before or after the API (a
``file_server`` on the same root, a ``reverse_proxy`` in front), bearer-token clients,
and a private environment (``XDG_DATA_HOME``, ``HOME`` and ``TMPDIR`` under the test's
folder) so whatever the server keeps outside the served folder (its index, spooled
request bodies) lands where the test can look at it and is removed with it.

A new folder is created by the server when the code under test knows
``"create_root"`` (the issue's opt-in for a new folder); the seed's config (without it)
is what every restart uses, so "the root vanished" is always tested with the seed's
settings.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tests.support.server import REPO, start_server
from tests.synclient.harness import Client, SyncServer, tree, wait_until


def code_root() -> Path:
    """The checkout the server runs from (``SYNC_SERVER_PYTHONPATH`` or this one)."""
    other = os.environ.get("SYNC_SERVER_PYTHONPATH")
    return Path(other.split(os.pathsep)[0]) if other else REPO


def server_knows(option: str) -> bool:
    """Whether the server code under test mentions a config option (so a test can use
    an option the fix adds without making the config invalid on older code)."""
    for folder in ("caddytw/handlers", "caddytw/sync"):
        for path in (code_root() / folder).glob("*.py"):
            if f'"{option}"' in path.read_text(errors="replace"):
                return True
    return False


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(root: Path, rel: str, data: bytes, *, aged: bool = True) -> None:
    """Write a file as a user would (parents created); backdated by default so the
    client's settle window does not hold it back."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if aged:
        os.utime(path, (os.path.getmtime(path) - 30,) * 2)


def contents(root: Path) -> dict[str, str]:
    """What a user would call the folder's files, by hash: never following symlinks (a
    link is not content), leaving out temp files and the dot-names at the top of a root
    (the sync's state, index and folder markers) except ``.syncignore``."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        top = rel_folder == "."
        dirs[:] = [
            d
            for d in dirs
            if not (top and d.startswith(".")) and not os.path.islink(os.path.join(folder, d))
        ]
        for name in files:
            full = os.path.join(folder, name)
            if os.path.islink(full) or (name.startswith(".") and name.endswith(".tmp")):
                continue
            if top and name.startswith(".") and name != ".syncignore":
                continue  # the sync's own markers and state
            rel = os.path.normpath(os.path.join(rel_folder, name))
            with open(full, "rb") as handle:
                found[rel] = hashlib.file_digest(handle, "sha256").hexdigest()
    return found


def snapshot(root: Path) -> dict[str, Any]:
    """Everything under ``root`` (files by hash, folders, links by target), following
    nothing: for "this folder was not touched" checks."""
    seen: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                seen[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                seen[rel] = ("dir",)
            else:
                with open(full, "rb") as handle:
                    seen[rel] = ("file", hashlib.file_digest(handle, "sha256").hexdigest())
    return seen


def private_home(home: Path) -> dict[str, str]:
    """Environment that keeps a process's per-user files (synclient's list of marked
    folders, caddytw's data directory) under ``home``, inside the test's folder."""
    return {
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "HOME": str(home),
    }


class SafetyServer(SyncServer):
    """A ``file_sync`` server process with the extra settings the safety tests need."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        clients: list[dict[str, Any]] | None = None,
        handler: dict[str, Any] | None = None,
        before: list[dict[str, Any]] | None = None,
        after: list[dict[str, Any]] | None = None,
        servers: dict[str, Any] | None = None,
        new_folder: bool = True,
    ) -> None:
        self.workdir = workdir
        self.clients = clients
        self.root = workdir / "server-data"
        self.port = port or _free()
        self.process = None
        self.handler = dict(handler or {})
        self.before = before or []
        self.after = after or []
        self.servers = servers or {}
        self.home = workdir / "server-home"
        self.spool = workdir / "server-tmp"
        self.home.mkdir(exist_ok=True)
        self.spool.mkdir(exist_ok=True)
        # First start of a new folder: let the server create it where it can be told to;
        # otherwise (older code) create it as the seed's users had to.
        self.create_next = new_folder
        if new_folder and not server_knows("create_root"):
            self.root.mkdir(exist_ok=True)
            self.create_next = False

    def handler_config(self) -> dict[str, Any]:
        handler: dict[str, Any] = {
            "handler": "file_sync",
            "root": str(self.root),
            "enable_upload": True,
            "rescan_interval": "2s",
            **self.handler,
        }
        if self.clients:
            handler["clients"] = self.clients
        if self.create_next:
            handler["create_root"] = True
        return handler

    def config(self) -> dict[str, Any]:
        api = {"match": [{"path": ["/api/*"]}], "handle": [self.handler_config()]}
        servers: dict[str, Any] = {
            "srv0": {
                "listen": [f"127.0.0.1:{self.port}"],
                "routes": [*self.before, api, *self.after],
            },
            **self.servers,
        }
        return {"admin": {"disabled": True}, "apps": {"http": {"servers": servers}}}

    def env(self) -> dict[str, str]:
        env = {**private_home(self.home), "TMPDIR": str(self.spool)}
        other = os.environ.get("SYNC_SERVER_PYTHONPATH")
        if other:
            env["PYTHONPATH"] = other
        return env

    def start(self) -> SafetyServer:
        ports = [self.port] + [
            int(listen.rsplit(":", 1)[1])
            for spec in self.servers.values()
            for listen in spec.get("listen", [])
        ]
        self.process = start_server(self.config(), self.workdir, ports, env=self.env())
        self.create_next = False
        return self

    def kill(self) -> None:
        """SIGKILL (a crash or power cut as far as the process is concerned)."""
        if self.process is not None:
            if self.process.process.poll() is None:
                self.process.process.kill()
                self.process.process.wait(timeout=10)
            self.process = None

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("server-*.log"))
        )


def _free() -> int:
    from tests.support.ports import free_port

    return free_port()


def run_ok(result: Any) -> None:
    code = getattr(result, "returncode", None)
    assert code == 0, f"exit {code}\n{getattr(result, 'stderr', '')}"


__all__ = [
    "Client",
    "SafetyServer",
    "contents",
    "private_home",
    "run_ok",
    "server_knows",
    "sha",
    "snapshot",
    "tree",
    "wait_until",
    "write",
]
