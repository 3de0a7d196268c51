"""The ``reverse_proxy`` handler: pick an upstream, forward, stream back, retry, account.

One :class:`ProxyCall` per client request runs Caddy's loop: select an available
upstream (503 when there is none), try it, and on failure count it against the
upstream's passive health and decide whether to try again (``retries``,
``try_duration``, ``try_interval``; dial errors always, other failures only for GET or
``retry_match``). Failures answer 502, timeouts 504. A client that goes away cancels the
upstream request or drops the upstream connection mid-body.

What only some configs or requests use is imported when they do (every module a
process imports stays resident): the FastCGI transport, dynamic upstreams,
``handle_response``, ``rewrite`` and Upgrade tunnels.
"""

from __future__ import annotations

import random
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from caddytw.admin import upstreams as admin_upstreams
from caddytw.config.ipranges import ip_in
from caddytw.config.reader import ObjectReader
from caddytw.handlers.reverse_proxy.config import (
    PassiveHealthConfig,
    ProxyConfig,
    parse_proxy_config,
)
from caddytw.handlers.reverse_proxy.headers import (
    copy_headers,
    forward_fields,
    hop_by_hop_keys,
    merge_response_headers,
    strip_hop_by_hop,
    upgrade_type,
)
from caddytw.handlers.reverse_proxy.health import ActiveHealthChecker, HTTPProbe, PassiveHealth
from caddytw.handlers.reverse_proxy.lean import LeanResponse
from caddytw.handlers.reverse_proxy.sharedhealth import share_health
from caddytw.handlers.reverse_proxy.streaming import (
    ReplayableBodyProducer,
    ResponseRelay,
    StreamingBodyProducer,
    body_length,
    cooperator_for,
)
from caddytw.handlers.reverse_proxy.transport import DialError, UpstreamConnector
from caddytw.handlers.reverse_proxy.upstreams import (
    HostRegistry,
    Upstream,
    dial_placeholders,
    host_row,
    registry_of,
)
from caddytw.handlers.rewrite.requesturi import fill
from caddytw.http.body import BodyAborted, BodyTooLarge, collect_file
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer, dispatch, fail
from caddytw.http.errors import HandlerError
from caddytw.http.matchers import client_ip
from caddytw.http.placeholders import Template
from caddytw.http.request import NOT_DONE_YET, CaddyRequest
from caddytw.http.routing import LeafResource
from caddytw.http.sniff import name_untyped_body

if TYPE_CHECKING:
    from caddytw.handlers.reverse_proxy.dynamic import Source
    from caddytw.handlers.reverse_proxy.handle_response import ResponseHandler
    from caddytw.handlers.reverse_proxy.websocket import UpstreamSide

log = Logger()

NO_BODY_STATUSES = frozenset({204, 304})


class ProxyService(Service):
    """Starts and stops what a handler owns: health checks, pooled connections, its
    claim on the shared upstream table, and its rows in the admin API's upstream list
    (listed only while running, so a config that was only built lists nothing)."""

    def __init__(self, proxy: ReverseProxy, checker: ActiveHealthChecker | None) -> None:
        self.proxy = proxy
        self.checker = checker

    def startService(self) -> None:
        super().startService()
        admin_upstreams.register(self.rows)
        if self.checker is not None:
            self.checker.startService()

    def stopService(self) -> Any:
        super().stopService()
        admin_upstreams.unregister(self.rows)
        if self.checker is not None and self.checker.running:
            self.checker.stopService()
        self.proxy.passive.forget_all()
        for upstream in [*self.proxy.upstreams, *self.proxy.dynamic_upstreams.values()]:
            self.proxy.registry.release(upstream.dial)
        return self.proxy.connector.close()

    def rows(self) -> list[dict[str, Any]]:
        """The admin API's rows for this handler's upstreams (static and looked up)."""
        upstreams = [*self.proxy.upstreams, *self.proxy.dynamic_upstreams.values()]
        return [host_row(upstream.state) for upstream in upstreams]


class ReverseProxy(LeafResource):
    def __init__(
        self,
        config: ProxyConfig,
        registry: HostRegistry,
        reactor: Any,
        response_handlers: tuple[ResponseHandler, ...] = (),
        rewrite: tuple[Template | None, list[Any]] | None = None,
        dynamic: Source | None = None,
    ) -> None:
        self.config = config
        #: ``dynamic_upstreams``: the list comes from DNS per request; each address
        #: seen gets an :class:`Upstream` over the shared counters, kept until stop.
        self.dynamic = dynamic
        self.dynamic_upstreams: dict[str, Upstream] = {}
        self.response_handlers = response_handlers
        self.rewrite = rewrite
        self.registry = registry
        self.reactor = reactor
        passive = config.passive_health
        max_fails = passive.max_fails if passive and passive.fail_duration > 0 else None
        self._max_fails = max_fails
        self.upstreams = [
            Upstream(
                dial=u.dial,
                host=u.host,
                port=u.port,
                state=registry.acquire(u.dial),
                max_requests=u.max_requests or (passive.unhealthy_request_count if passive else 0),
                max_fails=max_fails,
                template=Template(u.dial) if u.templated else None,
                h2c=u.network == "unix+h2c",
            )
            for u in config.upstreams
            if not u.lookup_srv
        ]
        self.connector = UpstreamConnector(config.transport, reactor)
        self.cooperator = cooperator_for(reactor)
        self.passive = PassiveHealth(passive or PassiveHealthConfig(), reactor)
        #: Caddy sends no body when its ``rewrite`` makes the request a GET or HEAD.
        self.bodiless = _rewrites_to_bodiless(rewrite)
        transport = config.transport
        timeouts = [t for t in (transport.response_header_timeout, transport.read_timeout) if t]
        self.header_timeout = min(timeouts) if timeouts else None

    def upstreams_for(self, addresses: list[tuple[str, int]]) -> list[Upstream]:
        """The :class:`Upstream` of each looked-up address (made on first sight)."""
        result = []
        for host, port in addresses:
            dial = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            upstream = self.dynamic_upstreams.get(dial)
            if upstream is None:
                passive = self.config.passive_health
                upstream = self.dynamic_upstreams[dial] = Upstream(
                    dial=dial,
                    host=host,
                    port=port,
                    state=self.registry.acquire(dial),
                    max_requests=passive.unhealthy_request_count if passive else 0,
                    max_fails=self._max_fails,
                )
            result.append(upstream)
        return result

    def render(self, request: CaddyRequest) -> Answer:
        if self.config.transport.fastcgi is not None and "\x00" in request.decoded_path:
            # PHP may run a non-PHP file as code when a NUL cuts the path (Caddy #4574).
            raise HandlerError(400, "invalid request path")
        call = ProxyCall(self, request)
        body = request.body
        if call.bodiless or (body.length is not None and not (call.upgrade and body.length)):
            call.start()  # streamed (or no body)
        else:
            # A chunked body (the upstream request needs its length) or an Upgrade
            # request's body: collected first, bounded by the body's limit.
            collect_file(body).addCallbacks(call.start_with, call.body_failed)
        return NOT_DONE_YET

    def trusted(self, request: CaddyRequest) -> bool:
        """Is the peer a trusted proxy (handler's or server's ``trusted_proxies``)?"""
        server = getattr(getattr(request, "site", None), "caddy_server", None)
        server_ranges = getattr(server, "trusted_proxies", None)
        if not server_ranges:
            own = self.config.trusted_proxies
            return bool(own) and ip_in(request.remote_host, list(own))
        ranges = [*self.config.trusted_proxies, *server_ranges]
        return ip_in(request.remote_host, ranges)


class RequestView:
    """The live request as a :class:`SelectionRequest`; each value is computed only when
    a policy asks for it (random or round robin ask for nothing)."""

    def __init__(self, request: CaddyRequest, trusted: bool) -> None:
        self.request = request
        self.trusted = trusted

    @property
    def remote_host(self) -> str:
        return self.request.remote_host

    @cached_property
    def client_ip(self) -> str:
        return client_ip(self.request)

    @property
    def uri(self) -> str:
        return self.request.uri.decode("latin-1")

    @cached_property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.request.query_string, keep_blank_values=False)

    @cached_property
    def cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for part in self.header("cookie").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name not in cookies:
                cookies[name] = value
        return cookies

    @property
    def secure(self) -> bool:
        if self.request.isSecure():
            return True
        proto = self.header("x-forwarded-proto").split(",")[-1].strip()
        return self.trusted and proto == "https"

    def header(self, name: str) -> str:
        if name.lower() == "host":
            return self.request.request_hostport
        return self.request.header_text(name) or ""


#: ``request.scheme`` as the bytes ``X-Forwarded-Proto`` carries.
_SCHEMES = {"http": b"http", "https": b"https"}


def upstream_headers(request: CaddyRequest, trusted: bool) -> tuple[Headers, bytes | None]:
    """The request headers as the upstream gets them, and the Upgrade type if any."""
    raw = request.requestHeaders._rawHeaders
    upgrade = None
    if b"Connection" in raw and request.clientproto == b"HTTP/1.1":
        upgrade = upgrade_type(request.requestHeaders)
    scheme = request.scheme
    headers = Headers()
    headers._rawHeaders = forward_fields(
        raw,
        peer=request.remote_host.split("%", 1)[0].encode(),
        scheme=_SCHEMES.get(scheme) or scheme.encode("latin-1"),
        trusted=trusted,
    )
    if upgrade:
        headers.setRawHeaders(b"connection", [b"Upgrade"])
        headers.setRawHeaders(b"upgrade", [upgrade])
    return headers, upgrade


class _Attempt:
    """One try against one upstream: holds its request count until released, and hears
    how the upstream exchange goes (a :class:`~.lean.Receiver`: the lean client calls
    it directly; the other clients' Deferreds are wired to it)."""

    __slots__ = ("address", "call", "host", "port", "released", "started", "upstream")

    def __init__(
        self,
        call: ProxyCall,
        upstream: Upstream,
        started: float,
        dial: tuple[str, str, int] | None = None,
    ) -> None:
        self.call = call
        self.upstream = upstream
        self.started = started
        self.released = False
        #: What this try dials: the upstream's address with its placeholders filled in.
        self.address, self.host, self.port = dial or (upstream.dial, upstream.host, upstream.port)
        upstream.state.num_requests += 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.upstream.state.num_requests -= 1

    def upstream_connected(self, connection: Any) -> None:
        if not self.call.length:  # no body to send: the wait for the head starts now
            self.call._start_header_timer()

    def upstream_answered(self, response: LeanResponse) -> None:
        # What a Deferred chain did: a failure while answering counts as the attempt's.
        try:
            self.call._got_response(response, self)
        except BaseException:
            self.upstream_failed(Failure())

    def upstream_failed(self, reason: Failure) -> None:
        try:
            self.call._attempt_failed(reason, self)
        except BaseException:
            self.call._internal_error(Failure())

    def body_ended(self, reason: Failure | None) -> None:
        """The response body was relayed whole (None) or failed."""
        self.call._body_ended(reason, self)


class ProxyCall:
    """Proxies one client request (see the module docstring for the loop)."""

    # One per proxied request: slots make it cheaper to build, read and free.
    __slots__ = (
        "base_headers",
        "bodiless",
        "content",
        "gone",
        "header_timer",
        "last_error",
        "length",
        "method",
        "pending",
        "proxy",
        "reactor",
        "relay",
        "request",
        "retries",
        "retry_call",
        "started",
        "timed_out",
        "trusted",
        "tunnel",
        "upgrade",
        "uri",
    )

    def __init__(self, proxy: ReverseProxy, request: CaddyRequest) -> None:
        self.proxy = proxy
        self.request = request
        self.reactor = proxy.reactor
        self.started = self.reactor.seconds()
        self.retries = 0
        self.last_error: HandlerError | None = None
        self.gone = False
        self.timed_out = False
        #: The exchange (or Deferred) waiting for the response head: ``cancel`` abandons it.
        self.pending: Any = None
        self.relay: ResponseRelay | None = None
        self.tunnel: UpstreamSide | None = None
        self.retry_call: Any = None
        self.header_timer: Any = None
        self.trusted = proxy.trusted(request)
        self.base_headers, self.upgrade = upstream_headers(request, self.trusted)
        self.content: IO[bytes] | None = None  # a body collected before forwarding
        self.method, self.uri = upstream_target(request, proxy.rewrite)
        #: Caddy sends no body when its ``rewrite`` makes the request a GET or HEAD
        #: (``forward_auth``); the body stays unread for the handlers after the proxy.
        self.bodiless = proxy.bodiless
        self.length = 0 if self.bodiless else request.body.length or 0
        request.when_lost(self._client_gone)

    # -- the loop --------------------------------------------------------------------

    def start_with(self, content: IO[bytes]) -> None:
        """Forward ``content``, a body collected whole (see ``ReverseProxy.render``)."""
        self.content = content
        self.length = body_length(content)
        self.request.notifyFinish().addBoth(lambda _: content.close())
        self.start()

    def body_failed(self, reason: Failure) -> None:
        if not self.gone:
            fail(self.request, reason)

    def start(self) -> None:
        if self.gone:
            return
        dynamic = self.proxy.dynamic
        if dynamic is None:
            self._start_with(self.proxy.upstreams)
            return
        looked_up = dynamic.lookup(self.request)
        looked_up.addCallbacks(
            lambda addresses: self._start_with(self.proxy.upstreams_for(addresses)),
            self._lookup_failed,
        )
        looked_up.addErrback(self._internal_error)

    def _lookup_failed(self, reason: Failure) -> None:
        """As Caddy: log it and use the static upstreams (if any) this time."""
        log.error(
            "failed getting dynamic upstreams; falling back to static upstreams: {error}",
            error=reason.getErrorMessage(),
        )
        self._start_with(self.proxy.upstreams)

    def _start_with(self, upstreams: list[Upstream]) -> None:
        if self.gone:
            return
        choice = self.proxy.config.load_balancing.policy.select(
            upstreams, RequestView(self.request, self.trusted)
        )
        if choice.upstream is None:
            error = self.last_error or HandlerError(503, "no upstreams available")
            self._retry_or_fail(error, dial=True)
            return
        try:
            dial = choice.upstream.dial_for(self.request)
        except ValueError as error:
            # Caddy: "making dial info" fails the request without trying another.
            fail(self.request, HandlerError(502, str(error)))
            return
        attempt = _Attempt(self, choice.upstream, self.reactor.seconds(), dial)
        self._set_placeholders(attempt)
        ops = self.proxy.config.request_headers
        headers = self.base_headers
        if ops is not None or self.upgrade:  # both change the copy they get
            headers = copy_headers(headers)
        if ops is not None:
            ops.apply(headers, self.request)
        if choice.set_cookie:
            self.request.responseHeaders.addRawHeader(b"set-cookie", choice.set_cookie.encode())
        self.timed_out = False
        if self.upgrade:
            d = self._send_upgrade(attempt, headers)
            self.pending = d
            d.addErrback(self._attempt_failed, attempt)
            d.addErrback(self._internal_error)
            return
        self.pending = self._send(attempt, headers)

    def _set_placeholders(self, attempt: _Attempt) -> None:
        upstream = attempt.upstream
        values = self.request.placeholder_values
        if upstream.template is None:
            values.update(upstream.placeholders)  # the address's own, made once
        else:
            values.update(dial_placeholders(attempt.address, attempt.host, attempt.port))
        values["http.reverse_proxy.upstream.requests"] = str(upstream.state.num_requests)
        values["http.reverse_proxy.upstream.max_requests"] = upstream.placeholders_max
        values["http.reverse_proxy.upstream.fails"] = str(upstream.state.fails)

    def _attempt_failed(self, reason: Failure, attempt: _Attempt) -> None:
        attempt.release()
        self._cancel_header_timer()
        self.pending = None
        if self.gone:
            return
        client_side = _client_body_error(reason)
        if client_side is not None:
            # The client's body was too large or cut short: the client's fault (413,
            # 400), not the upstream's.
            fail(self.request, client_side)
            return
        dial = reason.check(DialError) is not None
        if self.timed_out:
            error = HandlerError(504, f"upstream {attempt.address}: timeout")
        else:
            error = HandlerError(502, f"upstream {attempt.address}: {reason.getErrorMessage()}")
        self.proxy.passive.count_failure(attempt.upstream)
        self.last_error = error
        self._retry_or_fail(error, dial=dial)

    def _retry_or_fail(self, error: HandlerError, *, dial: bool) -> None:
        if not self._try_again(dial):
            if not self.gone:
                fail(self.request, error)
            return
        self.retries += 1
        interval = self.proxy.config.load_balancing.try_interval
        self.retry_call = self.reactor.callLater(interval, self._retry)

    def _retry(self) -> None:
        self.retry_call = None
        self.start()

    def _try_again(self, dial: bool) -> bool:
        lb = self.proxy.config.load_balancing
        if not lb.try_duration and not lb.retries:
            return False
        if lb.try_duration and self.reactor.seconds() - self.started >= lb.try_duration:
            return False
        if lb.retries and self.retries >= lb.retries:
            return False
        if self.content is None and self.request.body.started:
            return False  # a streamed body cannot be sent again
        if dial:
            return True
        if lb.retry_match is None:
            return self.request.method == b"GET"
        return not lb.retry_match or any(m(self.request) for m in lb.retry_match)

    def _internal_error(self, reason: Failure) -> None:
        log.failure("reverse_proxy failed", failure=reason)
        if not self.gone:
            fail(self.request, reason)

    # -- timers and cancellation -----------------------------------------------------

    def _start_header_timer(self) -> None:
        timeout = self.proxy.header_timeout
        if timeout and self.header_timer is None:
            self.header_timer = self.reactor.callLater(timeout, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self.header_timer = None
        self.timed_out = True
        self._abandon_pending()

    def _abandon_pending(self) -> None:
        """Stop the attempt waiting for a response head (its failure path runs next)."""
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None and not tunnel.head.called and tunnel.transport is not None:
            tunnel.transport.abortConnection()  # type: ignore[attr-defined]
        if self.pending is not None:
            self.pending.cancel()

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None and self.header_timer.active():
            self.header_timer.cancel()
        self.header_timer = None

    def _client_gone(self, reason: Failure) -> None:
        self.gone = True
        self._cancel_header_timer()
        if self.retry_call is not None and self.retry_call.active():
            self.retry_call.cancel()
        self._abandon_pending()
        if self.relay is not None:
            self.relay.stop()

    # -- plain HTTP ------------------------------------------------------------------

    def _send(self, attempt: _Attempt, headers: Headers) -> Any:
        """Start the exchange with the upstream; what comes back has ``cancel``."""
        producer: StreamingBodyProducer | ReplayableBodyProducer | None = None
        if self.length and self.content is None:
            producer = StreamingBodyProducer(
                self.request.body,
                self.reactor,
                self.proxy.config.transport.write_timeout,
                on_written=self._start_header_timer,
            )
        elif self.length and self.content is not None:
            producer = ReplayableBodyProducer(
                self.content,
                self.length,
                self.proxy.cooperator,
                self.reactor,
                self.proxy.config.transport.write_timeout,
                on_written=self._start_header_timer,
            )
        connector = self.proxy.connector
        if self.proxy.config.transport.fastcgi is not None:
            d = self._send_fastcgi(attempt, headers, producer, attempt.upstream_connected)
        else:
            client = connector.h2c_client() if attempt.upstream.h2c else connector.h2c
            if client is None:  # HTTP/1.1: the lean client calls the attempt directly
                return connector.lean.send(
                    attempt.host, attempt.port, self.method, self.uri, headers, producer, attempt
                )
            d = client.request(
                attempt.host,
                attempt.port,
                self.method,
                self.uri,
                headers,
                producer,
                attempt.upstream_connected,
            )
        d.addCallbacks(attempt.upstream_answered, attempt.upstream_failed)
        return d

    def _send_fastcgi(
        self, attempt: _Attempt, headers: Headers, producer: Any, on_connection: Any
    ) -> Deferred[Any]:
        """The request as a FastCGI exchange (Caddy's fastcgi transport)."""
        from caddytw.handlers.reverse_proxy.cgienv import build_env, finish_env
        from caddytw.handlers.reverse_proxy.fastcgi import FastCGIExchange, fastcgi_request

        config = self.proxy.config.transport
        assert config.fastcgi is not None
        fields = [(name, value) for name, values in headers.getAllRawHeaders() for value in values]
        # Go keeps the client's Content-Length among the headers (HTTP_CONTENT_LENGTH).
        for value in self.request.requestHeaders.getRawHeaders(b"content-length") or ():
            fields.append((b"content-length", value))
        env = build_env(config.fastcgi, self.request, fields)
        content_type = self.request.header_text("content-type") or ""
        finish_env(env, self.request.method, content_type, self.length)
        exchange = FastCGIExchange(
            env,
            producer,
            on_connection,
            config.fastcgi.capture_stderr,
            config.max_response_header_size,
        )
        endpoint = self.proxy.connector.endpoint(attempt.host, attempt.port)
        return fastcgi_request(endpoint, exchange)

    def _got_response(self, response: LeanResponse, attempt: _Attempt) -> None:
        self._cancel_header_timer()
        self.pending = None
        passive = self.proxy.passive
        if passive.judging:
            latency = self.reactor.seconds() - attempt.started
            passive.judge_response(attempt.upstream, response.code, latency)
        if self.gone:
            attempt.release()
            response.deliverBody(_Discard())
            return
        code = response.code
        for handler in self.proxy.response_handlers:
            if handler.match is not None and not handler.match.matches(code, response.headers):
                continue
            if handler.status_code is not None:
                code = _status(fill(handler.status_code, self.request), code)
                break
            self._run_response_routes(handler, response, attempt)
            return
        self._finalize(response, attempt, code)

    def _run_response_routes(
        self, handler: ResponseHandler, response: LeanResponse, attempt: _Attempt
    ) -> None:
        """Caddy's ``handle_response`` routes: the response waits on the request for
        ``copy_response``; nobody took it when the routes return, so it is dropped."""
        from caddytw.handlers.reverse_proxy.handle_response import (
            CONTEXT_ATTR,
            PendingResponse,
            set_response_placeholders,
        )

        request = self.request
        set_response_placeholders(request, response.code, response.headers)
        pending = PendingResponse(
            response.code,
            response.headers,
            lambda code: self._finalize(response, attempt, code),
        )
        setattr(request, CONTEXT_ATTR, pending)
        assert handler.routes is not None
        try:
            dispatch(request, handler.routes)
        finally:
            if not pending.finalized:
                attempt.release()
                response.deliverBody(_Discard())

    def _finalize(self, response: LeanResponse, attempt: _Attempt, code: int) -> None:
        """Send the upstream's response to the client, streaming its body."""
        request = self.request
        self._copy_response_head(code, response.headers)
        if (
            isinstance(response.length, int)
            and request.method != b"HEAD"
            and code not in NO_BODY_STATUSES
            and code >= 200
        ):
            request.setHeader(b"content-length", b"%d" % response.length)
        flush_interval = self._flush_interval(response)
        body = response.complete_body()
        if body is not None:
            # The whole answer came with the head (a small one usually does): one
            # write and done, no relay, no producer, no timers.
            attempt.release()
            if not request.client_gone:
                if body:
                    if flush_interval >= 0:  # see ResponseRelay: Caddy names it then
                        name_untyped_body(request, body)
                    request.write(body)
                request.finish()
            return
        relay = ResponseRelay(
            request,
            self.reactor,
            attempt.body_ended,
            flush_interval=flush_interval,
            read_timeout=self.proxy.config.transport.read_timeout,
        )
        self.relay = relay
        response.deliverBody(relay)

    def _copy_response_head(self, code: int, upstream: Headers) -> None:
        ops = self.proxy.config.response_headers
        self.request.placeholder_values["http.reverse_proxy.status_code"] = str(code)
        # Go writes its own reason phrase whatever the upstream said; so do we.
        self.request.setResponseCode(code)
        if ops is None:
            # The common case: one filtered pass, no intermediate copy.
            drop = hop_by_hop_keys(upstream._rawHeaders)
            merge_response_headers(self.request.responseHeaders, upstream, drop)
            return
        headers = Headers()
        for name, values in upstream.getAllRawHeaders():
            headers.setRawHeaders(name, list(values))
        strip_hop_by_hop(headers)
        require = self.proxy.config.response_require
        if require is None or require(code, headers):
            ops.apply(headers, self.request)
        merge_response_headers(self.request.responseHeaders, headers)

    def _flush_interval(self, response: Any) -> float:
        content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        if content_type.split(b";")[0].strip().lower() == b"text/event-stream":
            return -1.0
        if response.length is UNKNOWN_LENGTH:
            return -1.0
        return self.proxy.config.flush_interval

    def _body_ended(self, reason: Failure | None, attempt: _Attempt) -> None:
        attempt.release()
        self.relay = None
        if self.request.client_gone:
            return
        if reason is None:
            self.request.finish()
            return
        log.info("upstream body failed: {why}", why=reason.getErrorMessage())
        # Headers are out: the only honest signal left is to drop the connection.
        self.request.loseConnection()

    # -- Upgrade (WebSocket) ---------------------------------------------------------

    def _send_upgrade(self, attempt: _Attempt, headers: Headers) -> Deferred[Any]:
        from caddytw.handlers.reverse_proxy.websocket import (
            UpstreamSide,
            UpstreamSideFactory,
            request_head,
        )

        if not headers.hasHeader(b"host"):
            headers.setRawHeaders(b"host", [attempt.address.encode()])
        if self.length:
            # The body is framed for the upstream too: without a length it would read
            # the body as the next request (smuggling through the proxy).
            headers.setRawHeaders(b"content-length", [b"%d" % self.length])
        head = request_head(self.request.method, self.request.uri, headers)
        side = UpstreamSide(head, self.content, self.length)
        self.tunnel = side
        endpoint = self.proxy.connector.endpoint(attempt.host, attempt.port)
        d: Deferred[Any] = endpoint.connect(UpstreamSideFactory(side))

        def connected(_: Any) -> Deferred[Any]:
            self._start_header_timer()
            return side.head

        d.addCallback(connected)
        d.addCallback(self._got_upgrade_head, attempt, side)
        return d

    def _got_upgrade_head(self, head: Any, attempt: _Attempt, side: UpstreamSide) -> None:
        from caddytw.handlers.reverse_proxy.websocket import (
            response_head,
            response_upgrade_ok,
            take_over_client,
        )

        self._cancel_header_timer()
        self.pending = None
        request = self.request
        if self.gone:
            attempt.release()
            side.transport.loseConnection()  # type: ignore[union-attr]
            return
        if not head.upgraded:
            self._copy_response_head(head.status, head.headers)
            if head.headers.hasHeader(b"content-length"):
                request.setHeader(
                    b"content-length", head.headers.getRawHeaders(b"content-length")[0]
                )
            request.registerProducer(side.transport, True)
            side.body_sink = request.write

            def ended(error: Failure | None) -> None:
                attempt.release()
                if request.client_gone:
                    return
                request.unregisterProducer()
                if error is None:
                    request.finish()
                else:
                    request.loseConnection()

            side.end_sink = ended
            return
        if not response_upgrade_ok(self.upgrade or b"", head):
            attempt.release()
            side.transport.loseConnection()  # type: ignore[union-attr]
            fail(request, HandlerError(502, "upstream switched to a different protocol"))
            return
        self._copy_response_head(101, head.headers)
        request.responseHeaders.removeHeader(b"content-length")
        request.responseHeaders.setRawHeaders(b"connection", [b"Upgrade"])
        request.responseHeaders.setRawHeaders(b"upgrade", [self.upgrade or b""])
        reason = b"Switching Protocols"
        raw_head = response_head(101, reason, request.responseHeaders)
        upstream_transport: Any = side.transport

        def client_lost(reason: Any = None) -> None:
            upstream_transport.loseConnection()

        client = take_over_client(request, upstream_transport.write, client_lost)
        request.long_lived = True  # an open tunnel must not hold up shutdown
        request.startedWriting = 1
        client.write(raw_head)
        side.tunnel_to(client)
        client.registerProducer(upstream_transport, True)
        if getattr(upstream_transport, "producer", None) is None:
            upstream_transport.registerProducer(client, True)
        side.closed.addBoth(lambda _: attempt.release())


def upstream_target(
    request: CaddyRequest, rewrite: tuple[Template | None, list[Any]] | None
) -> tuple[bytes, bytes]:
    """The method and target sent upstream: the request's, or as the proxy's ``rewrite``
    makes them. Caddy rewrites its clone of the request, so the request itself (and its
    placeholders, for ``X-Forwarded-Uri``) is left as it was."""
    if rewrite is None:
        return request.method, request.uri
    method_template, steps = rewrite
    method, uri = request.method, request.uri
    try:
        for step in steps:
            step.apply(request)
        new_method = method
        if method_template is not None:
            new_method = fill(method_template, request).upper().encode("latin-1", "replace")
        return new_method, request.uri
    finally:
        request.set_uri(uri)


def _rewrites_to_bodiless(rewrite: tuple[Template | None, list[Any]] | None) -> bool:
    method = rewrite[0] if rewrite is not None else None
    return method is not None and method.constant in ("GET", "HEAD")


def _status(text: str, default: int) -> int:
    try:
        return int(text) or default
    except ValueError:
        raise HandlerError(500, f"invalid status code {text!r}") from None


def _client_body_error(reason: Failure) -> BaseException | None:
    """A :class:`BodyTooLarge` or :class:`BodyAborted` behind an upstream failure (the
    Agent wraps it in ``RequestGenerationFailed``)."""
    pending = [reason.value]
    while pending:
        error = pending.pop()
        if isinstance(error, (BodyTooLarge, BodyAborted)):
            return error
        for inner in getattr(error, "reasons", None) or ():
            pending.append(inner.value if isinstance(inner, Failure) else inner)
    return None


class _Discard:
    """Body protocol for a response nobody wants any more: drop the connection."""

    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass


def build(config: ObjectReader, context: BuildContext, next: Handler) -> ReverseProxy:
    """Handler factory entry point (see ``twisted/plugins/caddytw_proxy.py``)."""
    handle_response = config.raw("handle_response")
    rewrite_data = config.raw("rewrite")
    rewrite = None
    if rewrite_data is not None:
        from caddytw.handlers.rewrite.handler import parse_rewrite

        rewrite = parse_rewrite(ObjectReader(rewrite_data, config.at("rewrite")))
    parsed = parse_proxy_config(config, random.Random())
    dynamic = None
    if config.has("dynamic_upstreams"):
        from caddytw.handlers.reverse_proxy.dynamic import parse_source

        dynamic = parse_source(config.reader("dynamic_upstreams"), context.reactor)
    elif any(u.lookup_srv for u in parsed.upstreams):
        from caddytw.handlers.reverse_proxy.dynamic import lookup_srv_source

        dynamic = lookup_srv_source(parsed.upstreams, context.reactor)
    handlers: tuple[ResponseHandler, ...] = ()
    if handle_response is not None:
        from caddytw.handlers.reverse_proxy.handle_response import build_response_handlers

        at = config.at("handle_response")
        handlers = build_response_handlers(handle_response, at, context, next)
    registry = registry_of(context.shared)
    share_health(context.shared, registry, context.reactor)
    proxy = ReverseProxy(parsed, registry, context.reactor, handlers, rewrite, dynamic)
    checker = None
    if parsed.active_health is not None:
        probe = HTTPProbe(parsed.active_health, proxy.connector, context.reactor)
        checker = ActiveHealthChecker(proxy.upstreams, parsed.active_health, probe, context.reactor)
    context.services.append(ProxyService(proxy, checker))
    return proxy
