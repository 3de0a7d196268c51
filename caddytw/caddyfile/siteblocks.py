"""What the adapter works on between parsing and JSON: a site block with its addresses
and piled directive results, and the blocks that share one listener set (a server).

Its own module so that the parts of the adapter (the ``tls`` app builder among them)
read these without importing the adapter back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from caddytw.config.netaddr import join_host_port

from .addresses import Address
from .directives import ConfigValue
from .parser import ServerBlock


@dataclass
class SiteBlock:
    """A site block (restricted to the keys sharing one listener set)."""

    block: ServerBlock
    keys: list[str]
    addrs: list[Address]
    pile: dict[str, list[ConfigValue]]
    origin: int

    def hosts(self) -> list[str]:
        out: list[str] = []
        for a in self.addrs:
            if a.host == "":
                return []
            if a.host not in out:
                out.append(a.host)
        return out

    def log_hosts(self) -> list[str]:
        out: list[str] = []
        for a in self.addrs:
            if a.host == "":
                continue
            h = join_host_port(a.host, a.port) if a.port and a.port not in ("80", "443") else a.host
            if h not in out:
                out.append(h)
        return out

    def hosts_not_http(self, http_port: str) -> list[str]:
        out: list[str] = []
        for a in self.addrs:
            if a.host and a.scheme != "http" and a.port != http_port and a.host not in out:
                out.append(a.host)
        return out


@dataclass
class Pairing:
    """The site blocks served by one server: those sharing the same listener addresses."""

    addresses: list[str]
    blocks: list[SiteBlock] = field(default_factory=list)
