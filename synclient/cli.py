"""``synclient``: mirror a local folder with a caddytw ``file_sync`` server.

The flags of the project's original design brief (``--server``, ``--local-path``,
``--initial-sync``) plus the ones the sync needs in practice. Problems the user can fix
(server unreachable, token refused, folder missing or read-only) end with one clear line
and a documented exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from synclient.planner import Strategy

EXIT_OK = 0
EXIT_NOT_IN_SYNC = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_FOLDER = 5
EXIT_MASS_DELETE = 6
EXIT_SERVER_FOLDER = 7
EXIT_BAD_ANSWER = 8

EPILOG = """\
exit status:
  0  success (--once: both sides match)
  1  --once finished but some paths still differ (see the messages)
  2  bad command line
  3  the server cannot be reached
  4  the server refused the token (401/403)
  5  the local folder is missing, not a folder, or not writable, or it
     disappeared while running (e.g. unmounted)
  6  a mass deletion was refused (use --allow-mass-delete if intended)
  7  the server cannot serve its folder (its root or folder marker is missing,
     e.g. a disk not mounted); nothing was changed
  8  the server answered something invalid (not the file_sync protocol);
     the pass stopped there

With several --server, the folder is kept in step with every one of them:
a change made through any server, or locally, reaches all of them. With
several servers or folders, a server that cannot be reached is retried
while the others carry on; --once then reports it and exits with its
status after syncing the rest.

--config FILE (TOML) syncs several folders, each with its own servers,
tokens, excludes, interval and conflict strategy; see the README.

The token may also come from the SYNCLIENT_TOKEN environment variable.
Patterns in <local-path>/.syncignore use gitignore syntax, like --exclude.
"""

STOPS = frozenset({EXIT_UNREACHABLE, EXIT_AUTH, EXIT_FOLDER, EXIT_SERVER_FOLDER, EXIT_BAD_ANSWER})
"""Statuses of errors that end a pass (the others say what a finished pass left)."""

FOLDER_FLAGS = ("token", "interval", "conflict", "exclude")
"""Flags that describe one folder; with --config they belong in the file."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synclient",
        description="Keep a local folder and a caddytw file_sync server in sync, both ways.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--server",
        action="append",
        metavar="URL",
        help="server URL, e.g. http://127.0.0.1:8080 (repeat to sync with several servers)",
    )
    p.add_argument("--local-path", type=Path, help="local folder to mirror")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file naming several folders and their servers (instead of --server "
        "and --local-path)",
    )
    p.add_argument(
        "--initial-sync",
        action="store_true",
        help="reconcile the whole tree (downloading the remote tree) with a progress bar "
        "before watching; creates --local-path if missing",
    )
    p.add_argument("--token", help="bearer token (sent to every --server)")
    p.add_argument(
        "--interval",
        type=float,
        help="seconds between full safety-net passes (default 30)",
    )
    p.add_argument(
        "--conflict",
        choices=[s.value for s in Strategy],
        help="who keeps the path when both sides changed a file: keep-client (default; the "
        "server's version becomes a conflict copy), keep-server, or rename (newer wins)",
    )
    p.add_argument("--once", action="store_true", help="one full sync, then exit")
    p.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="gitignore-style pattern to leave out (repeatable)",
    )
    p.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="allow deleting more than half of the synced files in one pass",
    )
    p.add_argument(
        "--compression",
        choices=["auto", "off"],
        default="auto",
        help="zstd on the wire when the server takes it and the data compresses "
        "(auto, the default), or never (off)",
    )
    p.add_argument(
        "--batch",
        choices=["auto", "off"],
        default="auto",
        help="send and fetch small files many per request when the server has batches "
        "(auto, the default), or one request each (off)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="how long a file must be left alone before it is uploaded when no "
        "close-after-write event says it is finished (default 0.4)",
    )
    p.add_argument(
        "--no-delta",
        dest="delta",
        action="store_false",
        help="always transfer whole files (no chunk-level delta transfers)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="log every transfer")
    return p


def settings_from(args: argparse.Namespace) -> list[Any]:
    """The folders to sync (``service.Settings``), from the flags or ``--config``;
    raises ``config.ConfigError`` for a command line or file that cannot be used."""
    from synclient.config import ConfigError, load, servers, url
    from synclient.service import Server, Settings

    if args.config is not None:
        if args.server or args.local_path:
            raise ConfigError("--config replaces --server and --local-path; give one or the other")
        given = [f"--{name}" for name in FOLDER_FLAGS if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: set per folder in the config file instead")
        folders = load(args.config)
    else:
        if not args.server or args.local_path is None:
            raise ConfigError("--server and --local-path are required (or --config FILE)")
        token = args.token or os.environ.get("SYNCLIENT_TOKEN") or None
        found = [Server(url(u, "--server"), token) for u in args.server]
        folders = [
            Settings(
                local_path=args.local_path.resolve(),
                servers=servers(found, "--server"),
                interval=max(float(args.interval or 30.0), 1.0),
                strategy=Strategy(args.conflict or Strategy.KEEP_CLIENT.value),
                excludes=list(args.exclude or []),
            )
        ]
    for folder in folders:
        folder.allow_mass_delete |= args.allow_mass_delete
        folder.initial_sync = args.initial_sync
        folder.compression = args.compression != "off"
        folder.batches = args.batch != "off"
        folder.settle = max(float(args.settle), 0.0)
        folder.delta = args.delta
    return folders


def check_folder(path: Path, create: bool) -> str | None:
    """A message saying what is wrong with the local folder, or ``None``.

    ``create`` (``--initial-sync``) may create a missing folder (not its parents) and
    re-create a missing folder marker (see :mod:`synclient.folder`)."""
    from synclient.folder import ensure_marker
    from synclient.state import STATE_DIR

    if not path.exists():
        if create and path.parent.is_dir():
            try:
                path.mkdir()
            except OSError as error:
                return f"cannot create {path}: {error.strerror}"
        else:
            return f"the local folder {path} does not exist" + (
                "" if create else " (create it, or pass --initial-sync)"
            )
    if not path.is_dir():
        return f"{path} is not a folder"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"the local folder {path} is not writable"
    return ensure_marker(path, (path / STATE_DIR / "state.db").exists(), create)


def start_logging(verbose: bool) -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        formatEvent,
        globalLogBeginner,
    )

    def emit(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        label = getattr(event.get("log_source"), "label", "")
        if label:
            text = f"{label}: {text}"
        failure = event.get("log_failure")
        if failure is not None and verbose:
            text += "\n" + failure.getTraceback()
        sys.stderr.write(f"synclient: {text}\n")
        sys.stderr.flush()

    level = LogLevel.info if verbose else LogLevel.warn
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    predicate.setLogLevelForNamespace("autobahn", LogLevel.error if not verbose else level)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(emit, [predicate])],  # type: ignore[arg-type]
        redirectStandardIO=False,
    )


def exit_code_for(error: Exception) -> tuple[int, str] | None:
    """The exit status and the closing words for an error that ends a pass, or
    ``None`` for an error that is a bug (it then shows its traceback)."""
    from synclient.apply import FolderGone
    from synclient.remote import AuthFailed, FolderUnavailable, RemoteError, Unreachable

    if isinstance(error, FolderUnavailable):
        return EXIT_SERVER_FOLDER, "stopped without changing anything more"
    if isinstance(error, Unreachable):
        return EXIT_UNREACHABLE, ""
    if isinstance(error, AuthFailed):
        return EXIT_AUTH, ""
    if isinstance(error, RemoteError):
        return EXIT_BAD_ANSWER, "stopped without changing anything more"
    if isinstance(error, FolderGone):
        return EXIT_FOLDER, "stopped without touching the server's copy"
    return None


def _words(error: Exception) -> tuple[int, str]:
    code, words = exit_code_for(error) or (EXIT_NOT_IN_SYNC, "")
    return code, f"{error}; {words}" if words else str(error)


async def sync_once(parts: list[Any], verify: bool) -> list[tuple[int, str]]:
    """Full passes over one folder's servers until all of them have planned against the
    same local tree; then (``verify``) check nothing differs. Returns the problems, in
    server order: an exit status and a line saying what is left.

    A pass that changed local files (downloads, conflict copies) must be followed by a
    pass of every other server, which uploads those changes; a pass that changed
    nothing locally leaves the others' view valid. One server that cannot be reached or
    fails is reported and left out; the others carry on. A folder that disappeared
    stops them all."""
    from synclient.apply import FolderGone
    from synclient.remote import RemoteError

    failures: dict[int, Exception] = {}
    reports: dict[int, Any] = {}
    left: dict[int, set[str]] = {}
    seen: set[int] = set()
    active = list(range(len(parts)))
    for _round in range(2 * len(parts) + 1):
        if set(active) <= seen:
            break
        for index in list(active):
            if index in seen:
                continue
            try:
                report = await parts[index].engine.cycle(full=True)
            except RemoteError as error:
                # It may have changed local files before it stopped: the others look again.
                failures[index] = error
                active.remove(index)
                seen = set()
                continue
            except FolderGone as error:
                return [_words(error)]
            reports[index] = report
            seen = {index} if report.local_changes else seen | {index}
    for index in active:
        if verify and reports[index].clean:
            try:
                left[index] = await parts[index].engine.verify()
            except RemoteError as error:
                failures[index] = error
            except FolderGone as error:
                return [_words(error)]
    problems: list[tuple[int, str]] = []
    for index, part in enumerate(parts):
        name = f"{part.engine.label}: " if part.engine.label else ""
        code, said = _judge(reports.get(index), failures.get(index), left.get(index, set()))
        if code and not said:
            problems.append((code, ""))  # already logged (a refused mass deletion)
        problems += [(code, name + line) for line in said]
    return problems


def _judge(report: Any, error: Exception | None, left: set[str]) -> tuple[int, list[str]]:
    """One server's exit status and the lines explaining it."""
    if error is not None:
        code, words = _words(error)
        return code, [words]
    if report.refused_deletes:
        return EXIT_MASS_DELETE, []
    if report.clean and not left:
        return EXIT_OK, []
    lines = list(report.failed)
    lines += [f"cannot sync {p}: {why}" for p, why in sorted(report.unstorable.items())[:20]]
    if report.unsettled:
        lines.append(f"{len(report.unsettled)} files were still being written")
    lines += [f"still differs: {p}" for p in sorted(left | report.left)[:20]]
    return EXIT_NOT_IN_SYNC, lines


async def run(reactor: Any, args: argparse.Namespace, folders: list[Any]) -> int:
    from twisted.internet.defer import Deferred, gatherResults

    from synclient.apply import FolderGone
    from synclient.progress import Board
    from synclient.remote import RemoteError
    from synclient.service import SyncService, build

    board = Board(sys.stderr)
    several = len(folders) > 1 or len(folders[0].servers) > 1
    built = [build(settings, reactor, board, several) for settings in folders]

    def fail(message: str) -> None:
        sys.stderr.write(f"synclient: {message}\n")

    if not several:
        # One server: a server that cannot be reached at start ends the run at once.
        try:
            await built[0][0].engine.pull(full_list=False)
        except (RemoteError, FolderGone) as error:
            code, words = _words(error)
            fail(words)
            return code
    if args.once or args.initial_sync:
        results = await gatherResults(
            [Deferred.fromCoroutine(sync_once(parts, verify=args.once)) for parts in built]
        )
        problems = [p for found in results for p in found if args.once or p[0] in STOPS]
        for _code, line in problems:
            if line:
                fail(line)
        if args.once or (problems and not several):
            for parts in built:
                for part in parts:
                    await part.remote.close()
                    part.state.close()
            return problems[0][0] if problems else EXIT_OK
    services: list[SyncService] = []
    done: Deferred[int] = Deferred()

    def folder_gone(service: SyncService) -> None:
        if all(s.gone is not None for s in services) and reactor.running:
            reactor.stop()

    for settings, parts in zip(folders, built, strict=True):
        service = SyncService(settings, parts, reactor, folder_gone if several else None)
        service.startService()
        services.append(service)
        reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.addSystemEventTrigger(
        "before",
        "shutdown",
        lambda: done.callback(EXIT_FOLDER if any(s.gone for s in services) else EXIT_OK),
    )
    return await done


def calm_collector() -> None:
    """Fewer, cheaper cyclic garbage collections: what start-up made (modules, classes)
    lives until exit, so it is frozen out of every later collection, and the youngest
    generation is collected after 20,000 new objects instead of 700. An initial sync of
    10,000 files allocates a few objects per file on the reactor thread alone; with the
    defaults the collector ran hundreds of times, re-walking the large per-path maps
    (a few percent of the client's CPU time). Cycles are still collected."""
    import gc

    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(20_000, middle, old)


def main(argv: list[str] | None = None) -> None:
    from synclient.config import ConfigError
    from synclient.state import StateDB

    args = parser().parse_args(argv)
    try:
        folders = settings_from(args)
    except ConfigError as error:
        if args.config is None:
            parser().print_usage(sys.stderr)
        sys.stderr.write(f"synclient: {error}\n")
        raise SystemExit(EXIT_USAGE) from None
    for folder in folders:
        problem = check_folder(folder.local_path, create=args.initial_sync)
        if problem:
            sys.stderr.write(f"synclient: {problem}\n")
            raise SystemExit(EXIT_FOLDER)
        try:
            StateDB(folder.local_path).close()
        except OSError as error:
            sys.stderr.write(f"synclient: cannot keep state in {folder.local_path}: {error}\n")
            raise SystemExit(EXIT_FOLDER) from None
    start_logging(args.verbose)
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    calm_collector()

    def start(reactor: Any) -> Deferred[None]:
        def finish(code: int) -> None:
            if code:
                raise SystemExit(code)

        return Deferred.fromCoroutine(run(reactor, args, folders)).addCallback(finish)

    react(start)
