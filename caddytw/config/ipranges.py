"""IP ranges in configs (``remote_ip``, ``trusted_proxies``) and membership tests."""

from __future__ import annotations

import ipaddress
from typing import Any

from caddytw.config.errors import ConfigError
from caddytw.config.reader import expect_str_list, join_path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["PRIVATE_RANGES", "IPNetwork", "ip_in", "parse_ranges"]


def parse_ranges(values: Any, path: str) -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for index, text in enumerate(expect_str_list(values, path)):
        if text == "private_ranges":
            networks.extend(PRIVATE_RANGES)
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(join_path(path, index), f"invalid IP or CIDR {text!r}") from None
    return networks


PRIVATE_RANGES: list[IPNetwork] = [
    ipaddress.ip_network(n)
    for n in (
        "192.168.0.0/16",
        "172.16.0.0/12",
        "10.0.0.0/8",
        "127.0.0.0/8",
        "fd00::/8",
        "::1/128",
    )
]


def ip_in(address: str, networks: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
