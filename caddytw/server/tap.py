"""``twistd caddy``: options and service maker for the twistd plugin."""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import usage

DEFAULT_CONFIG = "conf/caddy.json"


class Options(usage.Options):
    synopsis = "[-c CONFIG] [--adapter caddyfile] [--workers N]"
    longdesc = "Serve a Caddy v2 JSON config (or a Caddyfile) with caddytw."
    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "Config file (Caddy v2 JSON, or a Caddyfile)."],
        ["adapter", None, None, "Config adapter: json (default) or caddyfile."],
        ["workers", "w", 1, "Serving processes sharing each TCP port (SO_REUSEPORT).", int],
    ]

    def postOptions(self) -> None:
        if self["workers"] < 1:
            raise usage.UsageError("--workers must be at least 1")


def makeService(options: Any) -> Any:
    from caddytw.config.errors import ConfigError, ConfigErrors
    from caddytw.server.configfile import load_config_file
    from caddytw.server.service import CaddyService

    try:
        data = load_config_file(options["config"], options["adapter"])
        if options["workers"] > 1:
            return worker_supervisor(data, options)
        return CaddyService(data)
    except (ConfigError, ConfigErrors) as error:
        sys.stderr.write(f"caddytw: invalid config {options['config']}:\n{error}\n")
        raise SystemExit(1) from None


def worker_supervisor(data: Any, options: Any) -> Any:
    """The ``--workers N`` service: the config is checked here first, so a bad one
    fails at once instead of in N crash-looping children."""
    import os

    from caddytw.server.build import build_app
    from caddytw.server.workers.supervisor import WorkerSupervisor, worker_command

    build_app(data)  # raises ConfigErrors; nothing listens yet
    config = os.path.abspath(options["config"])
    adapter = options["adapter"]

    def command(index: int, live: str | None) -> list[str]:
        # A config loaded through the admin API (JSON) replaces the file for restarts.
        return worker_command(live, None, index) if live else worker_command(config, adapter, index)

    return WorkerSupervisor(command, options["workers"])
