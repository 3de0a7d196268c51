"""``encode``: compress responses with gzip or zstd when the client accepts it.

Caddy's rules: the encoding is chosen from Accept-Encoding (q-values, then ``prefer``);
the decision to compress waits for the response headers and is taken only for a body
longer than ``minimum_length`` (from Content-Length or the first write) whose headers
match ``match`` (by default text-like Content-Types; a missing Content-Type is sniffed
from the first bytes), with no Content-Encoding yet and no ``no-transform``. Then
Content-Length and Accept-Ranges go, ``Content-Encoding`` and ``Vary: Accept-Encoding``
are set, and a strong ETag gets ``-<encoding>`` appended (and stripped again from
If-None-Match on the way in). 206 answers are never encoded; 304s get the Vary.

Bodies stream through the encoder chunk by chunk (twisted.web's request encoder hook);
a body written in one piece is compressed in one piece and keeps a Content-Length.
HEAD answers get the same headers without a body.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.web.http_headers import Headers

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path
from caddytw.handlers.encode.encoders import ENCODINGS, StreamEncoder, accepted_encodings
from caddytw.http.build import BuildContext, Handler
from caddytw.http.dispatch import Answer
from caddytw.http.hooks import before_headers
from caddytw.http.interfaces import IEncoderFactory, find_plugins
from caddytw.http.request import CaddyRequest
from caddytw.http.respmatch import ResponseMatcher
from caddytw.http.routing import LeafResource
from caddytw.http.sniff import detect_content_type

DEFAULT_MINIMUM_LENGTH = 512
DEFAULT_PREFER = ("zstd", "br", "gzip")
COMPRESSIBLE_TYPES = (
    "application/atom+xml*",
    "application/eot*",
    "application/font*",
    "application/geo+json*",
    "application/graphql+json*",
    "application/graphql-response+json*",
    "application/javascript*",
    "application/json*",
    "application/ld+json*",
    "application/manifest+json*",
    "application/opentype*",
    "application/otf*",
    "application/rss+xml*",
    "application/truetype*",
    "application/ttf*",
    "application/vnd.api+json*",
    "application/vnd.ms-fontobject*",
    "application/wasm*",
    "application/x-httpd-cgi*",
    "application/x-javascript*",
    "application/x-opentype*",
    "application/x-otf*",
    "application/x-perl*",
    "application/x-protobuf*",
    "application/x-ttf*",
    "application/xhtml+xml*",
    "application/xml*",
    "font/ttf*",
    "font/otf*",
    "image/svg+xml*",
    "image/vnd.microsoft.icon*",
    "image/x-icon*",
    "multipart/bag*",
    "multipart/mixed*",
    "text/*",
)
DEFAULT_MATCHER = ResponseMatcher(None, ((b"content-type", COMPRESSIBLE_TYPES),))


def first_value(headers: Headers, name: bytes) -> str:
    """Go's ``Header.Get``: the first value, or empty."""
    values = headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else ""


def has_vary(headers: Headers, target: str) -> bool:
    for value in headers.getRawHeaders(b"vary") or []:
        for item in value.decode("latin-1").split(","):
            if item.strip().lower() == target.lower():
                return True
    return False


def add_vary(headers: Headers) -> None:
    if not has_vary(headers, "Accept-Encoding"):
        headers.addRawHeader(b"vary", b"Accept-Encoding")


def content_length(headers: Headers) -> int | None:
    text = first_value(headers, b"content-length")
    return int(text) if text.isdigit() else None


class _Precompressed:
    """The encoder for a body written in one piece and compressed in one piece."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def encode(self, data: bytes) -> bytes:
        out, self._data = self._data, b""
        return out

    def finish(self) -> bytes:
        return b""


class Encode(LeafResource):
    def __init__(
        self,
        encodings: dict[str, Any],
        prefer: list[str],
        minimum_length: int,
        matcher: ResponseMatcher,
        next: Handler,
    ) -> None:
        self.encodings = encodings
        self.prefer = prefer
        self.minimum_length = minimum_length
        self.matcher = matcher
        self.next = next

    def render(self, request: CaddyRequest) -> Answer:
        headers = request.requestHeaders
        if "no-transform" not in first_value(headers, b"cache-control"):
            accepted = accepted_encodings(
                first_value(headers, b"accept-encoding"),
                self.prefer,
                websocket=bool(first_value(headers, b"sec-websocket-key")),
            )
            for name in accepted:
                encoding = self.encodings.get(name)
                if encoding is None:
                    continue
                strip_etag_suffix(headers, name)
                before_headers(request, partial(self.on_headers, encoding=encoding))
                break
        return self.next.render(request)

    def on_headers(self, request: CaddyRequest, encoding: Any) -> None:
        """Decide, just before the headers go out, whether this response is encoded."""
        status = request.code
        headers = request.responseHeaders
        if status == 304:
            add_vary(headers)
            return
        if status == 206 or status < 200 or status == 204:
            return
        first = request.first_chunk
        length = content_length(headers)
        if not (
            len(first) > self.minimum_length
            or (length is not None and length > self.minimum_length)
        ):
            return
        if first and not first_value(headers, b"content-type"):
            headers.setRawHeaders(b"content-type", [detect_content_type(first).encode()])
        if first_value(headers, b"content-encoding"):
            return  # never encode twice
        if "no-transform" in first_value(headers, b"cache-control"):
            return
        if not self.matcher.matches(status, headers):
            return
        whole_body = length is not None and length == len(first) and len(first) > 0
        headers.removeHeader(b"content-length")
        headers.setRawHeaders(b"content-encoding", [encoding.name.encode()])
        add_vary(headers)
        headers.removeHeader(b"accept-ranges")
        etag = first_value(headers, b"etag")
        if etag and not etag.startswith("W/"):
            tagged = etag.removesuffix('"') + f'-{encoding.name}"'
            headers.setRawHeaders(b"etag", [tagged.encode("latin-1")])
        stream: StreamEncoder
        if whole_body:
            compressed = encoding.compress(first)
            headers.setRawHeaders(b"content-length", [b"%d" % len(compressed)])
            stream = _Precompressed(compressed)
        else:
            stream = encoding.new_stream()
        if request.original_method != b"HEAD":
            # twisted.web's body-transform hook: encode(data) per write, finish() at the end
            request._encoder = stream  # type: ignore[assignment]


def strip_etag_suffix(headers: Headers, name: str) -> None:
    """Undo our ETag suffix in If-None-Match so the handler that made the ETag matches it."""
    etag = first_value(headers, b"if-none-match")
    suffix = f'-{name}"'
    if etag and not etag.startswith("W/") and etag.endswith(suffix):
        headers.setRawHeaders(b"if-none-match", [(etag[: -len(suffix)] + '"').encode("latin-1")])


def build(config: ObjectReader, context: BuildContext, next: Handler) -> Encode:
    encodings_reader = config.reader("encodings")
    encodings: dict[str, Any] = {}
    for name, data in encodings_reader.data.items():
        encodings_reader.ignore(name)
        factory = ENCODINGS.get(name) or find_plugins(IEncoderFactory).get(name)
        path = encodings_reader.at(name)
        if factory is None:
            raise ConfigError(path, f"unknown module: http.encoders.{name}")
        encodings[name] = factory.parse(data, path)
    prefer = config.strings("prefer")
    minimum_length = config.integer("minimum_length", minimum=0) or DEFAULT_MINIMUM_LENGTH
    match_data = config.raw("match")
    matcher = (
        ResponseMatcher.parse(match_data, config.at("match"))
        if match_data is not None
        else DEFAULT_MATCHER
    )
    config.done()
    seen: set[str] = set()
    for index, name in enumerate(prefer):
        path = join_path(config.at("prefer"), index)
        if name not in encodings:
            raise ConfigError(path, f"encoding {name} not enabled")
        if name in seen:
            raise ConfigError(path, f"encoding {name} is duplicated in prefer")
        seen.add(name)
    if not prefer:
        prefer = [name for name in DEFAULT_PREFER if name in encodings]
    return Encode(encodings, prefer, minimum_length, matcher, next)
