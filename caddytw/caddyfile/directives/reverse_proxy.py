"""``reverse_proxy``: upstreams, load balancing, health checks, header ops,
transport -- the Caddyfile syntax of Caddy's reverse proxy handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from caddytw.config.netaddr import join_host_port, split_host_port

from ..dispenser import Dispenser
from ..errors import unregistered
from ..matchers import parse_nested_matcher_set
from ..values import atoi, parse_bytes, parse_duration, weak_string
from .headers import HeaderOpError, apply_header_op
from .misc import parse_response_matcher
from .registry import Handler, Helper, handler_directive, parse_segment_as_subroute

_PRIVATE_RANGES = [
    "192.168.0.0/16",
    "172.16.0.0/12",
    "10.0.0.0/8",
    "127.0.0.1/8",
    "fd00::/8",
    "::1",
]


def parse_upstream_dial(address: str) -> tuple[str, str]:
    """``parseUpstreamDialAddress``: (dial address, scheme)."""
    network = scheme = host = port = ""
    if "://" in address:
        if "{" in address:
            raise ValueError(
                "due to parsing difficulties, placeholders are not allowed when an upstream "
                "address contains a scheme"
            )
        url = urlsplit(address)
        if url.path or url.query or url.fragment:
            raise ValueError(
                "for now, URLs for proxy upstreams only support scheme, host, and port components"
            )
        netloc = url.netloc.rpartition("@")[2]
        split = split_host_port(netloc)
        host, url_port = split if split is not None else (netloc.strip("[]"), "")
        if url.scheme in ("http", "h2c") and url_port == "443":
            raise ValueError(
                "upstream address has conflicting scheme (http://) and port (:443, the HTTPS port)"
            )
        if url.scheme == "https" and url_port == "80":
            raise ValueError(
                "upstream address has conflicting scheme (https://) and port (:80, the HTTP port)"
            )
        scheme = url.scheme
        port = url_port or {"https": "443"}.get(scheme, "80")
    else:
        before, slash, after = address.partition("/")
        if slash:
            network = before.strip().lower()
            address = after
        split = split_host_port(address)
        if split is None:
            host = address
        else:
            host, port = split
        if not port and "{" not in host:
            port = "80"
    if network == "unix+h2c":
        network, scheme = "unix", "h2c"
    if network:
        if network.startswith("unix"):
            return f"{network}/{host}", scheme
        return f"{network}/{join_host_port(host, port)}", scheme
    if not port and "{" in host:
        return host, scheme
    return join_host_port(host, port), scheme


def _lb_policy(d: Dispenser, name: str) -> dict[str, Any]:
    policy: dict[str, Any] = {"policy": name}
    args = d.remaining_args()
    if name in (
        "random",
        "least_conn",
        "round_robin",
        "first",
        "ip_hash",
        "client_ip_hash",
        "uri_hash",
    ):
        if args:
            raise d.arg_err()
    elif name == "random_choose":
        if len(args) > 1:
            raise d.arg_err()
        if args:
            try:
                policy["choose"] = atoi(args[0])
            except ValueError as exc:
                d.fail(f"invalid choice value '{args[0]}': {exc}")
    elif name in ("header", "query"):
        if len(args) != 1:
            raise d.arg_err()
        policy["field" if name == "header" else "key"] = args[0]
    elif name == "cookie":
        if len(args) > 2:
            raise d.arg_err()
        if args:
            policy["name"] = args[0]
        if len(args) == 2:
            policy["secret"] = args[1]
    elif name == "weighted_round_robin":
        try:
            policy["weights"] = [atoi(a) for a in args]
        except ValueError as exc:
            d.fail(f"invalid weight value: {exc}")
    else:
        d.fail(
            f"getting module named 'http.reverse_proxy.selection_policies.{name}': "
            f"module not registered: http.reverse_proxy.selection_policies.{name}"
        )
    return policy


def _http_transport(d: Dispenser) -> dict[str, Any]:
    t: dict[str, Any] = {}
    durations = {
        "read_timeout": "read_timeout",
        "write_timeout": "write_timeout",
        "dial_timeout": "dial_timeout",
        "dial_fallback_delay": "dial_fallback_delay",
        "response_header_timeout": "response_header_timeout",
        "expect_continue_timeout": "expect_continue_timeout",
    }
    sizes = {
        "read_buffer": "read_buffer_size",
        "write_buffer": "write_buffer_size",
        "max_response_header": "max_response_header_size",
    }
    while d.next():
        while d.next_block(0):
            sub = d.val
            if sub in durations or sub in sizes:
                if not d.next_arg():
                    raise d.arg_err()
                try:
                    if sub in durations:
                        t[durations[sub]] = parse_duration(d.val)
                    else:
                        t[sizes[sub]] = parse_bytes(d.val)
                except ValueError as exc:
                    d.fail(f"invalid value '{d.val}' for {sub}: {exc}")
            elif sub == "resolvers":
                addrs = d.remaining_args()
                if not addrs:
                    raise d.arg_err()
                t["resolver"] = {"addresses": addrs}
            elif sub == "tls":
                t.setdefault("tls", {})
            elif sub == "tls_client_auth":
                tls = t.setdefault("tls", {})
                args = d.remaining_args()
                if len(args) == 1:
                    tls["client_certificate_automate"] = args[0]
                elif len(args) == 2:
                    tls["client_certificate_file"] = args[0]
                    tls["client_certificate_key_file"] = args[1]
                else:
                    raise d.arg_err()
            elif sub == "tls_insecure_skip_verify":
                if d.next_arg():
                    raise d.arg_err()
                t.setdefault("tls", {})["insecure_skip_verify"] = True
            elif sub == "tls_timeout":
                if not d.next_arg():
                    raise d.arg_err()
                t.setdefault("tls", {})["handshake_timeout"] = _duration(d)
            elif sub == "tls_trusted_ca_certs":
                args = d.remaining_args()
                if not args:
                    raise d.arg_err()
                t.setdefault("tls", {})["root_ca_pem_files"] = args
            elif sub == "tls_server_name":
                if not d.next_arg():
                    raise d.arg_err()
                t.setdefault("tls", {})["server_name"] = d.val
            elif sub == "tls_except_ports":
                ports = d.remaining_args()
                if not ports:
                    raise d.arg_err()
                t.setdefault("tls", {})["except_ports"] = ports
            elif sub == "keepalive":
                if not d.next_arg():
                    raise d.arg_err()
                ka = t.setdefault("keep_alive", {})
                if d.val == "off":
                    ka["enabled"] = False
                else:
                    ka["idle_timeout"] = _duration(d)
            elif sub == "keepalive_idle_conns":
                if not d.next_arg():
                    raise d.arg_err()
                t.setdefault("keep_alive", {})["max_idle_conns"] = _int(d)
            elif sub == "keepalive_idle_conns_per_host":
                if not d.next_arg():
                    raise d.arg_err()
                t.setdefault("keep_alive", {})["max_idle_conns_per_host"] = _int(d)
            elif sub == "versions":
                versions = d.remaining_args()
                if not versions:
                    raise d.arg_err()
                t["versions"] = versions
            elif sub == "compression":
                if d.next_arg() and d.val == "off":
                    t["compression"] = False
            elif sub == "max_conns_per_host":
                if not d.next_arg():
                    raise d.arg_err()
                t["max_conns_per_host"] = _int(d)
            else:
                d.fail(f"unrecognized subdirective {sub}")
    return t


def fastcgi_transport(d: Dispenser) -> dict[str, Any]:
    """``transport fastcgi { ... }``: the ``fastcgi`` transport's fields."""
    t: dict[str, Any] = {}
    while d.next():
        while d.next_block(0):
            sub = d.val
            if sub == "root":
                if not d.next_arg():
                    raise d.arg_err()
                t["root"] = d.val
            elif sub == "split":
                t["split_path"] = d.remaining_args()
                if not t["split_path"]:
                    raise d.arg_err()
            elif sub == "env":
                args = d.remaining_args()
                if len(args) != 2:
                    raise d.arg_err()
                t.setdefault("env", {})[args[0]] = args[1]
            elif sub in ("resolve_root_symlink", "capture_stderr"):
                if d.next_arg():
                    raise d.arg_err()
                t[sub] = True
            elif sub in FASTCGI_TIMEOUTS:
                if not d.next_arg():
                    raise d.arg_err()
                t[sub] = fastcgi_timeout(d)
            else:
                d.fail(f"unrecognized subdirective {sub}")
    return t


FASTCGI_TIMEOUTS = ("dial_timeout", "read_timeout", "write_timeout")


def fastcgi_timeout(d: Dispenser) -> int:
    try:
        return parse_duration(d.val)
    except ValueError as exc:
        d.fail(f"bad timeout value {d.val}: {exc}")


_TRANSPORTS: dict[str, Callable[[Dispenser], dict[str, Any]]] = {
    "http": _http_transport,
    "fastcgi": fastcgi_transport,
}


def _duration(d: Dispenser) -> int:
    try:
        return parse_duration(d.val)
    except ValueError as exc:
        d.fail(f"bad duration value '{d.val}': {exc}")


def _int(d: Dispenser) -> int:
    try:
        return atoi(d.val)
    except ValueError as exc:
        d.fail(f"bad number '{d.val}': {exc}")


def _status_list(d: Dispenser, args: list[str]) -> list[int]:
    out: list[int] = []
    for arg in args:
        if len(arg) == 3 and arg.endswith("xx"):
            arg = arg[:1]
        try:
            out.append(atoi(arg))
        except ValueError as exc:
            d.fail(f"bad status value '{arg}': {exc}")
    return out


class _Proxy:
    """Accumulates the handler JSON while walking the directive's tokens."""

    def __init__(self, d: Dispenser) -> None:
        self.d = d
        self.out: Handler = {"handler": "reverse_proxy"}
        self.scheme = ""
        self.transport: dict[str, Any] | None = None
        self.transport_name = ""
        #: A transport set before parsing (``php_fastcgi``'s); a ``transport``
        #: subdirective is then an error, as in Caddy.
        self.preset_transport: dict[str, Any] | None = None
        self.resp_matchers: dict[str, dict[str, Any]] = {}
        self.handle_response: list[list[Any]] = []

    def sub(self, *path: str) -> dict[str, Any]:
        node = self.out
        for key in path:
            node = node.setdefault(key, {})
        return node

    def add_upstream(self, address: str) -> None:
        srv = address.startswith("srv+")
        if srv:
            address = address[4:]
        try:
            dial, scheme = parse_upstream_dial(address)
        except ValueError as exc:
            self.d.fail(str(exc))
        if self.scheme and scheme != self.scheme:
            self.d.fail(
                "for now, all proxy upstreams must use the same scheme (transport protocol); "
                f"expecting '{self.scheme}://' but got '{scheme}://'"
            )
        self.scheme = scheme
        ups = self.out.setdefault("upstreams", [])
        if srv:
            split = split_host_port(dial)
            ups.append({"lookup_srv": split[0] if split else dial})
        else:
            ups.append({"dial": dial})

    def one_arg(self) -> str:
        if not self.d.next_arg():
            raise self.d.arg_err()
        return self.d.val

    def header_op(self, request: bool) -> None:
        d = self.d
        args = d.remaining_args()
        if not 1 <= len(args) <= 3:
            raise d.arg_err()
        args += [""] * (3 - len(args))
        headers = self.out.setdefault("headers", {})
        ops = headers.setdefault("request" if request else "response", {})
        try:
            apply_header_op(ops, None, args[0], args[1], args[2])
        except HeaderOpError as exc:
            d.fail(str(exc))


def _health_active(p: _Proxy) -> dict[str, Any]:
    return p.sub("health_checks", "active")


def _health_passive(p: _Proxy) -> dict[str, Any]:
    return p.sub("health_checks", "passive")


def _sub_simple(p: _Proxy, sub: str) -> bool:
    """Subdirectives taking one value; True when ``sub`` was one of them."""
    d = p.d
    setters: dict[str, Callable[[], None]] = {
        "lb_retries": lambda: p.sub("load_balancing").__setitem__("retries", _int(d)),
        "lb_try_duration": lambda: p.sub("load_balancing").__setitem__(
            "try_duration", _duration(d)
        ),
        "lb_try_interval": lambda: p.sub("load_balancing").__setitem__(
            "try_interval", _duration(d)
        ),
        "health_uri": lambda: _health_active(p).__setitem__("uri", d.val),
        "health_path": lambda: _health_active(p).__setitem__("path", d.val),
        "health_port": lambda: _health_active(p).__setitem__("port", _int(d)),
        "health_interval": lambda: _health_active(p).__setitem__("interval", _duration(d)),
        "health_timeout": lambda: _health_active(p).__setitem__("timeout", _duration(d)),
        "health_status": lambda: _health_active(p).__setitem__(
            "expect_status", _status_list(d, [d.val])[0]
        ),
        "health_body": lambda: _health_active(p).__setitem__("expect_body", d.val),
        "max_fails": lambda: _health_passive(p).__setitem__("max_fails", _int(d)),
        "fail_duration": lambda: _health_passive(p).__setitem__("fail_duration", _duration(d)),
        "unhealthy_request_count": lambda: _health_passive(p).__setitem__(
            "unhealthy_request_count", _int(d)
        ),
        "unhealthy_latency": lambda: _health_passive(p).__setitem__(
            "unhealthy_latency", _duration(d)
        ),
        "flush_interval": lambda: p.out.__setitem__("flush_interval", _flush(d)),
    }
    setter = setters.get(sub)
    if setter is None:
        return False
    p.one_arg()
    setter()
    return True


def _flush(d: Dispenser) -> int:
    try:
        return atoi(d.val)
    except ValueError:
        return _duration(d)


def _parse_block_line(p: _Proxy, h: Helper) -> None:
    d = p.d
    sub = d.val
    if sub.startswith("@"):
        parse_response_matcher(Dispenser(d.next_segment()), p.resp_matchers)
        return
    if _sub_simple(p, sub):
        return
    if sub == "to":
        args = d.remaining_args()
        if not args:
            raise d.arg_err()
        for up in args:
            p.add_upstream(up)
    elif sub == "lb_policy":
        name = p.one_arg()
        lb = p.sub("load_balancing")
        if "selection_policy" in lb:
            d.fail("load balancing selection policy already specified")
        lb["selection_policy"] = _lb_policy(d, name)
    elif sub == "lb_retry_match":
        p.sub("load_balancing").setdefault("retry_match", []).append(parse_nested_matcher_set(d))
    elif sub == "health_headers":
        headers: dict[str, list[str]] = {}
        nesting = d.nesting
        while d.next_block(nesting):
            key = d.val
            headers[key] = d.remaining_args() or [""]
        _health_active(p)["headers"] = headers
    elif sub == "unhealthy_status":
        args = d.remaining_args()
        if not args:
            raise d.arg_err()
        _health_passive(p).setdefault("unhealthy_status", []).extend(_status_list(d, args))
    elif sub in ("buffer_requests", "buffer_responses"):
        if d.next_arg():
            raise d.arg_err()
        p.out[sub] = True
    elif sub == "max_buffer_size":
        p.one_arg()
        try:
            p.out["max_buffer_size"] = parse_bytes(d.val)
        except ValueError as exc:
            d.fail(f"invalid byte size '{d.val}': {exc}")
        if d.next_arg():
            raise d.arg_err()
    elif sub == "trusted_proxies":
        proxies = p.out.setdefault("trusted_proxies", [])
        while d.next_arg():
            proxies.extend(_PRIVATE_RANGES if d.val == "private_ranges" else [d.val])
    elif sub in ("header_up", "header_down"):
        p.header_op(sub == "header_up")
    elif sub in ("method", "rewrite"):
        p.one_arg()
        p.sub("rewrite")["method" if sub == "method" else "uri"] = d.val
        if d.next_arg():
            raise d.arg_err()
    elif sub == "transport":
        name = p.one_arg()
        if p.transport is not None or p.preset_transport is not None:
            d.fail("transport already specified")
        if name not in _TRANSPORTS:
            d.fail(unregistered(f"http.reverse_proxy.transport.{name}"))
        p.transport_name = name
        p.transport = _TRANSPORTS[name](Dispenser(d.next_segment()))
    elif sub == "handle_response":
        p.handle_response.append([Dispenser(d.next_segment()), h])
    elif sub == "replace_status":
        _replace_status(p)
    else:
        d.fail(f"unrecognized subdirective {sub}")


def _replace_status(p: _Proxy) -> None:
    d = p.d
    args = d.remaining_args()
    if len(args) not in (1, 2):
        d.fail("must have one or two arguments: an optional response matcher, and a status code")
    handler: dict[str, Any] = {}
    if len(args) == 2:
        if not args[0].startswith("@"):
            d.fail("must use a named response matcher, starting with '@'")
        if args[0] not in p.resp_matchers:
            d.fail(f"no named response matcher defined with name '{args[0][1:]}'")
        handler["match"] = p.resp_matchers[args[0]]
    handler["status_code"] = weak_string(args[-1])
    if d.next_block(1):
        d.fail("cannot define routes for 'replace_status', use 'handle_response' instead.")
    p.out.setdefault("handle_response", []).append(handler)


def _finalize_handle_response(p: _Proxy) -> None:
    for seg_d, h in p.handle_response:
        d: Dispenser = seg_d
        d.next()
        args = d.remaining_args()
        if len(args) == 2:
            d.fail(
                "configuring 'handle_response' for status code replacement is no longer "
                "supported. Use 'replace_status' instead."
            )
        if len(args) > 1:
            d.fail(f"too many arguments for 'handle_response': {args}")
        handler: dict[str, Any] = {}
        if args:
            if not args[0].startswith("@"):
                d.fail("must use a named response matcher, starting with '@'")
            if args[0] not in p.resp_matchers:
                d.fail(f"no named response matcher defined with name '{args[0][1:]}'")
            handler["match"] = p.resp_matchers[args[0]]
        sub = parse_segment_as_subroute(h.with_dispenser(Dispenser(d.next_segment())))
        if sub.routes:
            handler["routes"] = sub.routes
        p.out.setdefault("handle_response", []).append(handler)
    if "handle_response" in p.out:
        hrs = p.out["handle_response"]
        p.out["handle_response"] = [x for x in hrs if "match" in x] + [
            x for x in hrs if "match" not in x
        ]


@handler_directive("reverse_proxy")
def parse_reverse_proxy(h: Helper) -> Handler:
    return build_reverse_proxy(h)


def build_reverse_proxy(h: Helper, preset: Handler | None = None) -> Handler:
    """The handler from ``h``'s tokens on top of ``preset`` (fields a wrapping
    directive such as ``php_fastcgi`` or ``forward_auth`` sets first; a preset
    ``transport`` stands unless the upstream scheme needs HTTP's)."""
    d = h.d
    p = _Proxy(d)
    if preset:
        p.out.update(preset)
        p.preset_transport = preset.get("transport")
    while d.next():
        for up in d.remaining_args():
            p.add_upstream(up)
        while d.next_block(0):
            _parse_block_line(p, h)
    transport = p.transport
    if p.scheme in ("https", "h2c") and transport is None:
        transport = {}
        p.transport_name = "http"
    if transport is not None:
        if p.transport_name != "http" and p.scheme == "https":
            d.fail("upstreams are configured for HTTPS but transport module does not support TLS")
        if p.scheme == "https" and "tls" not in transport:
            transport["tls"] = {}
        if p.scheme == "http" and "tls" in transport:
            d.fail(
                "upstream address scheme is HTTP but transport is configured for HTTP+TLS (HTTPS)"
            )
        if p.scheme == "h2c":
            transport["versions"] = ["h2c", "2"]
        if transport or p.transport_name != "http":
            p.out["transport"] = {"protocol": p.transport_name, **transport}
    _finalize_handle_response(p)
    return p.out


@handler_directive("copy_response")
def parse_copy_response(h: Helper) -> Handler:
    """``copy_response [status]`` inside ``handle_response``."""
    d = h.d
    out: Handler = {"handler": "copy_response"}
    while d.next():
        args = d.remaining_args()
        if len(args) == 1 and args[0].isdigit() and int(args[0]) > 0:
            out["status_code"] = weak_string(args[0])
            break
        while d.next_block(0):
            if d.val != "status":
                d.fail(f"unrecognized subdirective '{d.val}'")
            if not d.next_arg():
                raise d.arg_err()
            out["status_code"] = weak_string(d.val)
    return out


@handler_directive("copy_response_headers")
def parse_copy_response_headers(h: Helper) -> Handler:
    """``copy_response_headers { include ... exclude ... }`` inside ``handle_response``."""
    d = h.d
    out: Handler = {"handler": "copy_response_headers"}
    while d.next():
        if d.remaining_args():
            raise d.arg_err()
        while d.next_block(0):
            if d.val not in ("include", "exclude"):
                d.fail(f"unrecognized subdirective '{d.val}'")
            out.setdefault(d.val, []).extend(d.remaining_args())
    return out
