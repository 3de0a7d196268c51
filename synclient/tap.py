"""``twistd synclient``: continuous sync as a twistd service (logging, daemonising)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.python import usage

from synclient.planner import Strategy


class Options(usage.Options):
    synopsis = "--server URL --local-path DIR [options]"
    longdesc = "Keep DIR and a caddytw file_sync server in sync, both ways, continuously."
    optParameters = [
        ["local-path", None, None, "Local folder to mirror."],
        ["token", None, None, "Bearer token (or SYNCLIENT_TOKEN)."],
        ["interval", None, 30.0, "Seconds between full safety-net passes.", float],
        ["conflict", None, "keep-client", "keep-client, keep-server or rename."],
    ]
    optFlags = [["allow-mass-delete", None, "Allow deleting most files in one pass."]]

    def __init__(self) -> None:
        super().__init__()
        self["exclude"] = []
        self["server"] = []

    def opt_server(self, url: str) -> None:
        """Server URL, e.g. http://127.0.0.1:8080 (repeat to sync with several)."""
        self["server"].append(url)

    def opt_exclude(self, pattern: str) -> None:
        """A gitignore-style pattern to leave out (repeatable)."""
        self["exclude"].append(pattern)

    def postOptions(self) -> None:
        if not self["server"] or not self["local-path"]:
            raise usage.UsageError("--server and --local-path are required")
        if self["conflict"] not in {s.value for s in Strategy}:
            raise usage.UsageError("--conflict must be keep-client, keep-server or rename")


def makeService(options: Any) -> Any:
    import os

    from synclient.cli import EXIT_FOLDER, check_folder
    from synclient.config import ConfigError, servers, url
    from synclient.service import Server, Settings, SyncService

    root = Path(options["local-path"]).resolve()
    problem = check_folder(root, create=False)
    if problem:
        sys.stderr.write(f"synclient: {problem}\n")
        raise SystemExit(EXIT_FOLDER)
    token = options["token"] or os.environ.get("SYNCLIENT_TOKEN") or None
    try:
        found = servers([Server(url(u, "--server"), token) for u in options["server"]], "--server")
    except ConfigError as error:
        raise usage.UsageError(str(error)) from None
    settings = Settings(
        local_path=root,
        servers=found,
        interval=max(float(options["interval"]), 1.0),
        strategy=Strategy(options["conflict"]),
        excludes=list(options["exclude"]),
        allow_mass_delete=bool(options["allow-mass-delete"]),
    )
    return SyncService(settings)
