"""``twistd caddy``: options and service maker for the twistd plugin."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

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
    from caddytw.server import reactor as reactor_choice

    # Before anything imports the default reactor; ``twistd -r NAME`` has already
    # installed NAME, and keeps it.
    reactor_choice.install()
    from caddytw.config.errors import ConfigError, ConfigErrors
    from caddytw.server.configfile import load_config_file

    try:
        data = load_config_file(options["config"], options["adapter"])
        if options["workers"] > 1:
            return worker_supervisor(data, options)
        from caddytw.server.service import CaddyService

        return CaddyService(data)
    except (ConfigError, ConfigErrors) as error:
        _invalid(options, str(error))


def _invalid(options: Any, problems: str) -> NoReturn:
    sys.stderr.write(f"caddytw: invalid config {options['config']}:\n{problems}\n")
    raise SystemExit(1)


def worker_supervisor(data: Any, options: Any) -> Any:
    """The ``--workers N`` service: the config is checked here first, so a bad one
    fails at once instead of in N crash-looping children."""
    from caddytw.server.workers.supervisor import WorkerSupervisor, worker_command

    problems = _build_in_child(data)
    if problems is not None:
        _invalid(options, problems)
    config = os.path.abspath(options["config"])
    adapter = options["adapter"]

    def command(index: int, live: str | None) -> list[str]:
        # A config loaded through the admin API (JSON) replaces the file for restarts.
        return worker_command(live, None, index) if live else worker_command(config, adapter, index)

    return WorkerSupervisor(command, options["workers"])


def _build_in_child(data: Any) -> str | None:
    """Build ``data`` as a worker will (nothing listens yet) in a forked child: the
    problems found, or None. In a child because the supervisor serves nothing, and
    building imports the serving stack (handlers, HTTP, TLS: several MB resident), which
    would stay in the supervisor for good. A failure other than the config's is raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports and leaves, running none of the parent's exit hooks
        os.close(read)
        code, report = 0, ""
        try:
            from caddytw.config.errors import ConfigError, ConfigErrors
            from caddytw.server.build import build_app

            try:
                build_app(data)
            except (ConfigError, ConfigErrors) as error:
                code, report = 1, str(error)
        except BaseException:
            code, report = 2, traceback.format_exc()
        finally:
            with os.fdopen(write, "wb") as out:
                out.write(report.encode("utf-8", "replace"))
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return None
    if code == 1:
        return report
    raise RuntimeError(f"building the config failed:\n{report}")
