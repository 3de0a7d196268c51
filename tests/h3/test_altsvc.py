"""Alt-Svc announcement: value format and which requests get it."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.web.http_headers import Headers

from caddytw.wire.h3.altsvc import AltSvcRequestFactory, advertise_h3, alt_svc_value
from caddytw.wire.h3.stream import H3Stream


class FakeRequest:
    def __init__(self, channel: Any, queued: bool = False) -> None:
        self.channel = channel
        self.responseHeaders = Headers()

    def getHost(self) -> IPv4Address:
        return self.channel.host


class Channel:
    protocol_name = "h1"

    def __init__(self, port: int) -> None:
        self.host = IPv4Address("TCP", "127.0.0.1", port)


class Site:
    requestFactory = FakeRequest


def test_value() -> None:
    assert alt_svc_value(443) == b'h3=":443"; ma=2592000'


def test_port_of_arrival_else_first() -> None:
    site = Site()
    factory = advertise_h3(site, [8443, 9443])
    assert site.requestFactory is factory
    on_9443 = site.requestFactory(Channel(9443))
    assert on_9443.responseHeaders.getRawHeaders(b"alt-svc") == [b'h3=":9443"; ma=2592000']
    elsewhere = site.requestFactory(Channel(8080))
    assert elsewhere.responseHeaders.getRawHeaders(b"alt-svc") == [b'h3=":8443"; ma=2592000']


def test_advertising_twice_extends_one_wrapper() -> None:
    site = Site()
    first = advertise_h3(site, [1])
    second = advertise_h3(site, [1, 2])
    assert first is second
    assert isinstance(site.requestFactory, AltSvcRequestFactory)
    assert site.requestFactory.ports == [1, 2]


def test_not_on_http3_streams() -> None:
    stream = H3Stream.__new__(H3Stream)  # only its type matters to the factory
    stream.host = IPv4Address("UDP", "127.0.0.1", 1)  # type: ignore[attr-defined]
    request = AltSvcRequestFactory(FakeRequest, [1])(stream)
    assert request.responseHeaders.getRawHeaders(b"alt-svc") is None


def test_public_names_exist() -> None:
    import caddytw.wire.h3

    for name in caddytw.wire.h3.__all__:
        assert getattr(caddytw.wire.h3, name) is not None
