"""Site addresses (``https://example.com:8443/path``) and their listeners.

Mirrors Caddy's ``ParseAddress``/``Normalize`` and the rule that picks a
listener port: explicit port, else the HTTP port for ``http://``, else the
HTTPS port.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from caddytw.config.netaddr import join_host_port, split_host_port

__all__ = ["Address", "listener_addresses", "parse_address"]


@dataclass(frozen=True)
class Address:
    original: str
    scheme: str = ""
    host: str = ""
    port: str = ""
    path: str = ""


class AddressError(ValueError):
    pass


def parse_address(text: str) -> Address:
    """Split a site address into scheme, host, port and path."""
    remaining = text[:4096].strip()
    original = remaining
    scheme = ""
    if "://" in remaining:
        scheme, remaining = remaining.split("://", 1)
    host_part, slash, path = remaining.partition("/")
    split = split_host_port(host_part) or split_host_port(host_part + ":")
    if split is None:
        host, port = host_part, ""
    else:
        host, port = split
    if port:
        body = port[1:] if port[:1] in "+-" else port
        if not body.isdigit():
            raise AddressError(
                f"invalid port '{port}': strconv.Atoi: parsing \"{port}\": invalid syntax"
            )
        if not 0 <= int(port) <= 65535:
            raise AddressError(f"port {int(port)} is out of range")
    return Address(original, scheme, host, port, "/" + path if slash else "")


def _lower_except_placeholders(text: str) -> str:
    out: list[str] = []
    escaped = in_ph = False
    for ch in text:
        if ch == "\\" and not escaped:
            escaped = True
            out.append(ch)
            continue
        if ch == "{" and not escaped:
            in_ph = True
        if ch == "}" and in_ph and not escaped:
            in_ph = False
        out.append(ch if in_ph else ch.lower())
        escaped = False
    return "".join(out)


def normalize(addr: Address) -> Address:
    host = addr.host.strip()
    try:
        ip = ipaddress.ip_address(host)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
            host = str(ip)
    except ValueError:
        pass
    return Address(
        addr.original,
        _lower_except_placeholders(addr.scheme),
        _lower_except_placeholders(host),
        addr.port,
        addr.path,
    )


def listener_addresses(
    addr: Address, http_port: str, https_port: str, binds: list[str]
) -> list[str]:
    """The sorted listener addresses one site key needs."""
    port = addr.port or (http_port if addr.scheme == "http" else https_port)
    if (addr.scheme == "http" and port == https_port) or (
        addr.scheme == "https" and port == http_port
    ):
        raise AddressError(f"[{addr.original}] scheme and port violate convention")
    out: set[str] = set()
    for bind in binds or [""]:
        network, slash, host = bind.partition("/")
        if not slash:
            network, host = "", bind
        host = host.strip("[]")
        if network.startswith("unix"):
            out.add(f"{network}/{host}")
            continue
        joined = join_host_port(host, port)
        out.add(f"{network}/{joined}" if network else joined)
    return sorted(out)
