"""Access log entries in Caddy's JSON shape (``logger: http.log.access``)."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from caddytw.config.model import AccessLogConfig
from caddytw.http.matchers import client_ip


def _headers(headers: Any) -> dict[str, list[str]]:
    return {
        name.decode("latin-1"): [v.decode("latin-1") for v in values]
        for name, values in headers.getAllRawHeaders()
    }


def access_entry(request: Any, logger_name: str) -> dict[str, Any]:
    """One "handled request" record with the fields Caddy writes."""
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
            "headers": _headers(request.requestHeaders),
        },
        "bytes_read": getattr(request.content, "tell", lambda: 0)() if request.content else 0,
        "user_id": request.caddy_vars.get("http.auth.user.id", ""),
        "duration": now - request.started_at,
        "size": request.sentLength,
        "status": request.code,
        "resp_headers": _headers(request.responseHeaders),
    }


class AccessLogger:
    """Writes access entries for one server according to its ``logs`` settings."""

    def __init__(self, config: AccessLogConfig, stream: IO[str] | None = None) -> None:
        self.config = config
        self.stream = stream

    def logger_name(self, host: str) -> str | None:
        if host in self.config.skip_hosts:
            return None
        name = self.config.logger_names.get(host)
        if name is None:
            if self.config.skip_unmapped_hosts:
                return None
            name = self.config.default_logger_name
        return "http.log.access" + (f".{name}" if name else "")

    def log(self, request: Any) -> None:
        name = self.logger_name(request.request_host)
        if name is None:
            return
        stream = self.stream or sys.stderr
        stream.write(json.dumps(access_entry(request, name), separators=(",", ":")) + "\n")
        stream.flush()
