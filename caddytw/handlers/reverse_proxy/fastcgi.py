"""The FastCGI transport: one request per connection (keep-conn off, as Caddy), the
request body streamed in as FCGI_STDIN records and the CGI response streamed out.

The response head (``Status:``, ``Location`` and the other CGI header lines) is parsed
from the first FCGI_STDOUT bytes; what follows is handed to the proxy's
:class:`~.streaming.ResponseRelay` through ``deliverBody`` as it arrives, with the
upstream socket as its push producer, so a slow client pauses php-fpm rather than
filling memory. The response is the lean HTTP client's :class:`~.lean.LeanResponse`,
so the handler's response path, header operations and health accounting are shared.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from caddytw.handlers.reverse_proxy.lean import BodyTransport, LeanResponse, PausableConnection

log = Logger()

VERSION = 1
BEGIN_REQUEST = 1
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
RESPONDER = 1
REQUEST_ID = 1
MAX_CONTENT = 65535
#: Most stderr text kept for the log per request (php can be chatty).
STDERR_LIMIT = 64 * 1024
_HEADER = struct.Struct(">BBHHBx")


class FastCGIError(Exception):
    """The application's answer was not a valid FastCGI/CGI response."""


def record(kind: int, content: bytes = b"", request_id: int = REQUEST_ID) -> bytes:
    """One record (content at most 65535 bytes), padded to a multiple of 8."""
    padding = -len(content) % 8
    return (
        _HEADER.pack(VERSION, kind, request_id, len(content), padding)
        + content
        + (b"\x00" * padding)
    )


def stream(kind: int, data: bytes) -> bytes:
    """``data`` as records of one stream (no terminating empty record)."""
    return b"".join(
        record(kind, data[start : start + MAX_CONTENT])
        for start in range(0, len(data), MAX_CONTENT)
    )


def _length(size: int) -> bytes:
    return bytes([size]) if size < 128 else struct.pack(">I", size | 0x80000000)


def encode_params(env: dict[str, str]) -> bytes:
    """Name-value pairs (FastCGI 3.4); UTF-8 for what Latin-1 cannot hold."""
    out: list[bytes] = []
    for name, value in env.items():
        key = name.encode("utf-8")
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8")
        out += (_length(len(key)), _length(len(raw)), key, raw)
    return b"".join(out)


class RecordReader:
    """Splits a byte stream into ``(type, request_id, content)`` records, incrementally
    (a record may arrive in any number of pieces)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, int, bytes]]:
        self.buffer += data
        while len(self.buffer) >= 8:
            version, kind, request_id, size, padding = _HEADER.unpack_from(self.buffer)
            if version != VERSION:
                raise FastCGIError(f"unsupported FastCGI version {version}")
            end = 8 + size + padding
            if len(self.buffer) < end:
                return
            content = bytes(self.buffer[8 : 8 + size])
            del self.buffer[:end]
            yield kind, request_id, content


def parse_head(head: bytes) -> tuple[int, Headers, Any]:
    """A CGI response head: its status (``Status:``, else 200), headers, and length
    (``Content-Length`` when valid, else unknown). Like Caddy, ``Status`` stays among
    the headers."""
    headers = Headers()
    code = 200
    length: Any = UNKNOWN_LENGTH
    name = b""
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and name:
            values = list(headers.getRawHeaders(name) or [b""])
            values[-1] += b" " + line.strip()
            headers.setRawHeaders(name, values)
            continue
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name:
            raise FastCGIError(f"malformed CGI header line {line[:80]!r}")
        value = value.strip(b" \t")
        headers.addRawHeader(name, value)
        lower = name.lower()
        if lower == b"status":
            number = value.split(b" ", 1)[0]
            if not number.isdigit() or not 100 <= int(number) <= 999:
                raise FastCGIError(f"invalid CGI Status {value[:40]!r}")
            code = int(number)
        elif lower == b"content-length" and value.isdigit():
            length = int(value)
    return code, headers, length


class _StdinConsumer:
    """What a body producer writes to: each write goes out as FCGI_STDIN records."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        if data:
            self.transport.write(stream(STDIN, data))


class FastCGIConnection(PausableConnection):
    """One FastCGI request on its own connection."""

    def __init__(self, exchange: FastCGIExchange) -> None:
        self.exchange = exchange
        self.reader = RecordReader()
        self.head = bytearray()
        self.head_done = False
        self.pending: list[bytes] = []
        self.body: Any = None
        self.body_transport: BodyTransport | None = None
        self.paused = False
        self.ended = False
        self.lost = False
        self.stderr = bytearray()
        self.status = 0

    def connectionMade(self) -> None:
        exchange = self.exchange
        transport: Any = self.transport
        begin = record(BEGIN_REQUEST, struct.pack(">HB5x", RESPONDER, 0))
        params = stream(PARAMS, encode_params(exchange.env))
        transport.write(begin + params + record(PARAMS))
        if exchange.on_connection is not None:
            exchange.on_connection(self)
        producer = exchange.producer
        if producer is None:
            transport.write(record(STDIN))
            return
        transport.registerProducer(producer, True)
        producer.startProducing(_StdinConsumer(transport)).addCallbacks(
            self._uploaded, self._upload_failed
        )

    def _uploaded(self, _: Any) -> None:
        if not self.lost:
            self.transport.unregisterProducer()  # type: ignore[union-attr]
            self.transport.write(record(STDIN))  # type: ignore[union-attr]

    def _upload_failed(self, reason: Failure) -> None:
        if not self.lost:
            self.transport.unregisterProducer()  # type: ignore[union-attr]
        self._fail(reason)

    def dataReceived(self, data: bytes) -> None:
        try:
            for kind, _, content in self.reader.feed(data):
                if kind == STDOUT:
                    self._stdout(content)
                elif kind == STDERR:
                    room = STDERR_LIMIT - len(self.stderr)
                    if room > 0:
                        self.stderr += content[:room]
                elif kind == END_REQUEST:
                    self._end()
                    return
        except FastCGIError as error:
            self._fail(Failure(error))

    def _stdout(self, content: bytes) -> None:
        if self.head_done:
            self._body_data(content)
            return
        self.head += content
        end, skip = self.head.find(b"\r\n\r\n"), 4
        bare = self.head.find(b"\n\n")
        if bare != -1 and (end == -1 or bare < end):
            end, skip = bare, 2
        if end == -1:
            if len(self.head) > self.exchange.max_head:
                raise FastCGIError("response head too large")
            return
        head, rest = bytes(self.head[:end]), bytes(self.head[end + skip :])
        self.head = bytearray()
        self._answer(head, rest)

    def _answer(self, head: bytes, rest: bytes) -> None:
        code, headers, length = parse_head(head)
        self.head_done = True
        self.status = code
        deferred = self.exchange.deferred
        if deferred.called:
            self.abort()
            return
        if rest:
            self.pending.append(rest)
        deferred.callback(LeanResponse(code, headers, length, self))

    def _body_data(self, data: bytes) -> None:
        if self.body is not None:
            self.body.dataReceived(data)
        else:
            self.pending.append(data)

    def deliver_body(self, protocol: Any) -> None:
        self._start_body(protocol)
        if self.ended:
            self._end_body(Failure(ResponseDone()))
        elif self.lost:
            self._end_body(Failure(FastCGIError("application closed the connection mid-body")))

    def _end(self) -> None:
        self.ended = True
        if not self.head_done:
            # The whole output had no blank line: all of it is the head (Caddy reads
            # headers up to EOF the same way).
            head, self.head = bytes(self.head), bytearray()
            try:
                self._answer(head, b"")
            except FastCGIError as error:
                self._fail(Failure(error))
                return
        self._log_stderr()
        if self.body is not None:
            self._end_body(Failure(ResponseDone()))
        if self.transport is not None:
            self.transport.loseConnection()

    def _log_stderr(self) -> None:
        """With ``capture_stderr``, what the application wrote to FCGI_STDERR, once the
        request ends: a warning, an error for a 4xx/5xx answer (as Caddy logs it)."""
        if self.stderr and self.exchange.capture_stderr:
            text = self.stderr.decode("utf-8", "replace")
            if self.status >= 400:
                log.error("stderr: {body}", body=text)
            else:
                log.warn("stderr: {body}", body=text)
        self.stderr = bytearray()

    def abort(self) -> None:
        if not self.lost and self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _fail(self, reason: Failure) -> None:
        self.abort()
        deferred = self.exchange.deferred
        if not deferred.called:
            deferred.errback(reason)
        elif self.body is not None:
            self._end_body(reason)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost = True
        if self.ended:
            return
        self._log_stderr()
        deferred = self.exchange.deferred
        if not deferred.called:
            deferred.errback(Failure(FastCGIError("application closed the connection early")))
        elif self.body is not None:
            self._end_body(Failure(FastCGIError("application closed the connection mid-body")))


class FastCGIExchange:
    """One request's parts: the environment, the body producer, and the Deferred that
    fires with the response head."""

    def __init__(
        self,
        env: dict[str, str],
        producer: Any,
        on_connection: Any,
        capture_stderr: bool,
        max_head: int,
    ) -> None:
        self.env = env
        self.producer = producer
        self.on_connection = on_connection
        self.capture_stderr = capture_stderr
        self.max_head = max_head
        self.dial: Deferred[Any] | None = None
        self.connection: FastCGIConnection | None = None
        self.deferred: Deferred[LeanResponse] = Deferred(self._cancel)

    def _cancel(self, _: Any) -> None:
        if self.dial is not None and not self.dial.called:
            self.dial.cancel()
        if self.connection is not None:
            self.connection.abort()


class _ExchangeFactory(Factory):
    noisy = False

    def __init__(self, exchange: FastCGIExchange) -> None:
        self.exchange = exchange

    def buildProtocol(self, addr: Any) -> FastCGIConnection:
        connection = FastCGIConnection(self.exchange)
        self.exchange.connection = connection
        return connection


def fastcgi_request(endpoint: Any, exchange: FastCGIExchange) -> Deferred[LeanResponse]:
    """Dial ``endpoint`` (a :class:`~.transport.DialEndpoint`) and run ``exchange``."""
    dial: Deferred[Any] = endpoint.connect(_ExchangeFactory(exchange))
    exchange.dial = dial

    def failed(reason: Failure) -> None:
        if not exchange.deferred.called:
            exchange.deferred.errback(reason)

    dial.addErrback(failed)
    return exchange.deferred
