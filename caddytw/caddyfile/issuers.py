"""``issuer acme|zerossl|internal { ... }``: certificate issuer modules as Caddy
2.6.2's Caddyfile unmarshalers write them (used by the ``tls`` directive and
the ``cert_issuer`` global option)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .dispenser import Dispenser
from .errors import unregistered
from .values import atoi, parse_duration

Issuer = dict[str, Any]


def _duration(d: Dispenser, what: str) -> int:
    try:
        return parse_duration(d.val)
    except ValueError as exc:
        d.fail(f"invalid {what} duration {d.val}: {exc}")


def _one(d: Dispenser) -> str:
    args = d.remaining_args()
    if len(args) != 1:
        raise d.arg_err()
    return args[0]


def _challenge(iss: Issuer, kind: str) -> dict[str, Any]:
    challenges: dict[str, Any] = iss.setdefault("challenges", {})
    node: dict[str, Any] = challenges.setdefault(kind, {})
    return node


def _port(d: Dispenser) -> int:
    if not d.next_arg():
        raise d.arg_err()
    try:
        return atoi(d.val)
    except ValueError as exc:
        d.fail(f"invalid port {d.val}: {exc}")


def _preferred_chains(d: Dispenser) -> dict[str, Any]:
    chains: dict[str, Any] = {}
    if d.next_arg():
        if d.val != "smallest":
            d.fail(f"Invalid argument '{d.val}'")
        chains["smallest"] = True
        if d.next_arg():
            raise d.arg_err()
        if d.next_block(d.nesting):
            d.fail("No more options are accepted when using the 'smallest' option")
        return chains
    nesting = d.nesting
    while d.next_block(nesting):
        sub = d.val
        if sub not in ("root_common_name", "any_common_name"):
            d.fail(f"Received unrecognized parameter '{sub}'")
        other = "any_common_name" if sub == "root_common_name" else "root_common_name"
        args = d.remaining_args()
        if not args:
            raise d.arg_err()
        if other in chains:
            d.fail(f"Can't set {sub} when {other} is already set")
        chains[sub] = args
    return chains


def parse_dns_provider(d: Dispenser) -> dict[str, Any]:
    """``dns NAME ...`` (at the ``dns`` token): that DNS provider module. ``rfc2136``
    is built in (the ``caddy-dns/rfc2136`` plugin's syntax); any other name is Caddy's
    "module not registered" error, as in a Caddy built without it."""
    if not d.next_arg():
        raise d.arg_err()
    name = d.val
    parse = DNS_PROVIDERS.get(name)
    if parse is None:
        d.fail(unregistered(f"dns.providers.{name}"))
    return {"name": name, **parse(Dispenser(d.next_segment()))}


def _rfc2136(d: Dispenser) -> dict[str, Any]:
    """``rfc2136 { key_name N  key_alg A  key SECRET  server HOST:PORT }``."""
    provider: dict[str, Any] = {}
    for sub in _block_keys(d, ("key_name", "key_alg", "key", "server"), "subdirective"):
        provider[sub] = _one(d)
    return provider


def _block_keys(d: Dispenser, allowed: tuple[str, ...], what: str) -> Iterator[str]:
    """``NAME { key value ... }`` with no arguments on the NAME line: each key in turn
    (the dispenser at it); an unknown key is Caddy's "unrecognized ..." error."""
    while d.next():
        if d.next_arg():
            raise d.arg_err()
        nesting = d.nesting
        while d.next_block(nesting):
            if d.val not in allowed:
                d.fail(f"unrecognized {what} '{d.val}'")
            yield d.val


DNS_PROVIDERS: dict[str, Callable[[Dispenser], dict[str, Any]]] = {"rfc2136": _rfc2136}


def unmarshal_acme(d: Dispenser, iss: Issuer) -> None:
    """The ``ACMEIssuer`` fields into ``iss`` (also the embedded part of ``zerossl``)."""
    nesting = d.nesting
    while d.next_block(nesting):
        sub = d.val
        if sub == "dir":
            if "ca" in iss:
                d.fail(f"directory is already specified: {iss['ca']}")
            iss["ca"] = _one(d)
        elif sub == "test_dir":
            iss["test_ca"] = _one(d)
        elif sub == "email":
            iss["email"] = _one(d)
        elif sub == "timeout":
            _one(d)
            iss["acme_timeout"] = _duration(d, "timeout")
        elif sub in ("disable_http_challenge", "disable_tlsalpn_challenge"):
            if d.next_arg():
                raise d.arg_err()
            _challenge(iss, "http" if "http" in sub else "tls-alpn")["disabled"] = True
        elif sub in ("alt_http_port", "alt_tlsalpn_port"):
            kind = "http" if "http_" in sub else "tls-alpn"
            _challenge(iss, kind)["alternate_port"] = _port(d)
        elif sub == "eab":
            args = d.remaining_args()
            if len(args) != 2:
                raise d.arg_err()
            iss["external_account"] = {"key_id": args[0], "mac_key": args[1]}
        elif sub == "trusted_roots":
            iss["trusted_roots_pem_files"] = d.remaining_args()
        elif sub == "dns":
            _challenge(iss, "dns")["provider"] = parse_dns_provider(d)
        elif sub in ("propagation_delay", "propagation_timeout"):
            if not d.next_arg():
                raise d.arg_err()
            forever = sub == "propagation_timeout" and d.val == "-1"
            _challenge(iss, "dns")[sub] = -1 if forever else _duration(d, sub)
        elif sub == "resolvers":
            resolvers = d.remaining_args()
            if not resolvers:
                raise d.arg_err()
            _challenge(iss, "dns")["resolvers"] = resolvers
        elif sub == "dns_challenge_override_domain":
            _challenge(iss, "dns")["override_domain"] = _one(d)
        elif sub == "preferred_chains":
            iss["preferred_chains"] = _preferred_chains(d)
        else:
            d.fail(f"unrecognized ACME issuer property: {sub}")


def _acme_like(module: str, argument: str) -> Callable[[Dispenser], Issuer]:
    """``acme [ca]`` and ``zerossl [api_key]``: one optional argument, then the
    ACME issuer's block (ZeroSSL's issuer embeds it)."""

    def parse(d: Dispenser) -> Issuer:
        iss: Issuer = {"module": module}
        while d.next():
            if d.next_arg():
                iss[argument] = d.val
                if d.next_arg():
                    raise d.arg_err()
            unmarshal_acme(d, iss)
        return iss

    return parse


def _internal(d: Dispenser) -> Issuer:
    iss: Issuer = {"module": "internal"}
    while d.next():
        while d.next_block(0):
            sub = d.val
            if sub == "ca":
                iss["ca"] = _one(d)
            elif sub == "lifetime":
                if not d.next_arg():
                    raise d.arg_err()
                iss["lifetime"] = _duration(d, "lifetime")
            elif sub == "sign_with_root":
                if d.next_arg():
                    raise d.arg_err()
                iss["sign_with_root"] = True
    return iss


ISSUERS: dict[str, Callable[[Dispenser], Issuer]] = {
    "acme": _acme_like("acme", "ca"),
    "zerossl": _acme_like("zerossl", "api_key"),
    "internal": _internal,
}


def parse_issuer(d: Dispenser) -> Issuer:
    """At ``issuer NAME``'s name token: that issuer module from its segment."""
    name = d.val
    parse = ISSUERS.get(name)
    if parse is None:
        d.fail(unregistered(f"tls.issuance.{name}"))
    return parse(Dispenser(d.next_segment()))


def _http_getter(d: Dispenser) -> dict[str, Any]:
    manager: dict[str, Any] = {"via": "http"}
    while d.next():
        if not d.next_arg():
            raise d.arg_err()
        manager["url"] = d.val
        if d.next_arg():
            raise d.arg_err()
        if d.next_block(d.nesting):
            d.fail("block not allowed here")
    return manager


def _tailscale(d: Dispenser) -> dict[str, Any]:
    while d.next():
        if d.next_arg():
            raise d.arg_err()
    return {"via": "tailscale"}


CERT_MANAGERS: dict[str, Callable[[Dispenser], dict[str, Any]]] = {
    "http": _http_getter,
    "tailscale": _tailscale,
}


def parse_cert_manager(d: Dispenser) -> dict[str, Any]:
    """At ``get_certificate NAME``'s name token: that certificate manager module."""
    name = d.val
    parse = CERT_MANAGERS.get(name)
    if parse is None:
        d.fail(unregistered(f"tls.get_certificate.{name}"))
    return parse(Dispenser(d.next_segment()))


def parse_cert_issuer_option(d: Dispenser, existing: Any) -> list[Issuer]:
    """Global ``cert_issuer NAME {...}`` (repeatable: issuers accumulate)."""
    issuers: list[Issuer] = list(existing or [])
    while d.next():
        if not d.next():
            raise d.arg_err()
        issuers.append(parse_issuer(d))
    return issuers


def parse_acme_eab_option(d: Dispenser, _existing: Any) -> dict[str, str]:
    """Global ``acme_eab { key_id ...  mac_key ... }``."""
    eab: dict[str, str] = {}
    for key in _block_keys(d, ("key_id", "mac_key"), "parameter"):
        if not d.next_arg():
            raise d.arg_err()
        eab[key] = d.val
    return eab


def parse_preferred_chains_option(d: Dispenser, _existing: Any) -> dict[str, Any]:
    d.next()
    return _preferred_chains(d)


def parse_on_demand_option(d: Dispenser, _existing: Any) -> dict[str, Any]:
    """Global ``on_demand_tls { ask URL  interval D  burst N }``."""
    config: dict[str, Any] = {}
    for sub in _block_keys(d, ("ask", "interval", "burst"), "parameter"):
        if not d.next_arg():
            raise d.arg_err()
        if sub == "ask":
            config["ask"] = d.val
        elif sub == "interval":
            config.setdefault("rate_limit", {})["interval"] = _duration(d, "interval")
        else:
            try:
                config.setdefault("rate_limit", {})["burst"] = atoi(d.val)
            except ValueError as exc:
                d.fail(str(exc))
    if not config:
        d.fail("expected at least one config parameter for on_demand_tls")
    return config


def parse_acme_dns_option(d: Dispenser, _existing: Any) -> dict[str, Any]:
    d.next()
    return parse_dns_provider(d)
