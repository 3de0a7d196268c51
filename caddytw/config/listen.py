"""Caddy listener addresses: ``[network/]host:port[-port]``, and ``fd/N`` / ``fdgram/N``
(a socket inherited from the parent process, as systemd socket activation passes it)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from caddytw.config.errors import ConfigError

_NETWORKS = {"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix", "fd", "fdgram"}
#: Inherited descriptors: a stream socket (HTTP/1, HTTP/2) or a datagram one (HTTP/3).
FD_NETWORKS = ("fd", "fdgram")
_ENV = re.compile(r"\{env\.([^{}]+)\}")


@dataclass(frozen=True)
class ListenAddress:
    """One socket to bind. ``host`` is empty for "every interface"."""

    network: str
    host: str
    port: int

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def descriptor(self) -> int:
        """The inherited file descriptor of an ``fd``/``fdgram`` address.

        Checked when the listener opens, not at load: as in Caddy, the number usually
        comes from ``{env.*}`` of the process that starts, not of the one validating."""
        if not self.host.isdigit():
            raise ValueError(f"{self.network}/{self.host}: not a file descriptor number")
        return int(self.host)


def parse_listen(text: str, path: str) -> list[ListenAddress]:
    """Expand one listen string (a port range gives several addresses)."""
    network = "tcp"
    rest = text
    if "/" in text.split(":", 1)[0] or text.startswith("unix/"):
        network, _, rest = text.partition("/")
        if network not in _NETWORKS:
            raise ConfigError(path, f"unsupported network type {network!r}")
    if network == "unix":
        raise ConfigError(path, "unix socket listeners are not supported by caddytw")
    if network in FD_NETWORKS:
        # Caddy fills in global placeholders ({env.*}) of listen addresses at load.
        return [ListenAddress(network, _ENV.sub(lambda m: os.environ.get(m[1], ""), rest), 0)]
    if rest.startswith("["):
        end = rest.find("]")
        if end == -1 or not rest[end + 1 :].startswith(":"):
            raise ConfigError(path, f"invalid listen address {text!r}")
        host, ports = rest[1:end], rest[end + 2 :]
    else:
        host, colon, ports = rest.rpartition(":")
        if not colon:
            raise ConfigError(path, f"invalid listen address {text!r}: missing port")
    start_text, dash, end_text = ports.partition("-")
    try:
        start = int(start_text)
        end = int(end_text) if dash else start
    except ValueError:
        raise ConfigError(path, f"invalid port range {ports!r}") from None
    if not (0 <= start <= 65535 and 0 <= end <= 65535) or end < start:
        raise ConfigError(path, f"invalid port range {ports!r}")
    if end - start > 10000:
        raise ConfigError(path, f"port range {ports!r} is too large")
    return [ListenAddress(network, host, port) for port in range(start, end + 1)]
