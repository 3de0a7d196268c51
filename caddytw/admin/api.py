"""The admin API's request handling, independent of the HTTP server it runs on.

``AdminAPI.handle(method, path, headers, body)`` returns an :class:`AdminResponse`;
``caddytw.admin.service`` serves it with twisted.web. Semantics, messages and the
ETag format follow Caddy 2.6 (see ``configtree`` and ``gojson``). Two deliberate
differences: client mistakes on ``/config`` mutations (bad path, key exists, bad
body) answer 400 where Caddy answers 500, and a foreign ``Origin`` is refused even
when ``enforce_origin`` is off (Caddy then ignores it).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from caddytw.admin import metrics, upstreams
from caddytw.admin.configtree import ConfigPathError, access, index_ids
from caddytw.admin.gojson import encode, etag, fnv1a32
from caddytw.admin.origins import AdminAddress, check
from caddytw.config.errors import ConfigError, ConfigErrors

JSON = "application/json"
MUTATIONS = ("POST", "PUT", "PATCH", "DELETE")


class ApiError(Exception):
    """An answer other than success: status and Caddy's ``{"error": ...}`` body."""

    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


@dataclass
class AdminResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after: Callable[[], None] | None = None  # run once the response has been sent


def error_response(error: ApiError) -> AdminResponse:
    payload: dict[str, Any] = {"error": error.message}
    if error.details:
        payload["errors"] = error.details
    return AdminResponse(
        error.status,
        json.dumps(payload, separators=(",", ":")).encode() + b"\n",
        {"Content-Type": JSON},
    )


Answer = AdminResponse | Deferred[AdminResponse]


def load_error(error: BaseException, what: str) -> ApiError:
    """A rejected config as a 400 naming every JSON path at fault."""
    errors = list(error) if isinstance(error, ConfigErrors) else [error]
    return ApiError(
        400,
        f"{what}: " + "; ".join(str(e) for e in errors),
        [
            {"path": getattr(e, "path", ""), "message": getattr(e, "message", str(e))}
            for e in errors
        ],
    )


class AdminAPI:
    """Admin endpoints over a :class:`caddytw.server.reload.LiveConfig`-like object (``raw``,
    ``config``, ``load(data)``), plus ``stop`` to call after answering ``/stop``."""

    def __init__(self, live: Any, stop: Callable[[], None]) -> None:
        self.live = live
        self.stop = stop
        self.address: AdminAddress | None = None
        self._ids: dict[str, str] | None = None
        self._ids_of: Any = None

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        try:
            self._check_origin(headers)
            return self._route(method, path, headers, body)
        except ApiError as error:
            return error_response(error)

    def _check_origin(self, headers: Mapping[str, str]) -> None:
        if "websocket" in headers.get("upgrade", "").lower():
            raise ApiError(400, "websocket connections aren't allowed")
        if self.address is None or self.live.config is None:
            return
        refusal = check(
            self.live.config.admin, self.address, headers.get("host"), headers.get("origin")
        )
        if refusal is not None:
            raise ApiError(403, refusal)

    def _route(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        if path == "/config":
            return AdminResponse(301, b"", {"Location": "/config/"})
        if path.startswith("/config/"):
            return self._config(method, path, headers, body)
        if path.startswith("/id/") or path == "/id":
            return self._config(method, self._expand_id(path), headers, body)
        if path == "/load":
            self._require(method, "POST")
            return self._load(headers, body)
        if path == "/stop":
            self._require(method, "POST")
            return AdminResponse(200, b"", {}, after=self.stop)
        if path == "/reverse_proxy/upstreams":
            self._require(method, "GET")
            return AdminResponse(200, encode(upstreams.snapshot()), {"Content-Type": JSON})
        if path == "/metrics":
            self._require(method, "GET")
            text, content_type = metrics.render()
            return AdminResponse(200, text, {"Content-Type": content_type})
        # Go's ``http.NotFound``, as Caddy's admin mux answers an unknown path.
        return AdminResponse(
            404,
            b"404 page not found\n",
            {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
        )

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiError(405, "method not allowed")

    # -- /config and /id ---------------------------------------------------------------

    def _config(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        if method == "GET":
            try:
                _, value = access(self.live.raw, "GET", path)
            except ConfigPathError as error:
                raise ApiError(400, str(error)) from None
            encoded = encode(value)
            return AdminResponse(200, encoded, {"Content-Type": JSON, "ETag": etag(path, encoded)})
        if method not in MUTATIONS:
            raise ApiError(405, f"method {method} not allowed")
        value = None
        if method != "DELETE":
            value = self._json_body(headers, body, "decoding request body")
        self._check_if_match(headers.get("if-match", ""))
        try:
            new_config, _ = access(self.live.raw, method, path, value)
        except ConfigPathError as error:
            raise ApiError(400, str(error)) from None
        return self._apply(new_config, headers, "loading new config")

    def _expand_id(self, path: str) -> str:
        parts = path.split("/")
        if len(parts) < 3 or parts[2] == "":
            raise ApiError(400, "request path is missing object ID")
        expanded = self._id_index().get(parts[2])
        if expanded is None:
            raise ApiError(404, f"unknown object ID '{parts[2]}'")
        return posixpath.normpath("/".join([expanded, *parts[3:]]))

    def _id_index(self) -> dict[str, str]:
        if self._ids is None or self._ids_of is not self.live.raw:
            try:
                self._ids = index_ids(self.live.raw)
            except ConfigPathError as error:
                raise ApiError(500, f"indexing config: {error}") from None
            self._ids_of = self.live.raw
        return self._ids

    @staticmethod
    def _json_body(headers: Mapping[str, str], body: bytes, what: str) -> Any:
        content_type = headers.get("content-type", "")
        if "/json" not in content_type:
            raise ApiError(
                400, f"unacceptable content-type: {content_type}; 'application/json' required"
            )
        if not body:
            return None
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(400, f"{what}: {error}") from None

    def _check_if_match(self, header: str) -> None:
        if not header:
            return
        if len(header) < 2 or header[0] != '"' or header[-1] != '"':
            raise ApiError(400, "malformed If-Match header; expect quoted string")
        parts = header[1:-1].split()
        if len(parts) != 2:
            raise ApiError(400, 'malformed If-Match header; expect format "<path> <hash>"')
        try:
            _, current = access(self.live.raw, "GET", parts[0])
        except ConfigPathError as error:
            raise ApiError(400, str(error)) from None
        if f"{fnv1a32(encode(current)):08x}" != parts[1]:
            raise ApiError(412, "If-Match header did not match current config hash")

    def _apply(self, new_config: Any, headers: Mapping[str, str], what: str) -> Answer:
        """Load ``new_config`` unless it is unchanged (``Cache-Control: must-revalidate``
        forces a reload); a bad one answers 400 and the running config stays."""
        forced = headers.get("cache-control", "") == "must-revalidate"
        if not forced and encode(new_config) == encode(self.live.raw):
            return AdminResponse()
        try:
            index_ids(new_config)
        except ConfigPathError as error:
            raise ApiError(400, f"indexing config: {error}") from None
        try:
            loaded = self.live.load(new_config)
        except (ConfigError, ConfigErrors) as error:
            raise load_error(error, what) from None

        def failed(failure: Failure) -> AdminResponse:
            failure.trap(ConfigError, ConfigErrors)
            assert failure.value is not None
            return error_response(load_error(failure.value, what))

        return loaded.addCallbacks(lambda _: AdminResponse(), failed)

    # -- /load ---------------------------------------------------------------------

    def _load(self, headers: Mapping[str, str], body: bytes) -> Answer:
        content_type = headers.get("content-type", "")
        warnings: list[str] = []
        if "/json" in content_type:
            data = self._json_body(headers, body, "loading config: decoding request body")
        else:
            data, warnings = self._adapt(content_type, body)
        self._check_if_match(headers.get("if-match", ""))
        answer = self._apply(data, headers, "loading config")
        if not warnings:
            return answer

        def with_warnings(response: AdminResponse) -> AdminResponse:
            if response.status == 200:
                response.body = json.dumps(warnings).encode()
                response.headers["Content-Type"] = JSON
            return response

        if isinstance(answer, Deferred):
            return answer.addCallback(with_warnings)
        return with_warnings(answer)

    @staticmethod
    def _adapt(content_type: str, body: bytes) -> tuple[Any, list[str]]:
        slash = content_type.find("/")
        if slash < 0:
            raise ApiError(400, "malformed Content-Type")
        adapter = content_type[slash + 1 :].split(";")[0].strip()
        if adapter != "caddyfile":
            raise ApiError(400, f"unrecognized config adapter '{adapter}'")
        from caddytw.caddyfile import CaddyfileError, adapt

        try:
            config, warnings = adapt(body.decode("utf-8"), "Caddyfile")
        except UnicodeDecodeError:
            raise ApiError(400, "loading config: the Caddyfile is not UTF-8") from None
        except CaddyfileError as error:
            raise ApiError(400, f"adapting config using caddyfile: {error}") from None
        return config, [str(w) for w in warnings]
