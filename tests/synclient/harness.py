"""Real processes for end-to-end sync tests: one ``file_sync`` server, several clients.

Trees are compared as ``{relative path: sha256}`` (folders as ``"<dir>"``), leaving out
the client's state folder, the server's index folder and in-progress temp files.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.ports import free_port, wait_for_port
from tests.support.server import REPO, ServerProcess, server_env, simple_config, start_server

HIDDEN = {".synclient", ".caddytw-sync", ".caddytw-folder"}


def tree(root: Path, dirs: bool = False) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder, subdirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        subdirs[:] = [d for d in subdirs if not (rel_folder == "." and d in HIDDEN)]
        for name in files:
            if (name.startswith(".") and name.endswith(".tmp")) or (
                rel_folder == "." and name in HIDDEN
            ):
                continue
            if rel_folder == "." and name in HIDDEN:
                continue
            rel = os.path.normpath(os.path.join(rel_folder, name))
            with open(os.path.join(folder, name), "rb") as handle:
                found[rel] = hashlib.file_digest(handle, "sha256").hexdigest()
        if dirs:
            for name in subdirs:
                found[os.path.normpath(os.path.join(rel_folder, name))] = "<dir>"
    return found


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def converged(*roots: Path) -> bool:
    first = tree(roots[0])
    return all(tree(root) == first for root in roots[1:])


class SyncServer:
    """A caddytw process serving ``root`` with ``file_sync`` on a fixed port."""

    def __init__(
        self, workdir: Path, port: int | None = None, clients: list[dict[str, Any]] | None = None
    ) -> None:
        self.workdir = workdir
        self.clients = clients
        self.root = workdir / "server-data"
        self.root.mkdir(exist_ok=True)
        self.port = port or free_port()
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        handler: dict[str, Any] = {
            "handler": "file_sync",
            "root": str(self.root),
            "enable_upload": True,
            # The watcher can miss a burst of files written straight into the folder
            # (seen under load); the periodic rescan is the server's safety net for that,
            # so tests run it often instead of waiting the default minute.
            "rescan_interval": "2s",
        }
        if self.clients:
            handler["clients"] = self.clients
        return simple_config(self.port, [{"match": [{"path": ["/api/*"]}], "handle": [handler]}])

    def start(self) -> SyncServer:
        # SYNC_SERVER_PYTHONPATH runs the server from another checkout (e.g. a server
        # branch under development); by default it runs from this repository.
        other = os.environ.get("SYNC_SERVER_PYTHONPATH")
        env = {"PYTHONPATH": other} if other else None
        self.process = start_server(self.config(), self.workdir, [self.port], env=env)
        return self

    def wait_indexed(self, timeout: float = 30) -> None:
        """Wait until the server's index lists every file written straight into its root
        (the server learns of them through its folder watcher, asynchronously)."""
        import json
        import urllib.request

        def on_disk() -> set[str]:
            found = set()
            for folder, dirs, names in os.walk(self.root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in names:
                    if not name.startswith("."):
                        found.add(os.path.relpath(os.path.join(folder, name), self.root))
            return found

        def listed() -> set[str]:
            request = urllib.request.Request(f"{self.url}/api/list")
            if self.clients:
                request.add_header("Authorization", f"Bearer {self.clients[0]['token']}")
            with urllib.request.urlopen(request, timeout=10) as response:
                entries = json.load(response)
            return {e["path"] for e in entries if not e.get("is_directory")}

        wait_until(lambda: on_disk() <= listed(), timeout, "the server to index its folder")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class Client:
    """One ``synclient`` process on its own folder."""

    def __init__(self, server: SyncServer, root: Path, *args: str) -> None:
        self.server = server
        self.root = root
        self.args = list(args)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root.parent / f"{root.name}.log"

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "synclient",
            "--server",
            self.server.url,
            "--local-path",
            str(self.root),
            *self.args,
            *extra,
        ]

    def env(self) -> dict[str, str]:
        """The client's environment: its list of marked folders (``XDG_DATA_HOME``) is
        kept beside its folder, not in the home directory of whoever runs the tests."""
        return {**server_env(), "XDG_DATA_HOME": str(self.root.parent / "xdg")}

    def once(self, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("--once", *extra),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )

    def start(self, *extra: str) -> Client:
        self.root.mkdir(exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command("--interval", "3", *extra),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        code = self.process.returncode
        self.process = None
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


__all__ = ["Client", "SyncServer", "converged", "free_port", "tree", "wait_for_port", "wait_until"]
