"""The top of a Caddy config (``admin``, ``logging``, ``apps``) as frozen objects.

Route and handler JSON is kept as data here and compiled by :mod:`caddytw.http.routing`
at build time, because handler factories are plugins and may need the reactor.
Keys owned by other parts (``apps.tls``, ``tls_connection_policies``, ``protocols``,
``automatic_https``) are checked for shape and carried along so real Caddy configs load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caddytw.config.errors import ConfigError, ErrorCollector
from caddytw.config.ipranges import IPNetwork, parse_ranges
from caddytw.config.listen import ListenAddress, parse_listen
from caddytw.config.reader import ObjectReader, expect_str, join_path
from caddytw.config.unsupported import app_message

KNOWN_PROTOCOLS = {"h1", "h2", "h2c", "h3"}


@dataclass(frozen=True)
class AdminConfig:
    disabled: bool = False
    listen: str = "localhost:2019"
    enforce_origin: bool = False
    origins: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class AccessLogConfig:
    default_logger_name: str = ""
    logger_names: dict[str, str] = field(default_factory=dict)
    skip_hosts: tuple[str, ...] = ()
    skip_unmapped_hosts: bool = False
    should_log_credentials: bool = False


@dataclass(frozen=True)
class ServerConfig:
    name: str
    path: str
    listen: tuple[ListenAddress, ...]
    routes: list[Any]
    error_routes: list[Any] | None
    read_timeout: float | None = None
    read_header_timeout: float | None = None
    write_timeout: float | None = None
    idle_timeout: float | None = None
    max_header_bytes: int = 1 << 20
    #: caddytw extensions (Caddy has neither): the largest request body read (bytes,
    #: 0 = the default of ``caddytw.http.body``) and the listen queue length (None = the
    #: kernel's maximum, ``net.core.somaxconn``, which is what Go and so Caddy use).
    max_request_body: int = 0
    listen_backlog: int | None = None
    logs: AccessLogConfig | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    protocols: tuple[str, ...] = ("h1", "h2", "h3")
    tls_connection_policies: list[Any] | None = None
    automatic_https: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class HttpAppConfig:
    http_port: int = 80
    https_port: int = 443
    grace_period: float | None = None
    servers: tuple[ServerConfig, ...] = ()


@dataclass(frozen=True)
class Config:
    admin: AdminConfig
    http: HttpAppConfig
    logging: dict[str, Any]
    tls: dict[str, Any]
    storage: dict[str, Any]
    raw: dict[str, Any]


def parse_config(data: Any, collector: ErrorCollector | None = None) -> Config:
    """Parse the top-level config; route contents are checked later, when built."""
    own = collector or ErrorCollector()
    reader = ObjectReader(data if data is not None else {}, "", what="object (config)")
    admin = _guard(own, lambda: _parse_admin(reader.reader("admin")), AdminConfig())
    logging = reader.mapping("logging")
    storage = reader.mapping("storage")
    apps = reader.reader("apps")
    http = _guard(own, lambda: _parse_http(apps.reader("http"), own), HttpAppConfig())
    tls = apps.mapping("tls")
    for key in list(apps.data):
        if key not in ("http", "tls"):
            own.add(ConfigError(apps.at(key), app_message(key)))
            apps.ignore(key)
    _guard(own, apps.done, None)
    _guard(own, reader.done, None)
    if collector is None:
        own.raise_if_any()
    return Config(admin, http, logging, tls, storage, dict(reader.data))


def _guard(collector: ErrorCollector, parse: Any, fallback: Any) -> Any:
    try:
        return parse()
    except ConfigError as error:
        collector.add(error)
        return fallback


def _parse_admin(reader: ObjectReader) -> AdminConfig:
    disabled = reader.flag("disabled")
    listen = reader.text("listen", "localhost:2019") or "localhost:2019"
    enforce = reader.flag("enforce_origin")
    origins = tuple(reader.strings("origins"))
    reader.ignore("config", "identity", "remote")
    reader.done()
    return AdminConfig(disabled, listen, enforce, origins, dict(reader.data))


def _parse_http(reader: ObjectReader, collector: ErrorCollector) -> HttpAppConfig:
    http_port = reader.integer("http_port", 80, minimum=0)
    https_port = reader.integer("https_port", 443, minimum=0)
    grace = reader.duration("grace_period")
    reader.ignore("shutdown_delay", "metrics")
    servers_reader = reader.reader("servers")
    servers = []
    for name in servers_reader.data:
        servers_reader.ignore(name)
        try:
            servers.append(
                _parse_server(name, servers_reader.data[name], servers_reader.at(name), collector)
            )
        except ConfigError as error:
            collector.add(error)
    reader.done()
    return HttpAppConfig(http_port, https_port, grace, tuple(servers))


def _parse_server(name: str, data: Any, path: str, collector: ErrorCollector) -> ServerConfig:
    """One server; field errors are collected so its routes still get checked."""
    reader = ObjectReader(data, path, what="object (server)")

    def field(parse: Any, fallback: Any) -> Any:
        return _guard(collector, parse, fallback)

    listen: list[ListenAddress] = []
    for index, text in enumerate(field(lambda: reader.array("listen"), [])):
        at = join_path(reader.at("listen"), index)
        listen.extend(field(lambda text=text, at=at: parse_listen(expect_str(text, at), at), []))
    errors = field(lambda: reader.reader("errors"), None)
    error_routes = None
    if errors is not None and errors.has("routes"):
        error_routes = field(lambda: errors.array("routes"), None)
    if errors is not None:
        field(errors.done, None)
    logs_data = reader.raw("logs")
    policies = reader.raw("tls_connection_policies")
    if policies is not None and not isinstance(policies, list):
        collector.add(ConfigError(reader.at("tls_connection_policies"), "expected an array"))
        policies = None
    server = ServerConfig(
        name=name,
        path=path,
        listen=tuple(listen),
        routes=field(lambda: reader.array("routes"), []),
        error_routes=error_routes,
        read_timeout=field(lambda: reader.duration("read_timeout"), None),
        read_header_timeout=field(lambda: reader.duration("read_header_timeout"), None),
        write_timeout=field(lambda: reader.duration("write_timeout"), None),
        idle_timeout=field(lambda: reader.duration("idle_timeout"), None),
        max_header_bytes=field(lambda: reader.integer("max_header_bytes", 0, minimum=0), 0)
        or (1 << 20),
        max_request_body=field(lambda: reader.integer("max_request_body", 0, minimum=0), 0),
        listen_backlog=field(lambda: reader.integer("listen_backlog", 0, minimum=0), 0) or None,
        logs=field(lambda: _parse_logs(logs_data, reader.at("logs")), None)
        if logs_data is not None
        else None,
        trusted_proxies=tuple(field(lambda: _parse_trusted_proxies(reader), [])),
        protocols=field(lambda: _parse_protocols(reader), ("h1", "h2", "h3")),
        tls_connection_policies=policies,
        automatic_https=field(lambda: reader.mapping("automatic_https"), {}),
        raw=dict(reader.data),
    )
    reader.ignore(
        "listener_wrappers",
        "strict_sni_host",
        "experimental_http3",
        "allow_h2c",
        "metrics",
        "client_ip_headers",
        "trusted_proxies_strict",
        "keepalive_interval",
    )
    field(reader.done, None)
    return server


def _parse_protocols(reader: ObjectReader) -> tuple[str, ...]:
    protocols = tuple(reader.strings("protocols")) or ("h1", "h2", "h3")
    for index, protocol in enumerate(protocols):
        if protocol not in KNOWN_PROTOCOLS:
            raise ConfigError(
                join_path(reader.at("protocols"), index), f"unknown protocol {protocol!r}"
            )
    return protocols


def _parse_trusted_proxies(reader: ObjectReader) -> list[IPNetwork]:
    data = reader.raw("trusted_proxies")
    if data is None:
        return []
    inner = ObjectReader(data, reader.at("trusted_proxies"))
    source = inner.text("source")
    if source not in ("static", ""):
        raise ConfigError(inner.at("source"), f"unsupported trusted_proxies source {source!r}")
    ranges = parse_ranges(inner.array("ranges"), inner.at("ranges"))
    inner.done()
    return ranges


def _parse_logs(data: Any, path: str) -> AccessLogConfig:
    reader = ObjectReader(data, path)
    default = reader.text("default_logger_name")
    names = reader.mapping("logger_names")
    skip = tuple(reader.strings("skip_hosts"))
    skip_unmapped = reader.flag("skip_unmapped_hosts")
    credentials = reader.flag("should_log_credentials")
    reader.ignore("trace")
    reader.done()
    return AccessLogConfig(default, dict(names), skip, skip_unmapped, credentials)
