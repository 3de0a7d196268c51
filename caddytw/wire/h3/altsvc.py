"""Advertise HTTP/3 on HTTP/1.1 and HTTP/2 responses (``Alt-Svc``), as Caddy does.

Caddy sets ``Alt-Svc: h3=":PORT"; ma=2592000`` on every response of a server running
HTTP/3 whose request came over HTTP/1 or HTTP/2, before its handlers run (so a
``headers`` handler can still change it). Here the hook sits in the site's request
factory: each new request gets the header unless its channel is an HTTP/3 stream.

Integration point: after the h3 listener of a site is bound, call
``advertise_h3(site, [bound_udp_port, ...])`` once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from caddytw.wire.channel import Channel

MAX_AGE = 2592000  # 30 days, quic-go's (and so Caddy's) value


def alt_svc_value(port: int, max_age: int = MAX_AGE) -> bytes:
    return b'h3=":%d"; ma=%d' % (port, max_age)


class AltSvcRequestFactory:
    """Wraps a site's request factory; remembers the HTTP/3 ports to announce."""

    def __init__(self, inner: Any, ports: Sequence[int]) -> None:
        self.inner = inner
        self.ports = list(ports)

    def __call__(self, channel: Channel, queued: bool = False) -> Any:
        request = self.inner(channel, queued=queued)
        if self.ports and channel.protocol_name != "h3":
            request.responseHeaders.setRawHeaders(b"alt-svc", [self.value_for(request)])
        return request

    def value_for(self, request: Any) -> bytes:
        """Announce the port the request came in on when h3 runs there (Caddy's h3
        listener shares the TLS listener's port), else the first h3 port."""
        arrived = getattr(request.getHost(), "port", None)
        port = arrived if arrived in self.ports else self.ports[0]
        return alt_svc_value(port)


def advertise_h3(site: Any, ports: Sequence[int]) -> AltSvcRequestFactory:
    """Make ``site`` announce HTTP/3 on ``ports`` in its non-HTTP/3 responses."""
    factory = site.requestFactory
    if isinstance(factory, AltSvcRequestFactory):
        factory.ports.extend(p for p in ports if p not in factory.ports)
        return factory
    wrapped = AltSvcRequestFactory(factory, ports)
    site.requestFactory = wrapped
    return wrapped
