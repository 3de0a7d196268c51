"""The adversarial model of issue 12: a hypothesis state machine that drives one real
``file_sync`` server (a ``twistd`` process) and two real ``synclient`` clients (``--once``
passes) through random sequences of what users and machines do to a sync:

- users write, overwrite, delete and rename files on client A, client B and straight in
  the server's folder;
- ignore rules change (``--exclude`` per pass, and ``.syncignore`` in a client's folder);
- a client folder is moved aside and replaced by a symlink to a folder outside every
  sync folder (and the link later removed);
- the server's disk is "unmounted" (its root moved away, optionally leaving an empty
  mount point) and mounted again, the server restarting each time with the seed's
  config;
- a client pass is SIGKILLed after a random delay, and the server is SIGKILLed during a
  client pass and restarted.

Every byte string a user writes is unique and tracked by hash. After every step:

- **no loss**: every tracked content that no user deliberately removed (deleted or
  overwrote at a path that held it, on the side where it was done) is in at least one
  of A, B and the server's disk (conflict copies count; a file left on a bare mount
  point does not: the disk hides it when mounted again);
- **nothing outside**: the symlink targets (and everything beside the sync folders)
  are exactly as they were.

At the end of each sequence the disk is mounted, the server runs, and both clients make
clean passes until quiet; then each client's tree equals the server's, leaving out the
paths that client ignores and anything at or under a symlink in that client's folder.

The CI profile is small (a few sequences of ~12 steps, no shrinking); ``CADDYTW_SOAK=1``
runs long (``CADDYTW_SOAK_EXAMPLES``, default 200) and ``bench/sync_soak.py`` reports how
many sequences ran.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.support.server import REPO, server_env
from tests.sync_safety.harness import (
    Client,
    SafetyServer,
    contents,
    private_home,
    sha,
    snapshot,
)

SIDES = ("A", "B", "S")
CLIENTS = ("A", "B")
FOLDERS = ("d1", "d2", "ign")
NAMES = ("a.txt", "b.txt", "c.log", "e.bin")
PATHS = tuple(NAMES) + tuple(f"{d}/{n}" for d in FOLDERS for n in NAMES)
PATTERNS = ("*.log", "ign/", "/d1/b.txt")
"""Ignore patterns the model uses; :func:`ignored` is their meaning, written out here
so the oracle does not share the client's matcher."""
THEN = st.sampled_from([None, "A", "B"])
"""After a user action: no pass, or a pass of client A or B right away."""


def ignored(path: str, patterns: Iterable[str]) -> bool:
    parts = path.split("/")
    for pattern in patterns:
        if pattern == "*.log" and parts[-1].endswith(".log"):
            return True
        if pattern == "ign/" and "ign" in parts[:-1]:
            return True
        if pattern == "/d1/b.txt" and path == "d1/b.txt":
            return True
    return False


def profile() -> settings:
    """CI: a bounded run; ``CADDYTW_SOAK=1``: a long one."""
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "suppress_health_check": list(HealthCheck),
        "print_blob": False,
    }
    if os.environ.get("CADDYTW_SOAK"):
        phases = [Phase.explicit, Phase.generate]
        if os.environ.get("CADDYTW_SOAK_SHRINK"):
            phases.append(Phase.shrink)
        return settings(
            max_examples=int(os.environ.get("CADDYTW_SOAK_EXAMPLES", "200")),
            stateful_step_count=int(os.environ.get("CADDYTW_SOAK_STEPS", "30")),
            phases=phases,
            **common,
        )
    return settings(
        max_examples=int(os.environ.get("CADDYTW_MODEL_EXAMPLES", "3")),
        stateful_step_count=int(os.environ.get("CADDYTW_MODEL_STEPS", "12")),
        phases=[Phase.explicit, Phase.generate],
        **common,
    )


class SyncModel(RuleBasedStateMachine):
    """One sequence = one server, two clients, fresh folders under ``base``."""

    base: ClassVar[Path] = Path(tempfile.gettempdir())
    sequences: ClassVar[int] = 0
    steps: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        type(self).sequences += 1
        self.dir = Path(tempfile.mkdtemp(prefix="seq-", dir=self.base))
        self.server = SafetyServer(self.dir)
        self.roots = {"A": self.dir / "A", "B": self.dir / "B"}
        for root in self.roots.values():
            root.mkdir()
        self.clients = {name: Client(self.server, root) for name, root in self.roots.items()}
        self.excludes: dict[str, list[str]] = {"A": [], "B": []}
        self.syncignore: dict[str, list[str]] = {"A": [], "B": []}
        self.outside = self.dir / "outside"
        for folder in FOLDERS:
            target = self.outside / folder
            target.mkdir(parents=True)
            (target / "precious.txt").write_bytes(f"outside {folder}\n".encode())
        self.outside_before = snapshot(self.outside)
        self.away = self.dir / "disk-away"
        self.shadows = self.dir / "mount-point-leftovers"
        self.mounted = True
        self.counter = 0
        self.survive: dict[str, str] = {}
        self.vacated: set[tuple[str, str]] = set()
        """(path, content hash) pairs a user deleted or moved away, on any side."""
        self.journal: list[str] = []
        self.broken = False
        self.server.start()

    # -- helpers ---------------------------------------------------------------------------

    def note(self, text: str) -> None:
        type(self).steps += 1
        self.journal.append(text)

    def side_root(self, side: str) -> Path | None:
        if side == "S":
            return self.server.root if self.mounted else None
        return self.roots[side]

    def disk(self) -> Path:
        return self.server.root if self.mounted else self.away

    def blocked(self, root: Path, rel: str) -> bool:
        """Whether writing ``rel`` would go through a link or a file on the way."""
        current = root
        for part in rel.split("/")[:-1]:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                return True
        target = root / rel
        return target.is_symlink() or target.is_dir()

    def files(self, side: str) -> list[str]:
        root = self.side_root(side)
        if root is None:
            return []
        return sorted(p for p in contents(root) if p != ".syncignore" and not self.blocked(root, p))

    def forget(self, root: Path, rel: str) -> None:
        """The user deliberately removes what ``rel`` holds: it need not survive."""
        path = root / rel
        if path.is_file() and not path.is_symlink():
            self.survive.pop(sha(path.read_bytes()), None)

    def vacate(self, root: Path, rel: str) -> None:
        """The user deletes or moves away the file ``rel`` (or every file under it)."""
        path = root / rel
        if path.is_file():
            self.vacated.add((rel, sha(path.read_bytes())))
        elif path.is_dir():
            for inner, digest in contents(path).items():
                self.vacated.add((f"{rel}/{inner}", digest))

    def fresh(self, side: str, size: int) -> bytes:
        self.counter += 1
        line = f"{side} write {self.counter} in {self.dir.name}\n".encode()
        data = (line * (size // len(line) + 1))[: max(size, len(line))]
        self.survive[sha(data)] = f"{side} write {self.counter}"
        return data

    def client_command(self, name: str) -> list[str]:
        client = self.clients[name]
        client.args = [arg for pattern in self.excludes[name] for arg in ("--exclude", pattern)]
        return client.command("--once")

    def pass_view(self, name: str) -> dict[str, dict[str, str]]:
        """What a pass of client ``name`` may and may not change: its folder and the
        folder the server serves (the bare mount point while the disk is away)."""
        return {
            "local": contents(self.roots[name]),
            "server": contents(self.server.root) if self.server.root.is_dir() else {},
        }

    def check_pass(self, name: str, before: dict[str, dict[str, str]], what: str) -> None:
        """Absence is never a delete; ignored means untouched (safety rules 1 and 2).

        A file a pass takes away from a path must be one a user removed or moved away
        from that path (on any side), content no user needs any more, or content the
        client's folder or the served folder still holds elsewhere. Ignored paths do
        not change at all."""
        after = self.pass_view(name)
        held = set(after["local"].values()) | set(after["server"].values())
        rules = self.excludes[name] + self.syncignore[name]
        for side in ("local", "server"):
            taken = [
                f"{path} ({self.survive[digest]})"
                for path, digest in before[side].items()
                if after[side].get(path) != digest
                and digest in self.survive
                and digest not in held
                and (path, digest) not in self.vacated
            ]
            assert not taken, self.report(f"{what} took from {side} what no user removed: {taken}")
            was = {p: h for p, h in before[side].items() if ignored(p, rules)}
            now = {p: h for p, h in after[side].items() if ignored(p, rules)}
            assert was == now, self.report(f"{what} changed ignored {side} paths: {was} -> {now}")

    def run_pass(self, name: str, timeout: float = 120) -> int:
        before = self.pass_view(name)
        process = subprocess.run(
            self.client_command(name),
            env=server_env(private_home(self.dir / "client-home")),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        self.note(f"pass {name} -> {process.returncode} {process.stderr.strip()[-300:]}")
        self.check_pass(name, before, f"pass of {name}")
        return process.returncode

    def spawn_pass(self, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.client_command(name),
            env=server_env(private_home(self.dir / "client-home")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )

    def then(self, name: str | None) -> None:
        if name is not None:
            self.run_pass(name)

    def ensure_server(self) -> None:
        if self.server.process is None or self.server.process.process.poll() is not None:
            self.server.process = None
            self.server.start()

    # -- user actions ----------------------------------------------------------------------

    @initialize()
    def populate(self) -> None:
        """Start from a synced folder with something in every kind of path (ignored or
        not), so the first mistake already has bytes to lose."""
        for side, rel in [("A", "a.txt"), ("A", "c.log"), ("A", "d1/b.txt"), ("S", "ign/a.txt")]:
            self.put(side, rel, 40)
        self.run_pass("A")
        self.run_pass("B")

    @rule(
        side=st.sampled_from(SIDES),
        rel=st.sampled_from(PATHS),
        size=st.sampled_from([9, 600]),
        then=THEN,
    )
    def user_writes(self, side: str, rel: str, size: int, then: str | None) -> None:
        self.put(side, rel, size)
        self.then(then)

    def put(self, side: str, rel: str, size: int) -> None:
        root = self.side_root(side)
        if root is None or self.blocked(root, rel):
            return
        self.forget(root, rel)
        data = self.fresh(side, size)
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.dir / "scratch"
        scratch.write_bytes(data)
        stamp = time.time() - 10
        os.utime(scratch, (stamp, stamp))
        os.replace(scratch, target)
        self.note(f"{side} writes {rel} ({len(data)} bytes)")

    @rule(side=st.sampled_from(SIDES), data=st.data())
    def user_deletes(self, side: str, data: st.DataObject) -> None:
        files = self.files(side)
        root = self.side_root(side)
        if not files or root is None:
            return
        rel = data.draw(st.sampled_from(files))
        self.vacate(root, rel)
        self.forget(root, rel)
        (root / rel).unlink()
        self.note(f"{side} deletes {rel}")

    @rule(side=st.sampled_from(SIDES), data=st.data())
    def user_renames(self, side: str, data: st.DataObject) -> None:
        files = self.files(side)
        root = self.side_root(side)
        if not files or root is None:
            return
        source = data.draw(st.sampled_from(files))
        target = data.draw(st.sampled_from(PATHS))
        if (root / target).exists() or (root / target).is_symlink() or self.blocked(root, target):
            return
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        self.vacate(root, source)
        os.rename(root / source, root / target)
        self.note(f"{side} renames {source} -> {target}")

    @rule(
        name=st.sampled_from(CLIENTS),
        patterns=st.lists(st.sampled_from(PATTERNS), max_size=2, unique=True),
        then=THEN,
    )
    def change_excludes(self, name: str, patterns: list[str], then: str | None) -> None:
        self.excludes[name] = patterns
        self.note(f"{name} --exclude {patterns}")
        self.then(then)

    @rule(
        name=st.sampled_from(CLIENTS),
        patterns=st.lists(st.sampled_from(PATTERNS), max_size=2, unique=True),
        then=THEN,
    )
    def change_syncignore(self, name: str, patterns: list[str], then: str | None) -> None:
        path = self.roots[name] / ".syncignore"
        if patterns:
            path.write_text("".join(f"{p}\n" for p in patterns))
        elif path.exists():
            path.unlink()
        self.syncignore[name] = patterns
        self.note(f"{name} .syncignore {patterns}")
        self.then(then)

    @rule(name=st.sampled_from(CLIENTS), folder=st.sampled_from(FOLDERS), then=THEN)
    def folder_becomes_link(self, name: str, folder: str, then: str | None) -> None:
        root = self.roots[name]
        path = root / folder
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return
        if path.is_dir():
            self.counter += 1
            self.vacate(root, folder)
            os.rename(path, root / f"{folder}-moved{self.counter}")
        path.symlink_to(self.outside / folder, target_is_directory=True)
        self.note(f"{name}: {folder} -> link outside")
        self.then(then)

    @rule(name=st.sampled_from(CLIENTS), folder=st.sampled_from(FOLDERS))
    def link_removed(self, name: str, folder: str) -> None:
        path = self.roots[name] / folder
        if path.is_symlink():
            path.unlink()
            self.note(f"{name}: link {folder} removed")

    # -- machines --------------------------------------------------------------------------

    @rule(first=st.sampled_from(CLIENTS), both=st.booleans())
    def client_pass(self, first: str, both: bool) -> None:
        self.run_pass(first)
        if both:
            self.run_pass("B" if first == "A" else "A")

    @rule(name=st.sampled_from(CLIENTS), delay=st.floats(0.0, 2.0))
    def client_killed_mid_pass(self, name: str, delay: float) -> None:
        before = self.pass_view(name)
        process = self.spawn_pass(name)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self.note(f"pass {name} SIGKILLed after {delay:.2f}s")
        self.check_pass(name, before, f"killed pass of {name}")

    @rule(name=st.sampled_from(CLIENTS), delay=st.floats(0.0, 2.0))
    def server_killed_mid_pass(self, name: str, delay: float) -> None:
        self.ensure_server()
        before = self.pass_view(name)
        process = self.spawn_pass(name)
        time.sleep(delay)
        self.server.kill()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self.server.start()
        self.note(f"server SIGKILLed {delay:.2f}s into a pass of {name}, restarted")
        self.check_pass(name, before, f"pass of {name} cut by a server crash")

    @precondition(lambda self: self.mounted)
    @rule(mount_point=st.booleans(), then=THEN)
    def disk_unmounted(self, mount_point: bool, then: str | None) -> None:
        self.server.stop()
        shutil.move(self.server.root, self.away)
        if mount_point:
            self.server.root.mkdir()
        self.mounted = False
        self.server.start()
        self.note(f"disk unmounted (empty mount point: {mount_point}), server restarted")
        self.then(then)

    @precondition(lambda self: not self.mounted)
    @rule()
    def disk_mounted(self) -> None:
        self.server.stop()
        if self.server.root.exists():
            # Whatever was written onto the bare mount point is hidden by the disk.
            self.shadows.mkdir(exist_ok=True)
            shutil.move(self.server.root, self.shadows / f"shadow{self.counter}")
            self.counter += 1
        shutil.move(self.away, self.server.root)
        self.mounted = True
        self.server.start()
        self.note("disk mounted again, server restarted")

    # -- invariants ------------------------------------------------------------------------

    def everything(self) -> set[str]:
        found: set[str] = set()
        for root in (self.roots["A"], self.roots["B"], self.disk()):
            if root.is_dir():
                found.update(contents(root).values())
        return found

    @invariant()
    def no_user_content_is_lost(self) -> None:
        missing = {h: what for h, what in self.survive.items() if h not in self.everything()}
        assert not missing, self.report(f"lost: {sorted(missing.values())}")

    @invariant()
    def nothing_outside_is_touched(self) -> None:
        assert snapshot(self.outside) == self.outside_before, self.report("outside changed")
        expected = {"A", "B", "outside", "server-data", "server-home", "server-tmp", "scratch"}
        expected |= {"disk-away", "mount-point-leftovers", "client-home"}
        extra = {
            p.name
            for p in self.dir.iterdir()
            if p.name not in expected and not p.name.startswith("server-") and p.suffix != ".json"
        }
        assert not extra, self.report(f"written beside the sync folders: {extra}")

    # -- end of a sequence -----------------------------------------------------------------

    def view(self, root: Path, name: str | None) -> dict[str, str]:
        """A tree for the convergence check (see the module docstring)."""
        skip = set(self.excludes[name] + self.syncignore[name]) if name else set()
        links = (
            [f for f in FOLDERS if (self.roots[name] / f).is_symlink()] if name is not None else []
        )
        return {
            path: digest
            for path, digest in contents(root).items()
            if not path.startswith(".")
            and not ignored(path, skip)
            and not any(path == f or path.startswith(f + "/") for f in links)
        }

    def differences(self) -> list[str]:
        problems = []
        for name in CLIENTS:
            mine = self.view(self.roots[name], name)
            server = self.view(self.server.root, name)
            if mine != server:
                only_here = sorted(set(mine.items()) - set(server.items()))
                only_there = sorted(set(server.items()) - set(mine.items()))
                problems.append(f"{name} vs server: only {name}: {only_here}; only S: {only_there}")
        return problems

    def teardown(self) -> None:
        try:
            if self.broken:
                return
            if not self.mounted:
                self.disk_mounted()
            self.ensure_server()
            problems: list[str] = []
            for _round in range(5):
                for name in (*CLIENTS, *CLIENTS):
                    self.run_pass(name)
                problems = self.differences()
                if not problems:
                    break
                time.sleep(2.5)  # let the server's rescan see direct edits
            self.no_user_content_is_lost()
            self.nothing_outside_is_touched()
            assert not problems, self.report("no convergence: " + " | ".join(problems))
        finally:
            self.server.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    def report(self, headline: str) -> str:
        """The failure message (built only when an assertion fails): also marks the
        sequence broken so teardown does not run the slow quiescence passes."""
        self.broken = True
        steps = "\n  ".join(self.journal[-40:])
        log = self.server.log()[-3000:] if self.server.workdir.exists() else ""
        return f"{headline}\nsteps:\n  {steps}\nserver log tail:\n{log}"


__all__ = ["SyncModel", "ignored", "profile"]
