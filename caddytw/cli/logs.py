"""The runtime log in Caddy's JSON shape, so log shippers written for Caddy work.

Caddy (zap's production JSON encoder) writes one object per line:
``{"level":"info","ts":1700000000.123,"logger":"http","msg":"...", ...fields}``.
Twisted log events map onto that: the level by name, the namespace as the
logger (``caddytw.`` dropped), the formatted text as ``msg``, a failure's
traceback as ``error``.
"""

from __future__ import annotations

import json
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import provider

#: Twisted's own chatter about ports and factories, which Caddy's log doesn't have
#: (our "server ... listening on ..." line says the same once).
_CHATTER = ("Starting factory", "Stopping factory", "{prefix} starting on")

_LEVELS = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warn",
    LogLevel.error: "error",
    LogLevel.critical: "fatal",
}


def caddy_entry(event: dict[str, Any]) -> dict[str, Any]:
    """One Twisted log event as a Caddy log record."""
    namespace = str(event.get("log_namespace") or "")
    if namespace.startswith("caddytw."):
        namespace = namespace[len("caddytw.") :]
    entry: dict[str, Any] = {
        "level": _LEVELS.get(event.get("log_level", LogLevel.info), "info"),
        "ts": event.get("log_time"),
    }
    if namespace and namespace != "log_legacy":
        entry["logger"] = namespace
    entry["msg"] = (formatEvent(event) or "").strip()
    failure = event.get("log_failure")
    if failure is not None:
        entry["error"] = failure.getTraceback()
    return entry


def _is_chatter(event: dict[str, Any]) -> bool:
    if event.get("log_level") not in (LogLevel.info, LogLevel.debug):
        return False
    text = str(event.get("log_format") or "")
    if text.startswith(_CHATTER):
        return True
    # legacy log.msg("... starting on N") / "(TCP Port N Closed)"
    legacy = " ".join(str(m) for m in event.get("message", ()) or ())
    return " starting on " in legacy or (legacy.startswith("(") and legacy.endswith("Closed)"))


def json_observer(stream: IO[str]) -> ILogObserver:
    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if _is_chatter(event):
            return
        stream.write(json.dumps(caddy_entry(event), separators=(",", ":"), default=str) + "\n")
        stream.flush()

    return observe


def begin_json_logging(stream: IO[str], level: LogLevel = LogLevel.info) -> None:
    """Send the global log to ``stream`` as Caddy JSON lines (info and above)."""
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    observer = FilteringLogObserver(json_observer(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def caddy_log_observer() -> ILogObserver:
    """For ``twistd --logger caddytw.cli.logs.caddy_log_observer``: the same Caddy
    JSON lines on stderr when running under ``twistd -n caddy``."""
    import sys

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    return FilteringLogObserver(json_observer(sys.stderr), [predicate])
