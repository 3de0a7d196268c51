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
        ["server", None, None, "Server URL, e.g. http://127.0.0.1:8080."],
        ["local-path", None, None, "Local folder to mirror."],
        ["token", None, None, "Bearer token (or SYNCLIENT_TOKEN)."],
        ["interval", None, 30.0, "Seconds between full safety-net passes.", float],
        ["conflict", None, "keep-client", "keep-client, keep-server or rename."],
    ]
    optFlags = [["allow-mass-delete", None, "Allow deleting most files in one pass."]]

    def __init__(self) -> None:
        super().__init__()
        self["exclude"] = []

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
    from synclient.service import Settings, SyncService

    root = Path(options["local-path"]).resolve()
    problem = check_folder(root, create=False)
    if problem:
        sys.stderr.write(f"synclient: {problem}\n")
        raise SystemExit(EXIT_FOLDER)
    settings = Settings(
        server=options["server"],
        local_path=root,
        token=options["token"] or os.environ.get("SYNCLIENT_TOKEN") or None,
        interval=max(float(options["interval"]), 1.0),
        strategy=Strategy(options["conflict"]),
        excludes=list(options["exclude"]),
        allow_mass_delete=bool(options["allow-mass-delete"]),
    )
    return SyncService(settings)
