"""Go's ``net.JoinHostPort`` / ``net.SplitHostPort`` and Caddy's port-range check.

Site addresses, listener addresses, request Hosts and proxy upstreams all need Go's
exact splitting rules (brackets for IPv6, errors for ambiguous colons): one
implementation, and :func:`host_and_port` for where Caddy forgives what Go refuses.
"""

from __future__ import annotations

__all__ = ["host_and_port", "join_host_port", "split_host_port", "uses_port_other_than"]


def join_host_port(host: str, port: str) -> str:
    """Brackets around hosts containing ``:`` (IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(addr: str) -> tuple[str, str] | None:
    """``(host, port)``, or None where Go returns an error."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0 or not addr[end + 1 :].startswith(":"):
            return None
        host, port = addr[1:end], addr[end + 2 :]
        if ":" in port:
            return None
        return host, port
    idx = addr.rfind(":")
    if idx < 0:
        return None
    host, port = addr[:idx], addr[idx + 1 :]
    if ":" in host:
        return None
    return host, port


def host_and_port(hostport: str) -> tuple[str, str]:
    """What Caddy makes of a request's Host (``MatchHost``, ``{http.request.host}``):
    Go's split, or, where Go refuses it (no port, ambiguous colons), the whole value as
    the host, without the brackets of an IPv6 literal, and no port."""
    split = split_host_port(hostport)
    if split is not None:
        return split
    if hostport.startswith("[") and hostport.endswith("]"):
        return hostport[1:-1], ""
    return hostport, ""


def uses_port_other_than(addresses: list[str], port: str) -> bool:
    """True if some listener (``host:port`` or ``host:lo-hi``) excludes ``port``."""
    try:
        want = int(port)
    except ValueError:
        return False
    for addr in addresses:
        lo, _, hi = addr.rpartition(":")[2].partition("-")
        try:
            start, end = int(lo), int(hi or lo)
        except ValueError:
            continue
        if want < start or want > end:
            return True
    return False
