"""Caddy listener addresses: ``[network/]host:port[-port]``."""

from __future__ import annotations

from dataclasses import dataclass

from caddytw.config.errors import ConfigError

_NETWORKS = {"tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "unix"}


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
