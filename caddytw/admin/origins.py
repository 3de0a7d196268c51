"""Which ``Host`` and ``Origin`` values the admin API accepts (DNS rebinding and
cross-site mitigation, as Caddy's ``checkHost``/``checkOrigin``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from caddytw.config.model import AdminConfig

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class AdminAddress:
    """A parsed ``admin.listen``: ``host:port``, ``tcp/host:port`` or ``unix//path``."""

    network: str
    host: str
    port: int
    path: str = ""

    @property
    def is_wildcard(self) -> bool:
        return self.network == "tcp" and self.host in WILDCARD_HOSTS

    @property
    def bind_host(self) -> str:
        return "127.0.0.1" if self.host == "localhost" else self.host.strip("[]")

    @property
    def display(self) -> str:
        if self.network == "unix":
            return f"unix/{self.path}"
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def parse_admin_listen(text: str) -> AdminAddress:
    """Parse ``admin.listen``; raises ValueError with a readable message."""
    network, slash, rest = text.partition("/")
    if not slash or network not in ("tcp", "tcp4", "tcp6", "unix"):
        network, rest = "tcp", text
    if network == "unix":
        if not rest:
            raise ValueError(f"missing socket path in {text!r}")
        return AdminAddress("unix", "", 0, rest)
    host, colon, port_text = rest.rpartition(":")
    if not colon:
        raise ValueError(f"missing port in admin address {text!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port {port_text!r} in admin address {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range in admin address {text!r}")
    return AdminAddress("tcp", host.strip("[]") if host.startswith("[") else host, port)


def allowed_hosts(config: AdminConfig, address: AdminAddress) -> set[str]:
    """``host:port`` values a request may name (Caddy's default origins, or ``origins``)."""
    if config.origins:
        return {_host_of(origin) for origin in config.origins}
    if address.network == "unix":
        return {""}
    if address.is_wildcard:
        return set()
    port = address.port
    return {f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"}


def _host_of(origin: str) -> str:
    if "//" not in origin:
        origin = "//" + origin
    return urlsplit(origin).netloc.lower()


def check(
    config: AdminConfig, address: AdminAddress, host: str | None, origin: str | None
) -> str | None:
    """Why the request must be refused (403), or None when it may proceed."""
    allowed = allowed_hosts(config, address)
    enforce_host = not address.is_wildcard and address.network != "unix"
    if enforce_host and (host or "").lower() not in allowed:
        return f"host not allowed: {host or ''}"
    if origin is None or origin == "":
        if config.enforce_origin:
            return "missing required Origin header"
        return None
    if not allowed and not config.enforce_origin:
        return None
    if _host_of(origin) not in allowed:
        return f"client is not allowed to access from origin '{origin}'"
    return None
