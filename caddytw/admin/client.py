"""The command-line side of the admin API: ``caddytw reload`` and ``caddytw stop``."""

from __future__ import annotations

import http.client
import json
from typing import Any

from caddytw.admin.origins import parse_admin_listen

DEFAULT_ADDRESS = "localhost:2019"
TIMEOUT = 60.0


class AdminClientError(Exception):
    """The admin endpoint could not be reached or refused the request."""


def admin_address(config: dict[str, Any] | None, override: str | None) -> str:
    """``--address`` if given, else the config's ``admin.listen``, else Caddy's default."""
    if override:
        return override
    admin = (config or {}).get("admin") or {}
    listen = admin.get("listen") if isinstance(admin, dict) else None
    return listen if isinstance(listen, str) and listen else DEFAULT_ADDRESS


def request(
    address: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One admin API request; raises AdminClientError for non-2xx answers."""
    try:
        parsed = parse_admin_listen(address)
    except ValueError as error:
        raise AdminClientError(str(error)) from None
    if parsed.network == "unix":
        raise AdminClientError("unix socket admin addresses are not supported by this client")
    host = parsed.host if parsed.host not in ("", "0.0.0.0", "::") else "localhost"
    hostport = f"{host}:{parsed.port}" if ":" not in host else f"[{host}]:{parsed.port}"
    all_headers = {"Origin": f"http://{hostport}", **(headers or {})}
    connection = http.client.HTTPConnection(host, parsed.port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
    except OSError as error:
        raise AdminClientError(f"cannot reach the admin API at {address}: {error}") from None
    finally:
        connection.close()
    if not 200 <= response.status < 300:
        raise AdminClientError(f"{response.status} {_error_text(data)}")
    return response.status, data


def _error_text(data: bytes) -> str:
    try:
        message = json.loads(data).get("error")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else data.decode("utf-8", "replace").strip()


def reload(config: dict[str, Any], address: str, force: bool = False) -> None:
    headers = {"Content-Type": "application/json"}
    if force:
        headers["Cache-Control"] = "must-revalidate"
    request(address, "POST", "/load", json.dumps(config).encode(), headers)


def stop(address: str) -> None:
    request(address, "POST", "/stop")
