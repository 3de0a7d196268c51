"""The server's own request class (issue 18): twisted.web's ``IRequest`` in full, none of
twisted.web's ``Request`` underneath, and the same answers on the wire.

Every exchange here is real HTTP/1.1 through :class:`caddytw.wire.h1.FastHTTPChannel`
over an in-memory transport (:mod:`tests.support.memory`), or through twisted's own
``HTTPChannel`` for the embedding case (``Site(resource, requestFactory=CaddyRequest)``).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface.verify import verifyObject

from caddytw import build_site
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource
from tests.handlers.helpers import serve_resource
from tests.support.memory import MemoryServer, parse_response


class Scripted(LeafResource):
    """Answers with whatever ``script(request)`` does; keeps the request for a look."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.seen: list[CaddyRequest] = []

    def render(self, request: CaddyRequest) -> Any:
        self.seen.append(request)
        self.script(request)
        return NOT_DONE_YET


def _serve(script: Any) -> tuple[MemoryServer, Scripted]:
    resource = Scripted(script)
    return serve_resource(resource), resource


def test_not_twisted_webs_request_and_provides_irequest():
    assert not issubclass(CaddyRequest, http.Request)
    server, resource = _serve(lambda request: request.finish())
    server.request()
    request = resource.seen[0]
    assert verifyObject(IRequest, request)
    assert IRequest.providedBy(request)


def test_a_plain_request_allocates_no_instance_dict():
    """Everything a request needs per exchange lives in slots: a request that set no
    extra attribute has an empty ``__dict__`` (twisted.web's ``Request`` has ~30)."""
    server, resource = _serve(lambda request: _answer(request, 200, b"hi"))
    assert server.request().body == b"hi"
    assert resource.seen[0].__dict__ == {}


def _answer(request: CaddyRequest, status: int, body: bytes) -> None:
    request.setResponseCode(status)
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


_NAMES = st.from_regex(rb"\Ax-[a-z0-9]{1,12}\Z", fullmatch=True)
_VALUES = st.binary(min_size=1, max_size=40).filter(
    lambda value: (
        b"\r" not in value
        and b"\n" not in value
        and b"\x00" not in value
        and value.strip(b" \t") == value
    )
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_NAMES, _VALUES, max_size=8), st.binary(max_size=300))
def test_response_headers_reach_the_wire_as_set(headers, body):
    def script(request: CaddyRequest) -> None:
        for name, value in headers.items():
            request.setHeader(name, value)
        _answer(request, 200, body)

    server, _ = _serve(script)
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and rest == body
    lines = head.split(b"\r\n")[1:]
    for name, value in headers.items():
        found = [line.partition(b": ") for line in lines if line.lower().startswith(name + b":")]
        assert [(got.lower(), got_value) for got, _, got_value in found] == [(name, value)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10), st.sampled_from(["GET", "HEAD"]))
def test_bodies_without_a_length_are_chunked(chunks, method):
    def script(request: CaddyRequest) -> None:
        for chunk in chunks:
            request.write(chunk)
        request.finish()

    server, resource = _serve(script)
    target = f"{method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    raw = server.raw(target)
    head, _, rest = raw.partition(b"\r\n\r\n")
    if method == "HEAD":
        assert rest == b"" and b"Transfer-Encoding" not in head
        assert resource.seen[0].sentLength == 0
        return
    assert b"\r\nTransfer-Encoding: chunked" in head
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c) + b"0\r\n\r\n"
    assert rest == framed
    assert parse_response(raw).body == b"".join(chunks)
    assert resource.seen[0].sentLength == sum(map(len, chunks))


@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_statuses_drop_the_body(status):
    server, _ = _serve(lambda request: _write_then_finish(request, status))
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert rest == b"" and b"Transfer-Encoding" not in head


def _write_then_finish(request: CaddyRequest, status: int) -> None:
    request.setResponseCode(status)
    request.write(b"dropped")
    request.write(b"dropped too")
    request.finish()


def test_http10_without_length_is_not_chunked_and_closes():
    server, _ = _serve(lambda request: (request.write(b"a"), request.write(b"b"), request.finish()))
    raw = server.raw(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK") and rest == b"ab"
    assert b"Transfer-Encoding" not in head


def test_status_lines_carry_gos_reason_phrases():
    server, _ = _serve(lambda request: _answer(request, 418, b""))
    assert server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.1 418 I'm a teapot\r\n"
    )
    server, _ = _serve(lambda request: _answer(request, 599, b""))
    assert server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 599 ")


def test_lifecycle_errors_are_twisted_webs():
    """write after finish raises, finish twice warns, finish after the client left
    raises, write after the client left is dropped: what code written for twisted.web
    expects."""
    outcomes: dict[str, Any] = {}

    def script(request: CaddyRequest) -> None:
        _answer(request, 200, b"x")
        try:
            request.write(b"late")
        except RuntimeError as error:
            outcomes["write"] = error
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            request.finish()
        outcomes["finish"] = [str(w.message) for w in caught]

    server, _ = _serve(script)
    server.request()
    assert isinstance(outcomes["write"], RuntimeError)
    assert outcomes["finish"] == ["Warning! request.finish called twice."]


def test_notify_finish_fires_once_answered_and_fails_when_the_client_left():
    results: list[Any] = []

    def answered(request: CaddyRequest) -> None:
        request.notifyFinish().addBoth(results.append)
        _answer(request, 200, b"ok")

    server, _ = _serve(answered)
    server.request()
    assert results == [None]

    held: list[CaddyRequest] = []
    server, _ = _serve(held.append)
    lost: list[Failure] = []
    protocol = server.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    request = held[0]
    request.notifyFinish().addErrback(lost.append)
    protocol.connectionLost(Failure(ConnectionDone()))  # the client left unanswered
    assert [failure.type for failure in lost] == [ConnectionDone]
    assert request._disconnected and request.client_gone and request.channel is None
    request.write(b"nobody hears this")  # dropped, as twisted.web does
    with pytest.raises(RuntimeError):
        request.finish()


class _Watcher:
    """Holds its request and is told when it is lost (a proxy call's shape: the
    request holds the watcher's callback, the watcher holds the request)."""

    def __init__(self, request: CaddyRequest, lost: list[Failure]) -> None:
        self.request = request
        self.lost = lost
        request.when_lost(self.gone)

    def gone(self, reason: Failure) -> None:
        self.lost.append(reason)


def test_when_lost_is_called_only_for_an_exchange_lost_unanswered():
    lost: list[Failure] = []
    held: list[CaddyRequest] = []
    server, _ = _serve(held.append)
    protocol = server.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _Watcher(held[0], lost)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert [failure.type for failure in lost] == [ConnectionDone]

    answered: list[Failure] = []
    server, _ = _serve(lambda request: (_Watcher(request, answered), _answer(request, 200, b"")))
    protocol = server.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    protocol.connectionLost(Failure(ConnectionDone()))
    assert answered == []


def test_an_answered_request_lets_go_of_its_when_lost_callbacks():
    """No reference cycle survives the answer (request -> callback -> its holder ->
    request): what a request leaves behind is freed at once, never by the cyclic
    garbage collector (whose passes showed in the proxy's profile)."""
    import gc
    import weakref

    watchers: list[Any] = []

    def script(request: CaddyRequest) -> None:
        watchers.append(weakref.ref(_Watcher(request, [])))
        _answer(request, 200, b"ok")

    server, resource = _serve(script)
    enabled = gc.isenabled()
    gc.disable()
    try:
        server.request()
        resource.seen.clear()
        assert watchers[0]() is None
    finally:
        if enabled:
            gc.enable()


def test_a_second_producer_is_refused_until_the_first_is_unregistered():
    outcome: list[Any] = []

    class Producer:
        def resumeProducing(self) -> None:
            pass

        def pauseProducing(self) -> None:
            pass

        def stopProducing(self) -> None:
            pass

    def script(request: CaddyRequest) -> None:
        first, second = Producer(), Producer()
        request.registerProducer(first, True)
        try:
            request.registerProducer(second, True)
        except ValueError as error:
            outcome.append(error)
        request.unregisterProducer()
        request.registerProducer(second, True)
        outcome.append(request.producer is second)
        request.unregisterProducer()
        _answer(request, 200, b"done")

    server, _ = _serve(script)
    assert server.request().body == b"done"
    assert isinstance(outcome[0], ValueError) and outcome[1] is True


def test_twisted_web_extras_still_work():
    """Cookies, ETag and Last-Modified set the twisted.web way reach the head."""

    def script(request: CaddyRequest) -> None:
        request.addCookie(b"k", b"v", path=b"/")
        request.setETag(b'"tag"')
        request.setLastModified(0)
        assert request.getCookie(b"in") == b"1"
        assert request.getAllHeaders()[b"cookie"] == b"in=1"
        _answer(request, 200, b"c")

    server, _ = _serve(script)
    response = server.request(headers={"Cookie": "in=1"})
    assert response.body == b"c"
    assert response.headers["set-cookie"] == ["k=v; Path=/"]
    assert response.headers["etag"] == ['"tag"']
    assert response.headers["last-modified"] == ["Thu, 01 Jan 1970 00:00:00 GMT"]


class FormEcho(LeafResource):
    def render(self, request: CaddyRequest) -> bytes:
        pairs = sorted((k.decode(), [v.decode() for v in vs]) for k, vs in request.args.items())
        return repr(pairs).encode()


def test_embedded_in_twisteds_own_site_with_form_bodies():
    """twisted's ``HTTPChannel`` collects the body and parses a urlencoded POST into
    ``args``, as it did for twisted.web's request."""
    site = Site(FormEcho(), requestFactory=CaddyRequest)
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
    )
    protocol.makeConnection(transport)
    body = b"a=1&b=2&a=3"
    protocol.dataReceived(
        b"POST /?q=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    response = parse_response(transport.value())
    protocol.connectionLost(Failure(ConnectionError("done")))
    assert response.status == 200
    assert response.body == repr([("a", ["1", "3"]), ("b", ["2"]), ("q", ["0"])]).encode()


class HeadAware(LeafResource):
    """Says how long its GET body is and answers a HEAD with no bytes (as the HTTP-01
    gate does): the length it set must survive."""

    def render(self, request: CaddyRequest) -> bytes:
        request.setHeader(b"content-length", b"5")
        return b"" if request.method == b"HEAD" else b"hello"


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_a_root_resources_bytes_answer_keeps_its_length_for_head(method):
    site = Site(HeadAware(), requestFactory=CaddyRequest)
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(method + b" / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = transport.value().partition(b"\r\n\r\n")
    protocol.connectionLost(Failure(ConnectionDone()))
    assert b"\r\nContent-Length: 5" in head
    assert rest == (b"hello" if method == b"GET" else b"")


class TwistedHelpers(LeafResource):
    """Uses the rarer ``IRequest`` members a twisted.web resource may call."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def render(self, request: CaddyRequest) -> bytes:
        session = request.getSession()
        self.seen.update(
            same_session=request.getSession() is session,
            url=str(request.URLPath()),
            host=request.getRequestHostname(),
            credentials=(request.getUser(), request.getPassword()),
        )
        request.redirect(b"/elsewhere")
        session.expire()
        return b""


def _twisteds_site(resource: LeafResource) -> Any:
    return Site(resource, requestFactory=CaddyRequest)


def _caddy_site(resource: LeafResource) -> Any:
    """A server's own site (not a twisted.web.server ``Site``: sessions come from that
    module only when asked for), serving ``resource`` as its root."""
    server = {"listen": ["127.0.0.1:0"], "routes": []}
    site = build_site({"apps": {"http": {"servers": {"s": server}}}})
    site.resource = resource
    return site


@pytest.mark.parametrize("make_site", [_twisteds_site, _caddy_site])
def test_the_rest_of_irequest_works_on_twisteds_own_site_and_ours(make_site):
    resource = TwistedHelpers()
    site = make_site(resource)
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
    protocol.makeConnection(transport)
    protocol.dataReceived(
        b"GET /a HTTP/1.1\r\nHost: example.com:8080\r\nAuthorization: Basic dTpw\r\n\r\n"
    )
    response = parse_response(transport.value())
    protocol.connectionLost(Failure(ConnectionDone()))
    assert resource.seen == {
        "same_session": True,
        "url": "http://example.com:8080/",
        "host": b"example.com",
        "credentials": (b"u", b"p"),
    }
    assert response.status == 302 and response.headers["location"] == ["/elsewhere"]
    assert response.header("set-cookie").startswith("TWISTED_SESSION=")
