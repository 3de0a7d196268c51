"""Several serving processes for one config (``twistd caddy --workers N``).

One Python process serves on one core. The supervisor (the ``twistd`` process) starts
N workers, each running the whole config with every TCP listener bound through
``SO_REUSEPORT`` (:mod:`caddytw.server.workers.reuseport`), so the kernel spreads connections over
them. The supervisor serves nothing itself; it

- restarts a worker that exits while it is running (after a short delay that grows
  while a worker keeps dying right after its start, so a broken host cannot spin);
- on stop (SIGTERM, or ``stopService``) sends SIGTERM to every worker, waits for them
  (each drains as a single server would), and kills the ones still alive after
  ``stop_timeout``;
- on SIGHUP restarts the workers one after the other, each reading the config file
  again (a rolling reload: the others keep serving meanwhile);
- relays config changes: only worker 0 runs the admin API; after each load it writes
  the new config JSON (one ``config`` line) to its fd 3, and the supervisor hands that
  line to every other worker on their fd 4 (they load it the same zero-downtime way)
  and starts later workers (restarts) with it instead of the file;
- relays events (``event`` lines, :mod:`caddytw.admin.peers`) from any worker to all the
  others, e.g. upstream health transitions, so that workers agree on which upstreams
  are down;
- gives the workers a fresh ``PROMETHEUS_MULTIPROC_DIR``, so that ``/metrics`` (served
  by worker 0) sums every worker's values, and marks a worker's live gauges dead when
  it exits;
- when worker 0 exits by itself with status 0 (admin ``POST /stop``), stops them all.

UDP listeners (HTTP/3) stay in worker 0 only: QUIC routes packets by connection ID,
which ``SO_REUSEPORT`` spreading across processes would break. :func:`serves_udp`
tells code in a worker whether it may open them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

WORKER_INDEX_ENV = "CADDYTW_WORKER_INDEX"
#: A worker living less than this long before exiting counts as crash-looping.
QUICK_DEATH = 2.0
MAX_RESTART_DELAY = 10.0


def worker_index() -> int | None:
    """This process's worker number, or None outside a worker."""
    value = os.environ.get(WORKER_INDEX_ENV)
    return int(value) if value and value.isdigit() else None


def serves_udp() -> bool:
    """Whether this process opens UDP (HTTP/3) listeners: not in workers after the first."""
    index = worker_index()
    return index is None or index == 0


#: The worker's end of the link to the supervisor: it writes to CONFIG_OUT_FD and
#: reads from CONFIG_IN_FD, one message per line, each a tag and a JSON document:
#: ``config {...}`` (a config to load / just loaded) or ``event {...}`` (see
#: :mod:`caddytw.admin.peers`).
CONFIG_OUT_FD = 3
CONFIG_IN_FD = 4
CONFIG_TAG = b"config "
EVENT_TAG = b"event "
#: Events are small; a longer line is dropped rather than relayed.
MAX_EVENT = 64 * 1024


def worker_command(config: str, adapter: str | None, index: int) -> list[str]:
    """The command line of worker ``index`` (this interpreter, ``-m ...workers.worker``)."""
    command = [sys.executable, "-m", "caddytw.server.workers.worker", "--config", config]
    if adapter:
        command += ["--adapter", adapter]
    return command


class _WorkerProtocol(ProcessProtocol):
    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.ended: Deferred[None] = Deferred()
        self.terminating = False  # the supervisor asked it to stop
        self.pid: int | None = None
        self._buffer = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != CONFIG_OUT_FD:
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.startswith(CONFIG_TAG):
                self.supervisor._config_changed(self.index, line)
            elif line.startswith(EVENT_TAG) and len(line) <= MAX_EVENT:
                self.supervisor._relay(self.index, line)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.supervisor._worker_ended(self, reason)


class WorkerSupervisor(Service):
    """Keeps ``count`` worker processes running (see the module docstring)."""

    def __init__(
        self,
        command: Callable[[int, str | None], list[str]],
        count: int,
        reactor: Any = None,
        env: dict[str, str] | None = None,
        restart_delay: float = 0.5,
        stop_timeout: float = 30.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.reactor = reactor
        self.command = command
        self.count = count
        self.env = dict(os.environ if env is None else env)
        self.restart_delay = restart_delay
        self.stop_timeout = stop_timeout
        self.workers: dict[int, Any] = {}  # index -> IProcessTransport
        self._protocols: dict[int, _WorkerProtocol] = {}
        self._started_at: dict[int, float] = {}
        self._delays: dict[int, float] = {}
        self._pending: dict[int, Any] = {}  # index -> DelayedCall of a restart
        self._stopping = False
        self._previous_sighup: Any = None
        self._live_dir = tempfile.mkdtemp(prefix="caddytw-workers-")
        self.metrics_dir: str | None = None
        self.live_config: str | None = None  # a config loaded through the admin API

    # -- lifecycle -------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        # Each worker writes its metric values here; a fresh directory, so that no
        # count from an earlier run is summed in.
        self.metrics_dir = tempfile.mkdtemp(prefix="caddytw-metrics-")
        self.env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        for index in range(self.count):
            self._spawn(index)
        if hasattr(signal, "SIGHUP"):
            self._previous_sighup = signal.signal(
                signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.rolling_restart)
            )

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        self._stopping = True
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()
        ended = [p.ended for p in self._protocols.values()]
        for protocol in self._protocols.values():
            protocol.terminating = True
        for transport in list(self.workers.values()):
            _signal(transport, "TERM")
        killer = self.reactor.callLater(self.stop_timeout, self._kill_all)
        done = DeferredList(ended)

        def finished(result: Any) -> Any:
            if killer.active():
                killer.cancel()
            shutil.rmtree(self._live_dir, ignore_errors=True)
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
                self.metrics_dir = None
            return result

        return done.addBoth(finished)

    def rolling_restart(self) -> Deferred[Any]:
        """Restart every worker in turn (each re-reads the config file)."""
        log.info("restarting {count} workers one by one", count=self.count)
        self.live_config = None
        order = sorted(self.workers)
        done: Deferred[Any] = Deferred()

        def next_one(_: Any = None) -> None:
            if not order or self._stopping:
                done.callback(None)
                return
            index = order.pop(0)
            protocol = self._protocols.get(index)
            transport = self.workers.get(index)
            if protocol is None or transport is None:
                next_one()
                return
            self._delays[index] = 0.0
            protocol.terminating = True
            protocol.ended.addCallback(lambda _: self._when_listening(index)).addBoth(next_one)
            _signal(transport, "TERM")

        next_one()
        return done

    def _when_listening(self, index: int) -> Deferred[None]:
        """Fires once worker ``index`` was started again (after its restart delay)."""
        ready: Deferred[None] = Deferred()

        def check() -> None:
            if index in self.workers or self._stopping:
                # Give the new process a moment to bind before stopping the next one.
                self.reactor.callLater(1.0, ready.callback, None)
            else:
                self.reactor.callLater(0.1, check)

        check()
        return ready

    # -- processes -------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        self._pending.pop(index, None)
        if self._stopping:
            return
        protocol = _WorkerProtocol(self, index)
        env = dict(self.env)
        env[WORKER_INDEX_ENV] = str(index)
        command = self.command(index, self.live_config)
        fds = {0: "w", 1: 1, 2: 2, CONFIG_OUT_FD: "r", CONFIG_IN_FD: "w"}
        transport = self.reactor.spawnProcess(protocol, command[0], command, env=env, childFDs=fds)
        protocol.pid = transport.pid
        self.workers[index] = transport
        self._protocols[index] = protocol
        self._started_at[index] = self.reactor.seconds()
        log.info("worker {index} started (pid {pid})", index=index, pid=transport.pid)

    def _worker_ended(self, protocol: _WorkerProtocol, reason: Failure) -> None:
        index = protocol.index
        self._forget_metrics(protocol.pid)
        if self._protocols.get(index) is not protocol:
            return
        del self.workers[index]
        del self._protocols[index]
        if self._stopping:
            return
        if reason.check(ProcessDone) and not protocol.terminating:
            log.info("worker {index} stopped by itself (admin /stop): stopping", index=index)
            self.reactor.stop()
            return
        lived = self.reactor.seconds() - self._started_at.get(index, 0.0)
        delay = self._delays.get(index, 0.0)
        delay = min(max(delay * 2, self.restart_delay), MAX_RESTART_DELAY)
        if lived >= QUICK_DEATH:
            delay = self.restart_delay
        self._delays[index] = delay
        log.warn(
            "worker {index} exited ({reason}); restarting in {delay:.1f}s",
            index=index,
            reason=reason.getErrorMessage(),
            delay=delay,
        )
        self._pending[index] = self.reactor.callLater(delay, self._spawn, index)

    def _forget_metrics(self, pid: int | None) -> None:
        """A worker exited: its gauges stop counting (its counters stay in the sums)."""
        if pid is None or self.metrics_dir is None:
            return
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, self.metrics_dir)

    def _config_changed(self, source: int, line: bytes) -> None:
        """Worker ``source`` loaded a new config (a ``config`` line): the others load it
        too, and workers started from now on start with it."""
        os.makedirs(self._live_dir, exist_ok=True)
        path = os.path.join(self._live_dir, "live.json")
        with open(path, "wb") as handle:
            handle.write(line[len(CONFIG_TAG) :])
        self.live_config = path
        self._relay(source, line)

    def _relay(self, source: int, line: bytes) -> None:
        """Send a line from worker ``source`` to every other worker."""
        for index, transport in self.workers.items():
            if index != source:
                with contextlib.suppress(Exception):  # a worker that just went away
                    transport.writeToChild(CONFIG_IN_FD, line + b"\n")

    def _kill_all(self) -> None:
        for transport in list(self.workers.values()):
            _signal(transport, "KILL")

    def pids(self) -> list[int]:
        return [t.pid for t in self.workers.values() if t.pid is not None]


def _signal(transport: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # already gone
        transport.signalProcess(name)
