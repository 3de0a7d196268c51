"""``run``, ``start``, ``stop`` and ``reload``: the server's lifecycle from the shell.

``run`` starts the same :class:`caddytw.server.service.CaddyService` that ``twistd -n
caddy`` does, under a plain reactor with Caddy's JSON runtime log on stderr.
``start`` runs ``caddytw run`` in the background and returns once the server
is listening (the child reports through an inherited pipe, as Caddy's
``--pingback`` does), or fails with the child's exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from typing import Any

from caddytw.config.autosave import autosave_path, read
from caddytw.config.errors import ConfigError, ConfigErrors
from caddytw.server import reactor as reactor_choice

from .config_commands import load, resolve_config
from .environ import environ_lines, load_envfiles
from .logs import begin_json_logging

WATCH_INTERVAL = 1.0


def _config_data(config: str | None, adapter: str | None) -> dict[str, Any]:
    return load(config, adapter) if config else {}


def _resume() -> dict[str, Any] | None:
    """The last autosaved config for ``run --resume`` (None: there is none yet, and
    ``--config`` is used, as Caddy does)."""
    data = read()
    if data is None:
        print(f"no autosave file exists at {autosave_path()}", file=sys.stderr)
    return data


def cmd_run(args: argparse.Namespace) -> int:
    reactor_choice.install()  # first: nothing below may bring in the default reactor
    try:
        load_envfiles(args.envfile)
    except (OSError, ValueError) as error:
        print(f"Error: loading envfile: {error}", file=sys.stderr)
        return 1
    if args.environ:
        print("\n".join(environ_lines()))
    config, adapter = resolve_config(args.config, args.adapter)
    try:
        resumed = _resume() if args.resume else None
        if resumed is not None:
            if config:  # as Caddy: the user should know their file is not used
                print(
                    f"--config and --resume flags were used together; ignoring --config "
                    f"and resuming from last configuration ({autosave_path()})",
                    file=sys.stderr,
                )
            data, config, adapter = resumed, autosave_path(), "json"
        else:
            data = _config_data(config, adapter)
    except (ConfigError, ConfigErrors, ValueError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    if args.pidfile:
        with open(args.pidfile, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
    if args.workers > 1 and not config:
        print("Error: --workers needs a config file", file=sys.stderr)
        return 1
    return serve(data, config, adapter, args.workers, args.ready_fd, watch=args.watch)


def serve(
    data: dict[str, Any],
    config: str | None = None,
    adapter: str | None = None,
    workers: int = 1,
    ready_fd: int | None = None,
    watch: bool = False,
) -> int:
    """Run the service until it is stopped (signal or admin ``/stop``); 1 if it can't start."""
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from caddytw.server.service import CaddyService

    begin_json_logging(sys.stderr)
    try:
        if workers > 1:
            from caddytw.server.tap import worker_supervisor
            from caddytw.server.workers.worker import LOG_FORMAT_ENV

            os.environ[LOG_FORMAT_ENV] = "json"

            service: Any = worker_supervisor(
                data, {"config": config, "adapter": adapter, "workers": workers}
            )
        else:
            service = CaddyService(data)
        service.startService()
    except (ConfigError, ConfigErrors) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"Error: starting: {error}", file=sys.stderr)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
    # Ready only once the reactor runs: its signal handlers are in place by then,
    # so a SIGTERM right after "ready" is a clean stop, not a kill.
    reactor.callWhenRunning(_announce_ready, ready_fd)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", notify_systemd, b"STOPPING=1")  # type: ignore[attr-defined]
    if watch and config:
        LoopingCall(_Watcher(config, adapter, service)).start(WATCH_INTERVAL, now=False)
    reactor.run()  # type: ignore[attr-defined]
    return 0


def _announce_ready(ready_fd: int | None) -> None:
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    notify_systemd(b"READY=1")


def notify_systemd(state: bytes) -> None:
    """sd_notify for ``Type=notify`` units (as Caddy does): one datagram to
    ``$NOTIFY_SOCKET``; nothing when not started by systemd."""
    import socket

    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(state, address)


class _Watcher:
    """``--watch``: reload when the config file's mtime or size changes."""

    def __init__(self, path: str, adapter: str | None, service: Any) -> None:
        self.path, self.adapter, self.service = path, adapter, service
        self.stamp = self._stamp()

    def _stamp(self) -> tuple[float, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime, info.st_size)

    def __call__(self) -> None:
        from twisted.logger import Logger

        stamp = self._stamp()
        if stamp is None or stamp == self.stamp:
            return
        self.stamp = stamp
        log = Logger(namespace="watcher")
        try:
            result = self.service.load(load(self.path, self.adapter))
        except (ConfigError, ConfigErrors) as error:
            log.error("loading new config: {error}", error=str(error))
            return
        log.info("config file changed; reloading {file}", file=self.path)
        if hasattr(result, "addErrback"):
            result.addErrback(lambda f: log.failure("reloading config", f))


def cmd_start(args: argparse.Namespace) -> int:
    """Caddy's ``start``: the server in the background; exit once it listens."""
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "caddytw", "run", "--ready-fd", str(write_end)]
    for flag in ("config", "adapter", "pidfile"):
        if getattr(args, flag):
            command += [f"--{flag}", getattr(args, flag)]
    command += ["--watch"] * args.watch
    for envfile in args.envfile:
        command += ["--envfile", envfile]
    child = subprocess.Popen(
        command, pass_fds=(write_end,), start_new_session=True, stdin=subprocess.DEVNULL
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        ready = pipe.read(2) == b"ok"
    if not ready:
        status = child.wait()
        print(f"Error: caddytw process exited with status {status}", file=sys.stderr)
        return 1
    print(f"Successfully started caddytw (pid={child.pid}) - running in the background")
    return 0


def _admin_for(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    from caddytw.admin import client

    config, adapter = resolve_config(args.config, args.adapter)
    data = _config_data(config, adapter) if config else None
    return data, client.admin_address(data, args.address)


def cmd_stop(args: argparse.Namespace) -> int:
    from caddytw.admin import client

    try:
        _data, address = _admin_for(args)
        client.stop(address)
    except (ConfigError, ConfigErrors, client.AdminClientError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    from caddytw.admin import client

    if not (args.config or args.config_arg):
        args.config, _ = resolve_config(None, args.adapter)
    args.config = args.config or args.config_arg
    if not args.config:
        print("Error: no config file to load", file=sys.stderr)
        return 1
    try:
        data, address = _admin_for(args)
        client.reload(data or {}, address, force=args.force)
    except (ConfigError, ConfigErrors, client.AdminClientError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    print("Config reloaded")
    return 0
