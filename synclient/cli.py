"""``synclient``: mirror a local folder with a caddytw ``file_sync`` server.

The seed's flags (``--server``, ``--local-path``, ``--initial-sync``) plus the ones the
sync needs in practice. Problems the user can fix (server unreachable, token refused,
folder missing or read-only) end with one clear line and a documented exit status,
never a traceback.
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

The token may also come from the SYNCLIENT_TOKEN environment variable.
Patterns in <local-path>/.syncignore use gitignore syntax, like --exclude.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="synclient",
        description="Keep a local folder and a caddytw file_sync server in sync, both ways.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--server", required=True, help="server URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--local-path", required=True, type=Path, help="local folder to mirror")
    p.add_argument(
        "--initial-sync",
        action="store_true",
        help="reconcile the whole tree (downloading the remote tree) with a progress bar "
        "before watching; creates --local-path if missing",
    )
    p.add_argument("--token", default=os.environ.get("SYNCLIENT_TOKEN"), help="bearer token")
    p.add_argument(
        "--interval",
        type=float,
        default=30.0,
        help="seconds between full safety-net passes (default 30)",
    )
    p.add_argument(
        "--conflict",
        choices=[s.value for s in Strategy],
        default=Strategy.KEEP_CLIENT.value,
        help="who keeps the path when both sides changed a file: keep-client (default; the "
        "server's version becomes a conflict copy), keep-server, or rename (newer wins)",
    )
    p.add_argument("--once", action="store_true", help="one full sync, then exit")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
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
    p.add_argument("--verbose", "-v", action="store_true", help="log every transfer")
    return p


def settings_from(args: argparse.Namespace) -> Any:
    from synclient.service import Settings

    interval = max(float(args.interval), 1.0)
    return Settings(
        server=args.server,
        local_path=args.local_path.resolve(),
        token=args.token or None,
        interval=interval,
        strategy=Strategy(args.conflict),
        excludes=list(args.exclude),
        allow_mass_delete=args.allow_mass_delete,
        initial_sync=args.initial_sync,
        compression=args.compression != "off",
        batches=args.batch != "off",
        settle=max(float(args.settle), 0.0),
    )


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


async def run(reactor: Any, args: argparse.Namespace) -> int:
    from synclient.apply import FolderGone
    from synclient.remote import RemoteError
    from synclient.service import SyncService, build

    settings = settings_from(args)
    parts = build(settings, reactor)
    engine = parts.engine

    def fail(message: str) -> None:
        sys.stderr.write(f"synclient: {message}\n")

    def stopped(error: Exception) -> int:
        code, words = exit_code_for(error) or (EXIT_NOT_IN_SYNC, "")
        fail(f"{error}; {words}" if words else str(error))
        return code

    try:
        await engine.pull(full_list=False)
        if args.once or args.initial_sync:
            report = await engine.cycle(full=True)
            left = await engine.verify() if args.once and report.clean else set()
    except (RemoteError, FolderGone) as error:
        return stopped(error)
    if args.once:
        await parts.remote.close()
        parts.state.close()
        if report.refused_deletes:
            return EXIT_MASS_DELETE
        if not report.clean or left:
            for line in report.failed:
                fail(line)
            for path, why in sorted(report.unstorable.items())[:20]:
                fail(f"cannot sync {path}: {why}")
            if report.unsettled:
                fail(f"{len(report.unsettled)} files were still being written")
            for path in sorted(left | report.left)[:20]:
                fail(f"still differs: {path}")
            return EXIT_NOT_IN_SYNC
        return EXIT_OK
    service = SyncService(settings, parts, reactor)
    service.startService()
    from twisted.internet.defer import Deferred

    done: Deferred[int] = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: done.callback(EXIT_FOLDER if engine.gone else EXIT_OK)
    )
    return await done


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    problem = check_folder(args.local_path.resolve(), create=args.initial_sync)
    if problem:
        sys.stderr.write(f"synclient: {problem}\n")
        raise SystemExit(EXIT_FOLDER)
    try:
        from synclient.state import StateDB

        StateDB(args.local_path.resolve()).close()
    except OSError as error:
        sys.stderr.write(f"synclient: cannot keep state in {args.local_path}: {error}\n")
        raise SystemExit(EXIT_FOLDER) from None
    start_logging(args.verbose)
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    def start(reactor: Any) -> Deferred[None]:
        def finish(code: int) -> None:
            if code:
                raise SystemExit(code)

        return Deferred.fromCoroutine(run(reactor, args)).addCallback(finish)

    react(start)
