"""What every benchmark in ``bench/`` shares (a small convention, not a framework).

The convention: a benchmark is a script ``bench/NAME.py`` that prints one Markdown
section (tables and a few notes) to stdout and exits 0; ``bench/run`` runs them all and
collects their output in ``bench/results/latest.md`` (its ``BENCHMARKS`` table gives a
script's full and ``--quick`` arguments; a script not listed there runs with its
defaults). Scripts may use, from here:

- CPU pinning with ``taskset``: the server under test on :data:`SERVER_CPUS`, the load
  generator on :data:`CLIENT_CPUS` (so the two do not fight for one core);
- :func:`rounds` and :func:`duration`: how many interleaved rounds and how long each
  run lasts (``BENCH_ROUNDS``/``BENCH_DURATION``, smaller with ``BENCH_QUICK=1``);
- :func:`interleave`: run every case once per round, case after case, so that a
  change in machine load hits all cases alike;
- :class:`Samples`: median, spread and ratio to a reference;
- :func:`peak_rss_mib` and :func:`cpu_seconds`: from ``/proc``, over a process and
  its children (worker processes count);
- :func:`wrk`: one wrk run, parsed;
- :func:`markdown_table`;
- :func:`rsync_daemon`: a Debian ``rsync --daemon`` with one writable module ``m``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SERVER_CPUS = os.environ.get("BENCH_SERVER_CPUS", "0")
CLIENT_CPUS = os.environ.get("BENCH_CLIENT_CPUS", "1")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def quick() -> bool:
    """``BENCH_QUICK=1``: a short smoke run (fewer rounds, shorter runs)."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def rounds(default: int = 5) -> int:
    return int(os.environ.get("BENCH_ROUNDS", 2 if quick() else default))


def duration(default: float = 5.0) -> float:
    return float(os.environ.get("BENCH_DURATION", 2.0 if quick() else default))


def pinned(command: Sequence[str], cpus: str) -> list[str]:
    """``command`` run on ``cpus`` (a taskset list such as "0" or "0-1")."""
    if shutil.which("taskset") is None or not cpus:
        return list(command)
    return ["taskset", "-c", cpus, *command]


# -- /proc ----------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _status_mib(pid: int, field: str) -> float:
    """``field`` (a kB line of /proc/PID/status) summed over ``pid`` and its live
    descendants, in MiB."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) of ``pid`` plus its live descendants, in MiB."""
    return _status_mib(pid, "VmHWM:")


def rss_mib(pid: int) -> float:
    """Resident memory now (VmRSS) of ``pid`` plus its live descendants, in MiB."""
    return _status_mib(pid, "VmRSS:")


@contextlib.contextmanager
def sampled_peak(read: Callable[[], float], interval: float) -> Iterator[list[float]]:
    """Call ``read`` every ``interval`` seconds while the body runs; yields ``[peak]``
    (e.g. the RSS during one download, which VmHWM cannot tell apart from earlier work)."""
    peak = [read()]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], read())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def nginx_temp_paths(work: Path) -> str:
    """nginx's temp directories under ``work`` (an unprivileged nginx cannot use the
    compiled-in ones)."""
    return "\n    ".join(
        f"{kind}_temp_path {work}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


# -- statistics -----------------------------------------------------------------------


@dataclass
class Samples:
    """Repeated measurements of one case (e.g. requests/s per round)."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def spread(self) -> float:
        """(max - min) / median, as a fraction: how much the rounds disagreed."""
        if len(self.values) < 2 or not self.median:
            return 0.0
        return (max(self.values) - min(self.values)) / self.median

    def ratio(self, reference: Samples) -> float:
        if not reference.values or not reference.median:
            return float("nan")
        return self.median / reference.median


def interleave(cases: Sequence[str], count: int, run: Callable[[str, int], None]) -> None:
    """Call ``run(case, round)`` for every case in every round, rounds outermost."""
    for index in range(count):
        for case in cases:
            run(case, index)


# -- load generation ------------------------------------------------------------------


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    non_2xx: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(
    url: str,
    seconds: float,
    connections: int = 50,
    threads: int = 1,
    cpus: str = CLIENT_CPUS,
    extra: Sequence[str] = (),
) -> WrkResult:
    """One wrk run against ``url``."""
    command = pinned(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", *extra, url],
        cpus,
    )
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    unit = {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(3)]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        int(match.group(1)),
        float(match.group(2)) * unit,
        errors,
        int(non_2xx.group(1)) if non_2xx else 0,
    )


# -- output ---------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; numbers are right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    align = [
        "---:" if cells and all(_numeric(row[i]) for row in cells) else "---"
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,]+\s*(%|x|MiB|µs)?|n/a|nan", text))


def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def have(program: str) -> bool:
    return shutil.which(program) is not None


@contextlib.contextmanager
def rsync_daemon(work: Path, module: Path) -> Iterator[int]:
    """An ``rsync --daemon`` on a free loopback port serving ``module`` as ``m``
    (read-write, as this user); yields the port."""
    from tests.support.ports import free_port, wait_for_port

    port = free_port()
    conf = work / "rsyncd.conf"
    conf.write_text(
        f"use chroot = no\npid file = {work}/rsyncd.pid\nport = {port}\n"
        f"address = 127.0.0.1\n[m]\npath = {module}\nread only = no\n"
        f"uid = {os.getuid()}\ngid = {os.getgid()}\n"
    )
    daemon = subprocess.Popen(
        ["rsync", "--daemon", "--no-detach", f"--config={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port(port, 10):
            raise RuntimeError("rsync --daemon did not start")
        yield port
    finally:
        daemon.terminate()
        daemon.wait(10)
