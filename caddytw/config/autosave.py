"""Caddy's ``autosave.json``: the last config that loaded, kept for ``run --resume``.

Caddy writes every config it runs (at start and after each admin API change) to
``autosave.json`` in its config directory unless ``admin.config.persist`` is false,
and ``caddy run --resume`` starts from that file instead of ``--config``: so changes
made through the API survive a restart. caddytw keeps its own file under
``$XDG_CONFIG_HOME/caddytw`` (``~/.config/caddytw``), which ``caddytw environ`` prints
as ``caddy.ConfigAutosavePath``.

Writes go to a thread (the reactor never waits for the disk), one after another in
load order, each to a temporary file renamed over the old one, so a crash leaves the
previous config or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

log = Logger()


def config_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "caddytw")


def autosave_path() -> str:
    return os.path.join(config_dir(), "autosave.json")


def persists(raw: Any) -> bool:
    """False when the config says ``"admin": {"config": {"persist": false}}``."""
    admin = raw.get("admin") if isinstance(raw, dict) else None
    settings = admin.get("config") if isinstance(admin, dict) else None
    return not (isinstance(settings, dict) and settings.get("persist") is False)


def write(raw: Any, path: str) -> None:
    """Write ``raw`` as JSON to ``path`` atomically, readable by its owner only (the
    config may hold secrets, as Caddy's 0600 file does)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".autosave-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(raw, handle)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read(path: str | None = None) -> dict[str, Any] | None:
    """The saved config, or None when there is none yet (``--resume`` then uses
    ``--config``, as Caddy). A file that is not a JSON object raises ``ValueError``."""
    try:
        with open(path or autosave_path(), encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path or autosave_path()}: not a JSON object")
    return data


class Autosaver:
    """Saves each loaded config in turn (see the module docstring)."""

    def __init__(self, reactor: Any, path: str | None = None) -> None:
        self.reactor = reactor
        self.path = path or autosave_path()
        self._tail: Deferred[None] = succeed(None)

    def __call__(self, raw: Any) -> Deferred[None]:
        if not persists(raw):
            return self._tail
        snapshot = json.loads(json.dumps(raw))  # later changes to ``raw`` do not leak in

        def save(_: Any) -> Deferred[None]:
            pool = self.reactor.getThreadPool()
            return deferToThreadPool(self.reactor, pool, write, snapshot, self.path)

        def failed(failure: Any) -> None:
            log.warn(
                "could not save config to {path}: {error}",
                path=self.path,
                error=failure.getErrorMessage(),
            )

        self._tail = self._tail.addCallback(save).addErrback(failed)
        return self._tail
