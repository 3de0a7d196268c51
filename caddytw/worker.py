"""One worker process of ``twistd caddy --workers N`` (started by the supervisor).

It serves the whole config like a single ``twistd caddy`` would, except that every TCP
listener is bound with ``SO_REUSEPORT`` so that its siblings share the port. SIGTERM
stops it the usual way (the service stops, in-flight requests drain).
"""

from __future__ import annotations

import argparse
import sys

from twisted.application.service import IService


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="caddytw.worker")
    parser.add_argument("--config", "-c", required=True)
    parser.add_argument("--adapter", default=None)
    args = parser.parse_args(argv)

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from caddytw.app import CaddyService
    from caddytw.config.errors import ConfigError, ConfigErrors
    from caddytw.configfile import is_caddyfile, load_config_file
    from caddytw.reuseport import ReusePortReactor

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    try:
        data = load_config_file(args.config, args.adapter)
        service: IService = CaddyService(data, reactor=ReusePortReactor(reactor))
    except (ConfigError, ConfigErrors) as error:
        kind = "Caddyfile" if is_caddyfile(args.config, args.adapter) else "config"
        sys.stderr.write(f"caddytw worker: invalid {kind} {args.config}:\n{error}\n")
        return 1
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
