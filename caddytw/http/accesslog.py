"""Access log entries in Caddy's JSON shape (``logger: http.log.access``)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from caddytw.config.model import AccessLogConfig
from caddytw.config.netaddr import host_and_port
from caddytw.http.matchers import client_ip
from caddytw.http.request import CaddyRequest

#: One encoder for every entry (``json.dumps`` with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode
#: Distinct Host values whose logger name is remembered (bounded: hosts come from clients).
_NAME_CACHE_SIZE = 1024


#: Headers whose values Caddy logs as ``[]`` unless ``should_log_credentials`` is set.
CREDENTIAL_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"})
#: A bearer token offered as a WebSocket subprotocol (the file_sync events API).
_BEARER_PROTOCOL = re.compile(r"caddytw\.bearer\.[A-Za-z0-9_-]*")


def _headers(headers: Any, credentials: bool = True) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, values in headers.getAllRawHeaders():
        lower = name.lower()
        if not credentials and lower in CREDENTIAL_HEADERS:
            out[name.decode("latin-1")] = []
            continue
        texts = [v.decode("latin-1") for v in values]
        if not credentials and lower == b"sec-websocket-protocol":
            texts = [_BEARER_PROTOCOL.sub("caddytw.bearer.REDACTED", t) for t in texts]
        out[name.decode("latin-1")] = texts
    return out


def access_entry(
    request: CaddyRequest, logger_name: str, credentials: bool = False, now: float | None = None
) -> dict[str, Any]:
    """One "handled request" record with the fields Caddy writes; credentials (tokens,
    cookies) are left out as Caddy does unless ``credentials``. ``now``: when the
    response ended (default: now)."""
    if now is None:
        now = time.time()
    return {
        "level": "error" if request.code >= 500 else "info",
        "ts": now,
        "logger": logger_name,
        "msg": "handled request",
        "request": {
            "remote_ip": request.remote_host,
            "remote_port": str(request.remote_port),
            "client_ip": client_ip(request),
            "proto": request.proto,
            "method": request.method.decode("latin-1"),
            "host": request.request_hostport,
            "uri": request.uri.decode("latin-1"),
            "headers": _headers(request.requestHeaders, credentials),
        },
        "bytes_read": request.body.received,
        "user_id": request.caddy_vars.get("http.auth.user.id", ""),
        "duration": now - request.started_at,
        "size": request.sentLength,
        "status": request.code,
        "resp_headers": _headers(request.responseHeaders, credentials),
    }


class AccessLogger:
    """Writes access entries for one server according to its ``logs`` settings.

    With ``call_later`` set (the server's reactor), entries finished in one reactor
    turn are formatted and leave in one write at the end of it, instead of being
    formatted while the request finishes and written and flushed each: the request
    only notes itself and the time (a finished request no longer changes, so the entry
    reads as it would have then).
    """

    def __init__(
        self,
        config: AccessLogConfig,
        stream: IO[str] | None = None,
        call_later: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.stream = stream
        self.call_later = call_later
        self._names: dict[str, str | None] = {}
        self._batch: list[tuple[CaddyRequest, str, float]] = []

    def logger_name(self, host: str) -> str | None:
        if host in self.config.skip_hosts:
            return None
        name = self.config.logger_names.get(host)
        if name is None:
            if self.config.skip_unmapped_hosts:
                return None
            name = self.config.default_logger_name
        return "http.log.access" + (f".{name}" if name else "")

    def _cached_name(self, hostport: str) -> str | None:
        try:
            return self._names[hostport]
        except KeyError:
            pass
        name = self.logger_name(host_and_port(hostport)[0])
        if len(self._names) < _NAME_CACHE_SIZE:
            self._names[hostport] = name
        return name

    def log(self, request: CaddyRequest) -> None:
        name = self._cached_name(request.request_hostport)
        if name is None:
            return
        if self.call_later is None:
            self._write(self._line(request, name, time.time()))
            return
        if not self._batch:
            self.call_later(0, self.flush)
        self._batch.append((request, name, time.time()))

    def _line(self, request: CaddyRequest, name: str, ended: float) -> str:
        entry = access_entry(request, name, self.config.should_log_credentials, ended)
        return _encode(entry) + "\n"

    def flush(self) -> None:
        """Format and write the entries batched so far."""
        if self._batch:
            batch, self._batch = self._batch, []
            self._write("".join(self._line(*noted) for noted in batch))

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()
