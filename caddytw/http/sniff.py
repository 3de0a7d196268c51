"""Go's ``http.DetectContentType``: what Go's server names an untyped response.

Go's ``ResponseWriter`` gives a body written without a Content-Type (and without a
Content-Encoding) the type it guesses from the first bytes, so Caddy's answers carry
one: a proxied upstream's untyped answer (``reverse_proxy``), and what ``encode``
decides to compress, depend on that guess, so it must match. The
signatures are the WHATWG sniffing table as Go implements it; a few rare media
signatures (MP4 brands, audio containers) are left out and fall back to Go's final
text-or-binary test.
"""

from __future__ import annotations

from typing import Any

SNIFF_LENGTH = 512
_WHITESPACE = b"\t\n\x0c\r "
_HTML_TAGS = (
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
)
_EXACT = (
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"\xfe\xff", "text/plain; charset=utf-16be"),
    (b"\xff\xfe", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf", "text/plain; charset=utf-8"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"ID3", "audio/mpeg"),
    (b"OggS\x00", "application/ogg"),
    (b"MThd\x00\x00\x00\x06", "audio/midi"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"OTTO", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
)
_RIFF = ((b"WEBPVP", "image/webp"), (b"AVI ", "video/avi"), (b"WAVE", "audio/wave"))
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def _html_match(data: bytes, tag: bytes) -> bool:
    if len(data) < len(tag) + 1:
        return False
    for index, expected in enumerate(tag):
        actual = data[index]
        if 0x41 <= expected <= 0x5A:
            actual &= 0xDF  # ASCII upper case
        if actual != expected:
            return False
    return data[len(tag)] in b" >"


def detect_content_type(data: bytes) -> str:
    """The Content-Type Go would guess for a body starting with ``data``."""
    data = data[:SNIFF_LENGTH]
    start = 0
    while start < len(data) and data[start] in _WHITESPACE:
        start += 1
    stripped = data[start:]
    for tag in _HTML_TAGS:
        if _html_match(stripped, tag):
            return "text/html; charset=utf-8"
    if stripped.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for signature, content_type in _EXACT:
        if data.startswith(signature):
            return content_type
    if data.startswith(b"RIFF") and len(data) >= 12:
        for marker, content_type in _RIFF:
            if data[8 : 8 + len(marker)] == marker:
                return content_type
    if data.startswith(b"FORM") and data[8:12] == b"AIFF":
        return "audio/aiff"
    if any(byte in _BINARY for byte in stripped):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def name_untyped_body(request: Any, data: bytes) -> None:
    """Before a response's first body bytes leave: give an untyped body Go's guess, as
    Go's ``ResponseWriter`` does for every Caddy handler that sets no type (a proxied
    upstream's answer without one included). Nothing to do once the head is out, for an
    empty write, or when a Content-Type or Content-Encoding is already set."""
    if not data or request.startedWriting:
        return
    raw = request.responseHeaders._rawHeaders
    if b"Content-Type" in raw or b"Content-Encoding" in raw:
        return
    raw[b"Content-Type"] = [detect_content_type(data).encode("ascii")]
