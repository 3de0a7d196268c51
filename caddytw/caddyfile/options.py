"""The global options block (the key-less first block of a Caddyfile).

Each option parses its segment into a Python value stored in the options
dict; the adapter then reads them (ports, admin, auto_https, servers,
ACME defaults, logs, directive order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import issuers
from .dispenser import Dispenser
from .pkiapp import parse_pki_option
from .values import atoi, parse_duration, size_arg

__all__ = ["GLOBAL_OPTIONS", "apply_order"]

OptionFunc = Callable[[Dispenser, Any], Any]


def _true(d: Dispenser, _: Any) -> Any:
    return True


def _port(d: Dispenser, _: Any) -> Any:
    port = 0
    while d.next():
        args = d.all_args(1)
        if args is None:
            raise d.arg_err()
        try:
            port = atoi(args[0])
        except ValueError as exc:
            d.fail(f"converting port '{args[0]}' to integer value: {exc}")
    return port


def _string_list(d: Dispenser, _: Any) -> Any:
    d.next()
    vals = d.remaining_args()
    if not vals:
        raise d.arg_err()
    return vals


def _single_string(d: Dispenser, _: Any) -> Any:
    d.next()
    if not d.next_arg():
        raise d.arg_err()
    val = d.val
    if d.next_arg():
        raise d.arg_err()
    return val


def _duration(d: Dispenser, _: Any) -> Any:
    d.next()
    if not d.next_arg():
        raise d.arg_err()
    try:
        return parse_duration(d.val)
    except ValueError as exc:
        d.fail(str(exc))


def _admin(d: Dispenser, _: Any) -> Any:
    cfg: dict[str, Any] = {}
    while d.next():
        if d.next_arg():
            if d.val == "off":
                cfg["disabled"] = True
                if d.next():
                    d.fail("No more option is allowed after turning off admin config")
            else:
                cfg["listen"] = d.val
                if d.next_arg():
                    raise d.arg_err()
        nesting = d.nesting
        while d.next_block(nesting):
            if d.val == "enforce_origin":
                cfg["enforce_origin"] = True
            elif d.val == "origins":
                cfg["origins"] = d.remaining_args()
            else:
                d.fail(f"unrecognized parameter '{d.val}'")
    if not cfg.get("listen") and not cfg.get("disabled"):
        cfg["listen"] = "localhost:2019"
    return cfg


def _auto_https(d: Dispenser, _: Any) -> Any:
    d.next()
    if not d.next():
        raise d.arg_err()
    val = d.val
    if d.next():
        raise d.arg_err()
    if val not in ("off", "disable_redirects", "disable_certs", "ignore_loaded_certs"):
        d.fail(
            "auto_https must be one of 'off', 'disable_redirects', 'disable_certs', "
            "or 'ignore_loaded_certs'"
        )
    return val


def _order(d: Dispenser, existing: Any) -> Any:
    """``order DIR first|last|before X|after X``: accumulated, applied later."""
    d.next()
    if not d.next_arg():
        raise d.arg_err()
    name = d.val
    if not d.next_arg():
        raise d.arg_err()
    pos = d.val
    ref = ""
    if pos in ("before", "after"):
        if not d.next_arg():
            raise d.arg_err()
        ref = d.val
    elif pos not in ("first", "last"):
        d.fail(f"unknown position: {pos}")
    if d.next_arg():
        raise d.arg_err()
    items = list(existing or [])
    items.append((name, pos, ref, d))
    return items


def apply_order(order: list[str], changes: list[tuple[str, str, str, Dispenser]]) -> list[str]:
    """Apply ``order`` global options to the directive order."""
    out = list(order)
    for name, pos, ref, d in changes:
        if name in out:
            out.remove(name)
        if pos == "first":
            out.insert(0, name)
        elif pos == "last":
            out.append(name)
        else:
            if ref not in out:
                d.fail(f"directive '{ref}' not found")
            idx = out.index(ref)
            out.insert(idx if pos == "before" else idx + 1, name)
    return out


def _storage(d: Dispenser, _: Any) -> Any:
    """``storage file_system [root] { root ... }`` or ``storage postgres
    [connection_string] { connection_string ... }`` (certmagic-sqlstorage's shape)."""
    d.next()
    if not d.next_arg():
        raise d.arg_err()
    name = d.val
    out: dict[str, Any] = {"module": name}
    fields = {"file_system": "root", "postgres": "connection_string"}
    if name not in fields:
        d.fail(f"getting storage module '{name}': module not registered: caddy.storage.{name}")
    field = fields[name]
    if d.next_arg():
        out[field] = d.val
    nesting = d.nesting
    while d.next_block(nesting):
        if d.val == field:
            if not d.next_arg():
                raise d.arg_err()
            out[field] = d.val
        else:
            d.fail(f"unrecognized parameter '{d.val}'")
    return out


def _servers(d: Dispenser, _: Any) -> Any:
    opts: dict[str, Any] = {"listener_address": "", "settings": {}}
    settings: dict[str, Any] = opts["settings"]
    timeouts = {
        "read_body": "read_timeout",
        "read_header": "read_header_timeout",
        "write": "write_timeout",
        "idle": "idle_timeout",
    }
    while d.next():
        if d.next_arg():
            opts["listener_address"] = d.val
            if d.next_arg():
                raise d.arg_err()
        nesting = d.nesting
        while d.next_block(nesting):
            sub = d.val
            if sub == "timeouts":
                inner = d.nesting
                while d.next_block(inner):
                    key = timeouts.get(d.val)
                    if key is None:
                        d.fail(f"unrecognized timeouts option '{d.val}'")
                    if not d.next_arg():
                        raise d.arg_err()
                    try:
                        settings[key] = parse_duration(d.val)
                    except ValueError as exc:
                        d.fail(f"parsing {key} duration: {exc}")
            elif sub == "keepalive_interval":
                if not d.next_arg():
                    raise d.arg_err()
                settings["keepalive_interval"] = parse_duration(d.val)
            elif sub == "max_header_size":
                settings["max_header_bytes"] = size_arg(d, sub)
            elif sub == "log_credentials":
                if d.next_arg():
                    raise d.arg_err()
                opts["log_credentials"] = True
            elif sub == "protocols":
                protos: list[str] = settings.setdefault("protocols", [])
                for proto in d.remaining_args():
                    if proto not in ("h1", "h2", "h2c", "h3"):
                        d.fail(f"unknown protocol '{proto}': expected h1, h2, h2c, or h3")
                    if proto in protos:
                        d.fail(f"protocol {proto} specified more than once")
                    protos.append(proto)
            elif sub == "strict_sni_host":
                if d.next_arg() and d.val not in ("insecure_off", "on"):
                    d.fail(f"strict_sni_host only supports 'on' or 'insecure_off', got '{d.val}'")
                settings["strict_sni_host"] = d.val != "insecure_off"
            elif sub == "metrics":
                settings["metrics"] = {}
            else:
                d.fail(f"unrecognized servers option '{sub}'")
    return opts


def _log(d: Dispenser, existing: Any) -> Any:
    from .directives.registry import AdaptContext, Helper
    from .directives.site import parse_log_segment

    names: set[str] = set(name for name, _ in (existing or []))
    h = Helper(d, AdaptContext(), {}, [])
    values = parse_log_segment(h, names)
    return list(existing or []) + [v.value for v in values]


GLOBAL_OPTIONS: dict[str, OptionFunc] = {
    "debug": _true,
    "http_port": _port,
    "https_port": _port,
    "default_bind": _string_list,
    "grace_period": _duration,
    "shutdown_delay": _duration,
    "default_sni": _single_string,
    "order": _order,
    "storage": _storage,
    "storage_clean_interval": _duration,
    "renew_interval": _duration,
    "ocsp_interval": _duration,
    "acme_ca": _single_string,
    "acme_ca_root": _single_string,
    "skip_install_trust": _true,
    "email": _single_string,
    "admin": _admin,
    "local_certs": _true,
    "key_type": _single_string,
    "auto_https": _auto_https,
    "servers": _servers,
    "log": _log,
    "pki": parse_pki_option,
    "cert_issuer": issuers.parse_cert_issuer_option,
    "acme_eab": issuers.parse_acme_eab_option,
    "acme_dns": issuers.parse_acme_dns_option,
    "on_demand_tls": issuers.parse_on_demand_option,
    "preferred_chains": issuers.parse_preferred_chains_option,
}
