"""Alt-Svc announcement (:class:`caddytw.http.site.CaddySite`): value format, which
requests get it, and that the site builds plain requests until HTTP/3 listens."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from caddytw.http.request import CaddyRequest
from caddytw.http.site import AltSvcRequests, CaddySite, alt_svc_value
from caddytw.server.build import build_app


class FakeRequest:
    def __init__(self, channel: Any, queued: bool = False) -> None:
        self.channel = channel
        self.responseHeaders = Headers()

    def getHost(self) -> IPv4Address:
        return self.channel.host


class Channel:
    def __init__(self, port: int, protocol_name: str = "h1") -> None:
        self.host = IPv4Address("TCP", "127.0.0.1", port)
        self.protocol_name = protocol_name


def site() -> CaddySite:
    config = {"apps": {"http": {"servers": {"s": {"listen": [":0"]}}}}}
    return build_app(config, Clock()).servers[0].site


def test_value() -> None:
    assert alt_svc_value(443) == b'h3=":443"; ma=2592000'


def test_port_of_arrival_else_first() -> None:
    factory = AltSvcRequests(FakeRequest, [8443, 9443])
    on_9443 = factory(Channel(9443))  # type: ignore[arg-type]
    assert on_9443.responseHeaders.getRawHeaders(b"alt-svc") == [b'h3=":9443"; ma=2592000']
    elsewhere = factory(Channel(8080))  # type: ignore[arg-type]
    assert elsewhere.responseHeaders.getRawHeaders(b"alt-svc") == [b'h3=":8443"; ma=2592000']


def test_not_on_http3_streams() -> None:
    request = AltSvcRequests(FakeRequest, [1])(Channel(1, "h3"))  # type: ignore[arg-type]
    assert request.responseHeaders.getRawHeaders(b"alt-svc") is None


def test_site_builds_plain_requests_until_h3_listens() -> None:
    built = site()
    assert built.requestFactory is CaddyRequest
    built.announce_h3(8443)
    built.announce_h3(9443)
    built.announce_h3(8443)
    assert isinstance(built.requestFactory, AltSvcRequests)
    assert built.requestFactory.ports == built.h3_ports == [8443, 9443]


def test_public_names_exist() -> None:
    import caddytw.wire.h3

    for name in caddytw.wire.h3.__all__:
        assert getattr(caddytw.wire.h3, name) is not None
