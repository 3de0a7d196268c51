"""Twisted's ``Agent`` over a connector's endpoints: what active health probes send
their requests with (proxied requests use :mod:`.lean` and :mod:`.h2client`).

A module of its own, imported by :meth:`.transport.UpstreamConnector.agent`: a process
whose proxies probe nothing never imports twisted.web.client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer


class EndpointSource(Protocol):
    """What the Agent's endpoints come from (``transport.UpstreamConnector``), named by
    shape so this module does not import the one that imports it."""

    def endpoint(self, host: str, port: int, on_connection: Callable[[Any], None]) -> Any: ...


class UpstreamPool(HTTPConnectionPool):
    """A keep-alive pool that reports each handed-out connection to its attempt."""

    def getConnection(self, key: Any, endpoint: Any) -> Any:
        d = super().getConnection(key, endpoint)
        hook = getattr(endpoint, "on_connection", None)
        if hook is not None:

            def report(protocol: Any) -> Any:
                hook(protocol)
                return protocol

            d.addCallback(report)
        return d


@implementer(IAgentEndpointFactory)
class AttemptEndpoints:
    """The Agent's endpoints for one attempt: the connector's, which tell
    ``on_connection`` when the pool hands this attempt a connection."""

    def __init__(self, upstreams: EndpointSource, on_connection: Callable[[Any], None]) -> None:
        self.upstreams = upstreams
        self.on_connection = on_connection

    def endpointForURI(self, uri: Any) -> Any:
        host = uri.host.decode("idna")
        if host.startswith("["):
            host = host[1:-1]
        return self.upstreams.endpoint(host, uri.port, self.on_connection)
