"""Site-level (non-handler) directives: ``bind``, ``tls``, ``log``."""

from __future__ import annotations

from typing import Any

from ..dispenser import Dispenser
from ..issuers import parse_cert_manager, parse_dns_provider, parse_issuer
from ..logfilters import parse_filter_encoder
from ..values import atoi, parse_bytes, parse_duration
from .registry import ConfigValue, Helper, directive


@directive("bind")
def parse_bind(h: Helper) -> list[ConfigValue]:
    hosts: list[str] = []
    while h.d.next():
        hosts.extend(h.d.remaining_args())
    return [ConfigValue("bind", hosts)]


@directive("tls")
def parse_tls(h: Helper) -> list[ConfigValue]:
    """Certificates from files, ``internal``, an ACME email, a CA, policies."""
    d = h.d
    policy: dict[str, Any] = {}
    file_loader: list[dict[str, Any]] = []
    any_tag: list[str] = []
    acme: dict[str, Any] | None = None
    internal = False
    key_type = ""
    on_demand = False
    issuers: list[dict[str, Any]] = []
    managers: list[dict[str, Any]] = []
    while d.next():
        first = d.remaining_args()
        if len(first) == 1:
            if first[0] == "internal":
                internal = True
            elif "@" not in first[0]:
                d.fail("single argument must either be 'internal' or an email address")
            else:
                acme = acme or {"module": "acme"}
                acme["email"] = first[0]
        elif len(first) == 2:
            tags: dict[str, str] = h.ctx.state.setdefault("tlsCertTags", {})
            tag = tags.get(first[0])
            if tag is None:
                tag = f"cert{len(tags)}"
                file_loader.append({"certificate": first[0], "key": first[1], "tags": [tag]})
                tags[first[0]] = tag
            any_tag.append(tag)
        elif first:
            raise d.arg_err()
        has_block = False
        nesting = d.nesting
        while d.next_block(nesting):
            has_block = True
            sub = d.val
            if sub == "protocols":
                args = d.remaining_args()
                if not args:
                    raise d.syntax_err("one or two protocols")
                for arg in args[:2]:
                    if arg not in ("tls1.2", "tls1.3"):
                        d.fail(f"Wrong protocol name or protocol not supported: '{arg}'")
                policy["protocol_min"] = args[0]
                if len(args) > 1:
                    policy["protocol_max"] = args[1]
            elif sub in ("ciphers", "curves"):
                policy.setdefault("cipher_suites" if sub == "ciphers" else "curves", []).extend(
                    d.remaining_args()
                )
            elif sub == "alpn":
                args = d.remaining_args()
                if not args:
                    raise d.arg_err()
                policy["alpn"] = args
            elif sub == "ca":
                args = d.remaining_args()
                if len(args) != 1:
                    raise d.arg_err()
                acme = acme or {"module": "acme"}
                acme["ca"] = args[0]
            elif sub == "ca_root":
                args = d.remaining_args()
                if len(args) != 1:
                    raise d.arg_err()
                acme = acme or {"module": "acme"}
                acme.setdefault("trusted_roots_pem_files", []).append(args[0])
            elif sub == "key_type":
                args = d.remaining_args()
                if len(args) != 1:
                    raise d.arg_err()
                key_type = args[0]
            elif sub == "on_demand":
                if d.next_arg():
                    raise d.arg_err()
                on_demand = True
            elif sub == "eab":
                args = d.remaining_args()
                if len(args) != 2:
                    raise d.arg_err()
                acme = acme or {"module": "acme"}
                acme["external_account"] = {"key_id": args[0], "mac_key": args[1]}
            elif sub == "dns":
                acme = acme or {"module": "acme"}
                challenges = acme.setdefault("challenges", {})
                challenges.setdefault("dns", {})["provider"] = parse_dns_provider(d)
            elif sub == "client_auth":
                policy["client_authentication"] = _client_auth(d)
            elif sub == "insecure_secrets_log":
                if not d.next_arg():
                    raise d.arg_err()
                policy["insecure_secrets_log"] = d.val
            elif sub == "issuer":
                if not d.next_arg():
                    raise d.arg_err()
                issuers.append(parse_issuer(d))
            elif sub == "get_certificate":
                if not d.next_arg():
                    raise d.arg_err()
                managers.append(parse_cert_manager(d))
            else:
                d.fail(f"unknown subdirective: {sub}")
        if not first and not has_block:
            raise d.arg_err()
    values: list[ConfigValue] = []
    if file_loader:
        values.append(ConfigValue("tls.cert_loader", file_loader))
    if issuers and (acme is not None or internal):
        d.fail(
            "cannot mix issuer subdirective (explicit issuers) with other "
            "issuer-specific subdirectives (implicit issuers)"
        )
    if acme is not None and internal:
        d.fail("cannot create both ACME and internal certificate issuers")
    if issuers:
        values += [ConfigValue("tls.cert_issuer", issuer) for issuer in issuers]
    elif acme is not None:
        if "ca" in acme:
            values.append(ConfigValue("tls.cert_issuer", acme))
        else:
            # Caddy's defaults: Let's Encrypt, then ZeroSSL, both with these settings.
            values.append(ConfigValue("tls.cert_issuer", acme))
            values.append(ConfigValue("tls.cert_issuer", {**acme, "module": "zerossl"}))
    elif internal:
        values.append(ConfigValue("tls.cert_issuer", {"module": "internal"}))
    if key_type:
        values.append(ConfigValue("tls.key_type", key_type))
    if on_demand:
        values.append(ConfigValue("tls.on_demand", True))
    values += [ConfigValue("tls.cert_manager", manager) for manager in managers]
    if any_tag:
        policy["certificate_selection"] = {"any_tag": any_tag}
    values.append(ConfigValue("tls.connection_policy", policy))
    return values


def _client_auth(d: Dispenser) -> dict[str, Any]:
    """``client_auth { mode M  trusted_ca_cert B64  trusted_leaf_cert_file F ... }``."""
    auth: dict[str, Any] = {}
    nesting = d.nesting
    while d.next_block(nesting):
        sub = d.val
        if sub == "mode":
            args = d.remaining_args()
            if len(args) != 1:
                raise d.arg_err()
            auth["mode"] = args[0]
        elif sub in ("trusted_ca_cert", "trusted_leaf_cert"):
            if not d.next_arg():
                raise d.arg_err()
            auth.setdefault(sub + "s", []).append(d.val)
        elif sub in ("trusted_ca_cert_file", "trusted_leaf_cert_file"):
            if not d.next_arg():
                raise d.arg_err()
            key = sub.removesuffix("_file") + "s"
            auth.setdefault(key, []).append(_pem_certificate_b64(d, d.val))
        else:
            d.fail(f"unknown subdirective for client_auth: {sub}")
    return auth


def _pem_certificate_b64(d: Dispenser, filename: str) -> str:
    """The first PEM CERTIFICATE block of ``filename`` as base64 DER (Caddy reads
    the file at adapt time)."""
    import base64
    import ssl

    try:
        with open(filename, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        d.fail(f"open {filename}: {exc.strerror}")
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        d.fail(f"no CERTIFICATE pem block found in {filename}")
    der = ssl.PEM_cert_to_DER_cert(text[begin : end + len("-----END CERTIFICATE-----")])
    return base64.b64encode(der).decode()


_LOG_OUTPUTS = ("stdout", "stderr", "discard")


@directive("log")
def parse_log(h: Helper) -> list[ConfigValue]:
    return parse_log_segment(h, None)


def parse_log_segment(h: Helper, global_names: set[str] | None) -> list[ConfigValue]:
    """Site ``log`` (names it ``logN``) or the global ``log [name]`` option."""
    d = h.d
    values: list[ConfigValue] = []
    while d.next():
        name = ""
        if global_names is not None:
            if d.next_arg():
                name = d.val
                if d.next_arg():
                    raise d.arg_err()
            else:
                name = "default"
            if name in global_names:
                d.fail(f"duplicate global log option for: {name}")
            global_names.add(name)
        elif d.next_arg():
            raise d.arg_err()
        log: dict[str, Any] = {}
        while d.next_block(0):
            sub = d.val
            if sub == "output":
                if not d.next_arg():
                    raise d.arg_err()
                log["writer"] = _log_writer(h)
            elif sub == "format":
                if not d.next_arg():
                    raise d.arg_err()
                log["encoder"] = _log_encoder(h)
            elif sub == "level":
                if not d.next_arg():
                    raise d.arg_err()
                log["level"] = d.val
                if d.next_arg():
                    raise d.arg_err()
            elif sub in ("include", "exclude"):
                if global_names is None:
                    raise d.arg_err()
                log.setdefault(sub, []).extend(d.remaining_args())
            else:
                d.fail(f"unrecognized subdirective: {sub}")
        value: tuple[str, dict[str, Any]] = ("", {})
        if log:
            if global_names is not None:
                value = (name, log)
            else:
                counter = int(h.ctx.state.get("logCounter", 0))
                name = f"log{counter}"
                log["include"] = [f"http.log.access.{name}"]
                h.ctx.state["logCounter"] = counter + 1
                value = (name, log)
        values.append(ConfigValue("custom_log", value))
    return values


def _log_writer(h: Helper) -> dict[str, Any]:
    d = h.d
    name = d.val
    out: dict[str, Any] = {"output": name}
    if name in _LOG_OUTPUTS:
        return out
    if name == "file":
        if not d.next_arg():
            raise d.arg_err()
        out["filename"] = d.val
        if d.next_arg():
            raise d.arg_err()
        nesting = d.nesting
        while d.next_block(nesting):
            sub = d.val
            if sub == "roll_disabled":
                out["roll"] = False
            elif sub in ("roll_size", "roll_keep", "roll_keep_for", "roll_local_time"):
                _roll_option(h, out, sub)
            else:
                d.fail(f"unrecognized subdirective '{sub}'")
        return out
    if name == "net":
        if not d.next_arg():
            raise d.arg_err()
        out["address"] = d.val
        return out
    d.fail(f"getting module named 'caddy.logging.writers.{name}': module not registered")


def _roll_option(h: Helper, out: dict[str, Any], sub: str) -> None:
    d = h.d
    if sub == "roll_local_time":
        out["roll_local_time"] = True
        return
    if not d.next_arg():
        raise d.arg_err()
    try:
        if sub == "roll_size":
            size = parse_bytes(d.val)
            out["roll_size_mb"] = -(-size // (1024 * 1024))
        elif sub == "roll_keep":
            out["roll_keep"] = atoi(d.val)
        else:
            out["roll_keep_days"] = -(-parse_duration(d.val) // (24 * 3600 * 10**9))
    except ValueError as exc:
        d.fail(str(exc))


def _log_encoder(h: Helper) -> dict[str, Any]:
    return log_encoder(h.d)


def log_encoder(d: Dispenser) -> dict[str, Any]:
    """At ``format NAME``'s name token: that encoder module from its segment."""
    name = d.val
    if name not in ("console", "json", "filter", "single_field"):
        d.fail(f"getting module named 'caddy.logging.encoders.{name}': module not registered")
    if name == "filter":
        return parse_filter_encoder(Dispenser(d.next_segment()), log_encoder)
    out: dict[str, Any] = {"format": name}
    nesting = d.nesting
    while d.next_block(nesting):
        sub = d.val
        if not d.next_arg():
            raise d.arg_err()
        out[sub] = d.val
    return out
