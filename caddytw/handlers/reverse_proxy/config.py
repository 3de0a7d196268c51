"""Strict parsing of the ``reverse_proxy`` handler JSON into frozen config objects.

Every field Caddy documents for the parts implemented here is read; anything else is
rejected with its JSON path. Fields of Caddy's handler that caddytw does not implement get
an explicit "not supported" error rather than the generic "unknown field".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.ipranges import IPNetwork, parse_ranges
from caddytw.config.netaddr import host_and_port
from caddytw.config.reader import ObjectReader, expect_str_list, join_path
from caddytw.handlers.reverse_proxy.headerops import HeaderOps, compile_header_ops
from caddytw.handlers.reverse_proxy.selection import Policy, parse_policy
from caddytw.http.matchers import Matcher, build_matcher_set

UNSUPPORTED = (
    "circuit_breaker",
    "dynamic_upstreams",
    "buffer_responses",
    "max_buffer_size",
    "response_buffers",
    "stream_timeout",
    "stream_close_delay",
)


@dataclass(frozen=True)
class UpstreamConfig:
    dial: str
    host: str
    port: int
    max_requests: int = 0
    #: ``unix`` for ``unix//path`` dials (``host`` is then the socket path, port 0).
    network: str = "tcp"


@dataclass(frozen=True)
class TLSConfig:
    """``transport.tls``: HTTPS to the upstream."""

    server_name: str = ""
    insecure_skip_verify: bool = False
    root_ca_pem_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeepAliveConfig:
    """Connection reuse; Caddy's defaults (32 idle per host, 2 minutes idle)."""

    enabled: bool = True
    probe_interval: float = 30.0
    max_idle_conns_per_host: int = 32
    idle_timeout: float = 120.0


@dataclass(frozen=True)
class FastCGIConfig:
    """``transport`` with ``protocol: fastcgi`` (Caddy's fastcgi.Transport)."""

    root: str = "{http.vars.root}"
    split_path: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    resolve_root_symlink: bool = False
    capture_stderr: bool = False


@dataclass(frozen=True)
class TransportConfig:
    dial_timeout: float = 3.0
    response_header_timeout: float | None = None
    read_timeout: float | None = None
    write_timeout: float | None = None
    #: Caddy's ``max_response_header_size``; 0 there means Go's default, 10 MiB.
    max_response_header_size: int = 10 << 20
    keepalive: KeepAliveConfig = field(default_factory=KeepAliveConfig)
    tls: TLSConfig | None = None
    fastcgi: FastCGIConfig | None = None


@dataclass(frozen=True)
class LoadBalancingConfig:
    policy: Policy
    retries: int = 0
    try_duration: float = 0.0
    #: Wait between attempts; 250 ms when ``try_duration`` is set and this is not.
    try_interval: float = 0.0
    #: Matcher sets that make non-GET requests retryable after a non-dial failure.
    retry_match: tuple[Matcher, ...] | None = None


@dataclass(frozen=True)
class ActiveHealthConfig:
    uri: str = "/"
    port: int = 0
    interval: float = 30.0
    timeout: float = 5.0
    expect_status: int = 0
    expect_body: re.Pattern[str] | None = None
    headers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    passes: int = 1
    fails: int = 1
    max_size: int = 0


@dataclass(frozen=True)
class PassiveHealthConfig:
    fail_duration: float = 0.0
    max_fails: int = 1
    unhealthy_status: tuple[int, ...] = ()
    unhealthy_latency: float = 0.0
    unhealthy_request_count: int = 0


@dataclass(frozen=True)
class ProxyConfig:
    upstreams: tuple[UpstreamConfig, ...]
    transport: TransportConfig
    load_balancing: LoadBalancingConfig
    active_health: ActiveHealthConfig | None = None
    passive_health: PassiveHealthConfig | None = None
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None
    #: Response header matcher for ``headers.response`` (``require``), as a predicate.
    response_require: Any = None
    flush_interval: float = 0.0
    trusted_proxies: tuple[IPNetwork, ...] = ()


def parse_dial(text: str, path: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets), or ``unix/PATH`` (returned as ``(PATH, 0)``);
    a scheme or a missing port is an error."""
    if "://" in text:
        raise ConfigError(path, f"upstream dial {text!r} must be host:port without a scheme")
    if text.startswith("unix+h2c/"):
        raise ConfigError(path, f"h2c upstreams ({text!r}) are not supported by caddytw")
    if text.startswith("unix/"):
        if "{" in text or len(text) == len("unix/"):
            raise ConfigError(path, f"invalid unix socket upstream {text!r}")
        return text[len("unix/") :], 0
    if "{" in text:
        raise ConfigError(
            path, f"placeholders in upstream addresses ({text!r}) are not supported by caddytw"
        )
    host, port = host_and_port(text)
    if not port.isdigit() or not 0 < int(port) < 65536 or (not host and text.startswith("[")):
        raise ConfigError(path, f"invalid upstream dial address {text!r} (want host:port)")
    # ``:9091`` (as Authelia's forward_auth examples write it): Go dials the local system.
    return host or "localhost", int(port)


def parse_upstreams(reader: ObjectReader) -> tuple[UpstreamConfig, ...]:
    items = reader.array("upstreams")
    if not items:
        raise ConfigError(reader.at("upstreams"), "at least one upstream is required")
    result = []
    for index, item in enumerate(items):
        up = ObjectReader(item, join_path(reader.at("upstreams"), index))
        dial = up.text("dial")
        host, port = parse_dial(dial, up.at("dial"))
        max_requests = up.integer("max_requests", 0, minimum=0)
        up.done()
        network = "unix" if dial.startswith("unix/") else "tcp"
        result.append(UpstreamConfig(dial, host, port, max_requests, network))
    return tuple(result)


def _positive_duration(reader: ObjectReader, key: str, default: float | None) -> float | None:
    value = reader.duration(key, default)
    if value is not None and value < 0:
        raise ConfigError(reader.at(key), "must not be negative")
    return value or default


def parse_transport(reader: ObjectReader) -> TransportConfig:
    if not reader.data:
        reader.done()
        return TransportConfig()
    protocol = reader.text("protocol")
    if protocol == "fastcgi":
        return parse_fastcgi(reader)
    if protocol != "http":
        raise ConfigError(
            reader.at("protocol"), f"unsupported transport {protocol!r} (use http or fastcgi)"
        )
    versions = reader.strings("versions")
    for index, version in enumerate(versions):
        if version != "1.1":
            raise ConfigError(
                join_path(reader.at("versions"), index),
                f"HTTP version {version!r} to upstreams is not supported (only 1.1)",
            )
    keep = reader.reader("keep_alive")
    defaults = KeepAliveConfig()
    per_host = keep.integer("max_idle_conns_per_host", defaults.max_idle_conns_per_host, minimum=0)
    total = keep.integer("max_idle_conns", 0, minimum=0)
    keepalive = KeepAliveConfig(
        enabled=keep.flag("enabled", True),
        probe_interval=_positive_duration(keep, "probe_interval", defaults.probe_interval) or 0.0,
        max_idle_conns_per_host=min(per_host, total) if total else per_host,
        idle_timeout=_positive_duration(keep, "idle_timeout", defaults.idle_timeout) or 0.0,
    )
    keep.done()
    tls = None
    if reader.has("tls"):
        tls_reader = reader.reader("tls")
        tls = TLSConfig(
            server_name=tls_reader.text("server_name"),
            insecure_skip_verify=tls_reader.flag("insecure_skip_verify"),
            root_ca_pem_files=tuple(tls_reader.strings("root_ca_pem_files")),
        )
        tls_reader.done()
    config = TransportConfig(
        dial_timeout=_positive_duration(reader, "dial_timeout", 3.0) or 3.0,
        response_header_timeout=_positive_duration(reader, "response_header_timeout", None),
        read_timeout=_positive_duration(reader, "read_timeout", None),
        write_timeout=_positive_duration(reader, "write_timeout", None),
        max_response_header_size=reader.integer("max_response_header_size", 0, minimum=0)
        or (10 << 20),
        keepalive=keepalive,
        tls=tls,
    )
    reader.done()
    return config


def parse_fastcgi(reader: ObjectReader) -> TransportConfig:
    """The ``fastcgi`` transport: its CGI settings and its three timeouts (Caddy has
    no response header timeout or keep-alive for it: one connection per request)."""
    env = reader.mapping("env")
    for name, value in env.items():
        if not isinstance(value, str):
            raise ConfigError(join_path(reader.at("env"), name), "expected a string")
    fastcgi = FastCGIConfig(
        root=reader.text("root") or "{http.vars.root}",
        split_path=tuple(reader.strings("split_path")),
        env=tuple(env.items()),
        resolve_root_symlink=reader.flag("resolve_root_symlink"),
        capture_stderr=reader.flag("capture_stderr"),
    )
    config = TransportConfig(
        dial_timeout=_positive_duration(reader, "dial_timeout", 3.0) or 3.0,
        read_timeout=_positive_duration(reader, "read_timeout", None),
        write_timeout=_positive_duration(reader, "write_timeout", None),
        keepalive=KeepAliveConfig(enabled=False),
        fastcgi=fastcgi,
    )
    reader.done()
    return config


def parse_load_balancing(reader: ObjectReader, rng: random.Random) -> LoadBalancingConfig:
    policy = parse_policy(reader.reader("selection_policy"), rng)
    retries = reader.integer("retries", 0, minimum=0)
    try_duration = _positive_duration(reader, "try_duration", 0.0) or 0.0
    try_interval = _positive_duration(reader, "try_interval", 0.0) or 0.0
    if try_duration and not try_interval:
        try_interval = 0.25
    retry_match = None
    if reader.has("retry_match"):
        retry_match = tuple(
            build_matcher_set(item, join_path(reader.at("retry_match"), index))
            for index, item in enumerate(reader.array("retry_match"))
        )
    reader.done()
    return LoadBalancingConfig(policy, retries, try_duration, try_interval, retry_match)


def parse_status_list(reader: ObjectReader, key: str) -> tuple[int, ...]:
    codes = []
    for index, code in enumerate(reader.array(key)):
        if (
            isinstance(code, bool)
            or not isinstance(code, int)
            or not (1 <= code <= 5 or 100 <= code <= 999)
        ):
            raise ConfigError(
                join_path(reader.at(key), index), "expected a status code or class digit 1-5"
            )
        codes.append(code)
    return tuple(codes)


def status_matches(code: int, expected: int) -> bool:
    """Caddy's StatusCodeMatches: a one-digit value matches its whole class."""
    return code // 100 == expected if expected < 100 else code == expected


def parse_active(reader: ObjectReader) -> ActiveHealthConfig:
    uri = reader.text("uri") or reader.text("path") or "/"
    if not uri.startswith("/"):
        raise ConfigError(reader.at("uri"), "must start with /")
    expect_status = reader.integer("expect_status", 0, minimum=0)
    if expect_status and not (1 <= expect_status <= 5 or 100 <= expect_status <= 999):
        raise ConfigError(reader.at("expect_status"), "expected a status code or class digit")
    body = reader.text("expect_body", None)
    pattern = None
    if body:
        try:
            pattern = re.compile(body)
        except re.error as error:
            raise ConfigError(reader.at("expect_body"), f"invalid regexp: {error}") from None
    headers_reader = reader.reader("headers")
    headers = []
    for name, values in headers_reader.data.items():
        headers_reader.ignore(name)
        headers.append(
            (name, tuple(expect_str_list(values, join_path(headers_reader.at(name), ""))))
        )
    headers_reader.done()
    config = ActiveHealthConfig(
        uri=uri,
        port=reader.integer("port", 0, minimum=0),
        interval=_positive_duration(reader, "interval", 30.0) or 30.0,
        timeout=_positive_duration(reader, "timeout", 5.0) or 5.0,
        expect_status=expect_status,
        expect_body=pattern,
        headers=tuple(headers),
        passes=reader.integer("passes", 1, minimum=1),
        fails=reader.integer("fails", 1, minimum=1),
        max_size=reader.integer("max_size", 0, minimum=0),
    )
    reader.done()
    return config


def parse_passive(reader: ObjectReader) -> PassiveHealthConfig:
    config = PassiveHealthConfig(
        fail_duration=_positive_duration(reader, "fail_duration", 0.0) or 0.0,
        max_fails=reader.integer("max_fails", 1, minimum=1),
        unhealthy_status=parse_status_list(reader, "unhealthy_status"),
        unhealthy_latency=_positive_duration(reader, "unhealthy_latency", 0.0) or 0.0,
        unhealthy_request_count=reader.integer("unhealthy_request_count", 0, minimum=0),
    )
    reader.done()
    return config


def _response_require(reader: ObjectReader) -> Any:
    """``headers.response.require``: ``{"status_code": [...], "headers": {...}}``."""
    if not reader.has("require"):
        return None
    require = reader.reader("require")
    statuses = parse_status_list(require, "status_code")
    wanted = {
        name.lower(): expect_str_list(values, require.at("headers") + "." + name)
        for name, values in require.mapping("headers").items()
    }
    require.done()

    def matches(code: int, headers: Any) -> bool:
        if statuses and not any(status_matches(code, s) for s in statuses):
            return False
        for name, values in wanted.items():
            present = headers.getRawHeaders(name.encode("latin-1"))
            if present is None:
                return False
            if values and not any(v.encode("latin-1") in present for v in values):
                return False
        return True

    return matches


def parse_proxy_config(reader: ObjectReader, rng: random.Random | None = None) -> ProxyConfig:
    """Read a whole ``reverse_proxy`` handler object (``handler`` already consumed)."""
    rng = rng or random.Random()
    for key in UNSUPPORTED:
        if reader.has(key):
            raise ConfigError(reader.at(key), f"{key!r} is not supported by caddytw")
    upstreams = parse_upstreams(reader)
    transport = parse_transport(reader.reader("transport"))
    load_balancing = parse_load_balancing(reader.reader("load_balancing"), rng)
    health = reader.reader("health_checks")
    active = parse_active(health.reader("active")) if health.has("active") else None
    passive = parse_passive(health.reader("passive")) if health.has("passive") else None
    health.ignore("active", "passive")
    health.done()
    if active is not None and (
        transport.fastcgi is not None or any(u.network == "unix" for u in upstreams)
    ):
        # The probe speaks HTTP over TCP; Caddy's would go through the transport.
        raise ConfigError(
            health.at("active"),
            "active health checks of fastcgi or unix socket upstreams are not supported by caddytw",
        )
    headers = reader.reader("headers")
    request_reader = headers.reader("request")
    request_headers = compile_header_ops(request_reader)
    request_reader.done()
    response_reader = headers.reader("response")
    require = _response_require(response_reader)
    response_reader.ignore("deferred")
    response_headers = compile_header_ops(response_reader)
    response_reader.done()
    headers.done()
    flush = reader.duration("flush_interval", 0.0) or 0.0
    trusted = tuple(parse_ranges(reader.array("trusted_proxies"), reader.at("trusted_proxies")))
    reader.flag("buffer_requests")  # twisted.web always spools request bodies (bounded memory)
    reader.integer("request_buffers", 0)
    reader.flag("verbose_logs")
    # Read by the handler's build: their routes need the build context.
    reader.ignore("handle_response", "rewrite")
    reader.done()
    return ProxyConfig(
        upstreams=upstreams,
        transport=transport,
        load_balancing=load_balancing,
        active_health=active,
        passive_health=passive,
        request_headers=request_headers,
        response_headers=response_headers,
        response_require=require,
        flush_interval=flush,
        trusted_proxies=trusted,
    )
