"""The CGI environment a FastCGI request carries, built as Caddy 2.6's fastcgi
transport builds it (``buildEnv`` plus what its client's Get/Post/Head add), so a PHP
app sees the same ``$_SERVER`` behind caddytw as behind Caddy."""

from __future__ import annotations

import os
from collections.abc import Sequence

from caddytw.config.netaddr import host_and_port
from caddytw.handlers.file_server.paths import sanitized_join
from caddytw.handlers.reverse_proxy.config import FastCGIConfig
from caddytw.http.placeholders import Template, resolve
from caddytw.http.request import CaddyRequest

SERVER_SOFTWARE = "Caddy/v2.6.2"


def split_pos(path: str, split_path: Sequence[str]) -> int:
    """Where the script part of ``path`` ends (Caddy's ``splitPos``): after the first
    ``split_path`` entry found, case-insensitively; 0 with no entries (all of the path
    is PATH_INFO), -1 when none is found."""
    if not split_path:
        return 0
    lower = path.lower()
    for split in split_path:
        index = lower.find(split.lower())
        if index > -1:
            return index + len(split)
    return -1


def document_root(config: FastCGIConfig, request: CaddyRequest) -> str:
    """The configured root with placeholders filled (unknown ones are ``.``, as
    Caddy's ``ReplaceAll(root, ".")``), absolute, symlinks resolved if asked."""
    root = Template(config.root).render(request) or "."
    root = os.path.abspath(root)
    if config.resolve_root_symlink:
        root = os.path.realpath(root)
    return root


def build_env(
    config: FastCGIConfig, request: CaddyRequest, header_fields: Sequence[tuple[bytes, bytes]]
) -> dict[str, str]:
    """The CGI variables for ``request``; ``header_fields`` are the request headers
    as the proxy forwards them (hop-by-hop fields gone, X-Forwarded-* added)."""
    root = document_root(config, request)
    path = request.decoded_path
    script_name = path
    doc_uri = path
    path_info = ""
    position = split_pos(path, config.split_path)
    if position > -1:
        doc_uri = path[:position]
        path_info = path[position:]
        if path_info and script_name.endswith(path_info):
            script_name = script_name[: -len(path_info)]
    if not path_info:
        path_info = request.placeholder_values.get("http.matchers.file.remainder", "")
    script_filename = sanitized_join(root, script_name)
    if script_name and not script_name.startswith("/"):
        script_name = "/" + script_name
    host, port = host_and_port(request.request_hostport)
    scheme = request.scheme
    env = {
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": request.header_text("content-length") or "",
        "CONTENT_TYPE": request.header_text("content-type") or "",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "PATH_INFO": path_info,
        "QUERY_STRING": request.query_string,
        "REMOTE_ADDR": request.remote_host,
        "REMOTE_HOST": request.remote_host,
        "REMOTE_PORT": str(request.remote_port),
        "REMOTE_IDENT": "",
        "REMOTE_USER": resolve(request, "http.auth.user.id") or "",
        "REQUEST_METHOD": request.method.decode("latin-1"),
        "REQUEST_SCHEME": scheme,
        "SERVER_NAME": host,
        "SERVER_PROTOCOL": request.proto,
        "SERVER_SOFTWARE": SERVER_SOFTWARE,
        "DOCUMENT_ROOT": root,
        "DOCUMENT_URI": doc_uri,
        "HTTP_HOST": request.request_hostport,
        "REQUEST_URI": (request.original_uri or request.uri).decode("latin-1"),
        "SCRIPT_FILENAME": script_filename,
        "SCRIPT_NAME": script_name,
    }
    if path_info:
        env["PATH_TRANSLATED"] = sanitized_join(root, path_info)
    env["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
    if request.isSecure():
        env["HTTPS"] = "on"
        version = resolve(request, "http.request.tls.version")
        if version:
            env["SSL_PROTOCOL"] = {"tls1.2": "TLSv1.2", "tls1.3": "TLSv1.3"}.get(version, version)
        cipher = resolve(request, "http.request.tls.cipher_suite")
        if cipher:
            env["SSL_CIPHER"] = cipher
    for name, value in config.env:
        env[name] = Template(value).render(request)
    joined: dict[str, list[str]] = {}
    for field_name, raw in header_fields:
        key = "HTTP_" + field_name.decode("latin-1").upper().replace("-", "_").replace(" ", "_")
        joined.setdefault(key, []).append(raw.decode("latin-1"))
    # Caddy's proxy sets an empty User-Agent when the client sent none (so Go's HTTP
    # client adds none); the FastCGI transport passes that on as an empty variable.
    joined.setdefault("HTTP_USER_AGENT", [""])
    for key, values in joined.items():
        env[key] = ", ".join(values)
    return env


def finish_env(env: dict[str, str], method: bytes, content_type: str, length: int) -> None:
    """What Caddy's FastCGI client sets per method: GET keeps its method with the body
    length; HEAD and OPTIONS say 0; anything else gets a content type (form-encoded
    by default)."""
    if method == b"HEAD" or method == b"OPTIONS":
        env["CONTENT_LENGTH"] = "0"
        return
    env["CONTENT_LENGTH"] = str(length)
    if method != b"GET":
        env["CONTENT_TYPE"] = content_type or "application/x-www-form-urlencoded"
