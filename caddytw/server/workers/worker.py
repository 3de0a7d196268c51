"""One worker process of ``twistd caddy --workers N`` (started by the supervisor).

It serves the whole config like a single ``twistd caddy`` would, except that every TCP
listener is bound with ``SO_REUSEPORT`` so that its siblings share the port, and only
worker 0 runs the admin API: after each config it loads, worker 0 writes the config to
the supervisor, which passes it to the other workers (see :mod:`caddytw.server.workers.supervisor`).
The same link carries :mod:`caddytw.admin.peers` events both ways.
SIGTERM stops it the usual way (the service stops, in-flight requests drain).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from twisted.protocols.basic import LineReceiver

from caddytw.admin import peers
from caddytw.server.workers.supervisor import (
    CONFIG_IN_FD,
    CONFIG_OUT_FD,
    CONFIG_TAG,
    EVENT_TAG,
    worker_index,
)

#: Set to ``json`` by ``caddytw run``: workers then log Caddy's JSON lines as it does.
LOG_FORMAT_ENV = "CADDYTW_LOG_FORMAT"


class ConfigLink(LineReceiver):
    """The worker's side of the link to the supervisor: ``config`` lines in are configs
    to load, ``event`` lines go to :func:`caddytw.admin.peers.deliver`."""

    delimiter = b"\n"
    MAX_LENGTH = 64 << 20

    def __init__(self, service: Any) -> None:
        self.service = service

    def lineReceived(self, line: bytes) -> None:
        from twisted.logger import Logger

        if line.startswith(EVENT_TAG):
            peers.deliver(line[len(EVENT_TAG) :])
            return
        log = Logger()
        if not line.startswith(CONFIG_TAG):
            log.error("worker: unknown message from the supervisor: {line!r}", line=line[:80])
            return
        try:
            data = json.loads(line[len(CONFIG_TAG) :])
        except ValueError as error:
            log.error("worker: unreadable config from the supervisor: {error}", error=error)
            return
        loaded = self.service.load(data)
        if loaded is not None and hasattr(loaded, "addErrback"):
            loaded.addErrback(lambda failure: log.failure("worker: reload failed", failure))

    def send(self, raw: Any) -> None:
        self.sendLine(CONFIG_TAG + json.dumps(raw, separators=(",", ":")).encode())

    def send_event(self, encoded: bytes) -> None:
        if self.transport is not None:
            self.sendLine(EVENT_TAG + encoded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="caddytw.server.workers.worker")
    parser.add_argument("--config", "-c", required=True)
    parser.add_argument("--adapter", default=None)
    args = parser.parse_args(argv)

    from caddytw.server import reactor as reactor_choice

    reactor_choice.install()
    from twisted.internet import reactor, stdio
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from caddytw.config.errors import ConfigError, ConfigErrors
    from caddytw.server.configfile import is_caddyfile, load_config_file
    from caddytw.server.service import CaddyService
    from caddytw.server.workers.reuseport import ReusePortReactor

    if os.environ.get(LOG_FORMAT_ENV) == "json":  # started by `caddytw run --workers`
        from caddytw.cli.logs import json_observer

        globalLogBeginner.beginLoggingTo([json_observer(sys.stdout)])
    else:
        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    try:
        data = load_config_file(args.config, args.adapter)
        service = CaddyService(data, reactor=ReusePortReactor(reactor))
    except (ConfigError, ConfigErrors) as error:
        kind = "Caddyfile" if is_caddyfile(args.config, args.adapter) else "config"
        sys.stderr.write(f"caddytw worker: invalid {kind} {args.config}:\n{error}\n")
        return 1
    index = worker_index()
    if index is not None and _is_open(CONFIG_IN_FD) and _is_open(CONFIG_OUT_FD):
        link = ConfigLink(service)
        stdio.StandardIO(link, stdin=CONFIG_IN_FD, stdout=CONFIG_OUT_FD)  # type: ignore[call-arg]
        peers.connect(link.send_event)
        if index == 0:
            service.live.on_load.append(lambda _: link.send(service.live.raw))
    if index not in (None, 0):
        service.admin.disownServiceParent()  # one admin API, in worker 0
    reactor.callWhenRunning(service.startService)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
