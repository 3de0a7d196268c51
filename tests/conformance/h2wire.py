"""A raw HTTP/2 client for probes: frames built and parsed with ``hyperframe`` and
``hpack``, no client state machine, so a probe can send what a correct client never
would (a RST_STREAM in the same write as its HEADERS, CONNECT without ``:path``, a
SETTINGS flood) and see exactly which frames come back.

Also starts caddytw and, when installed, Debian's Caddy on the same config (h2c on a
plain port, h2 over TLS on another) so a probe can be run against both.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.support.configs import plain_and_tls
from tests.support.ports import free_port, wait_for_port
from tests.support.server import start_server

CADDY = shutil.which("caddy")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PROTOCOL_ERROR = 0x1
ENHANCE_YOUR_CALM = 0xB


@dataclass
class Exchange:
    """What came back on one stream."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    @property
    def finished(self) -> bool:
        return self.ended or self.reset is not None


class H2Wire:
    """One HTTP/2 connection to ``port`` (TLS with ALPN h2 when ``tls``)."""

    def __init__(self, port: int, *, tls: bool = False, timeout: float = 10.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            raw = context.wrap_socket(raw, server_hostname="localhost")
            assert raw.selected_alpn_protocol() == "h2"
        self.sock = raw
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.streams: dict[int, Exchange] = {}
        self.goaway: int | None = None
        self.closed = False
        self.frames_received = 0
        self._buffer = bytearray()
        self._header_block: tuple[int, bytes, bool] | None = None
        self.send(PREFACE + SettingsFrame(0).serialize())

    # -- sending ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def headers_frame(
        self, stream_id: int, headers: list[tuple[str, str]], *, end_stream: bool = True
    ) -> bytes:
        frame = HeadersFrame(stream_id)
        frame.data = self.encoder.encode([(n.encode(), v.encode()) for n, v in headers])
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        self.streams.setdefault(stream_id, Exchange())
        return frame.serialize()

    def get(self, stream_id: int, path: str, authority: str = "localhost", **kw: Any) -> bytes:
        """The HEADERS frame of a plain GET."""
        return self.headers_frame(
            stream_id,
            [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", authority)],
            **kw,
        )

    @staticmethod
    def rst(stream_id: int, code: int = 0x8) -> bytes:
        return RstStreamFrame(stream_id, error_code=code).serialize()

    @staticmethod
    def data(stream_id: int, payload: bytes, *, end_stream: bool = True) -> bytes:
        frame = DataFrame(stream_id, data=payload)
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    # -- receiving -------------------------------------------------------------------

    def read_until(self, done: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Read frames until ``done()`` or the connection closes or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except (ConnectionError, ssl.SSLError):
                chunk = b""
            if not chunk:
                self.closed = True
                return done()
            self._buffer += chunk
            self._parse()
        return True

    def wait_streams(self, *ids: int, timeout: float = 10.0) -> bool:
        return self.read_until(lambda: all(self.streams[i].finished for i in ids), timeout)

    def _parse(self) -> None:
        buffer, start = self._buffer, 0
        while len(buffer) - start >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buffer[start : start + 9]))
            if len(buffer) - start < 9 + length:
                break
            frame.parse_body(memoryview(bytes(buffer[start + 9 : start + 9 + length])))
            start += 9 + length
            self.frames_received += 1
            self._frame(frame)
        del buffer[:start]

    def _frame(self, frame: Frame) -> None:
        if isinstance(frame, SettingsFrame):
            if "ACK" not in frame.flags:
                self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(frame, HeadersFrame):
            self._header_block = (frame.stream_id, frame.data, "END_STREAM" in frame.flags)
            if "END_HEADERS" in frame.flags:
                self._headers_done()
        elif isinstance(frame, ContinuationFrame):
            assert self._header_block is not None
            sid, block, end = self._header_block
            self._header_block = (sid, block + frame.data, end)
            if "END_HEADERS" in frame.flags:
                self._headers_done()
        elif isinstance(frame, DataFrame):
            exchange = self.streams.setdefault(frame.stream_id, Exchange())
            exchange.body += frame.data
            exchange.ended = exchange.ended or "END_STREAM" in frame.flags
            if frame.flow_controlled_length:
                self.send(
                    WindowUpdateFrame(0, window_increment=frame.flow_controlled_length).serialize()
                    + WindowUpdateFrame(
                        frame.stream_id, window_increment=frame.flow_controlled_length
                    ).serialize()
                )
        elif isinstance(frame, RstStreamFrame):
            self.streams.setdefault(frame.stream_id, Exchange()).reset = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame.error_code
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            self.send(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]).serialize())

    def _headers_done(self) -> None:
        assert self._header_block is not None
        sid, block, end = self._header_block
        self._header_block = None
        fields = [(bytes(n), bytes(v)) for n, v in self.decoder.decode(block, raw=True)]
        exchange = self.streams.setdefault(sid, Exchange())
        status = dict(fields).get(b":status")
        if status and not status.startswith(b"1"):
            exchange.status = int(status)
            exchange.headers = fields
        exchange.ended = exchange.ended or end

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()


# -- servers -------------------------------------------------------------------------


@dataclass
class Ports:
    """One server's h2c (plain) and TLS ports."""

    plain: int
    tls: int
    name: str


def config(plain: int, tls: int, routes: list[Any], cert: Path, key: Path, work: Path) -> dict:
    """The config both servers run: the same routes on an h2c and a TLS listener."""
    return plain_and_tls(
        plain, tls, routes, cert, key, work / "storage", tls_protocols=["h1", "h2", "h3"]
    )


@contextmanager
def caddytw(routes: list[Any], work: Path, cert: Path, key: Path) -> Iterator[Ports]:
    plain, tls = free_port(), free_port()
    work.mkdir(parents=True, exist_ok=True)
    server = start_server(config(plain, tls, routes, cert, key, work), work, [plain, tls])
    try:
        yield Ports(plain, tls, "caddytw")
    finally:
        server.stop()


@contextmanager
def caddy(routes: list[Any], work: Path, cert: Path, key: Path) -> Iterator[Ports | None]:
    """Debian's Caddy on the same routes, or None when it is not installed."""
    if CADDY is None:
        yield None
        return
    plain, tls = free_port(), free_port()
    work.mkdir(parents=True, exist_ok=True)
    path = work / "caddy.json"
    path.write_text(json.dumps(config(plain, tls, routes, cert, key, work)))
    env = {"HOME": str(work), "XDG_DATA_HOME": str(work), "XDG_CONFIG_HOME": str(work)}
    with open(work / "caddy.log", "wb") as log:
        process = subprocess.Popen(
            [CADDY, "run", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "PATH": "/usr/bin:/bin"},
        )
    try:
        if not (wait_for_port(plain, 15) and wait_for_port(tls, 15)):
            raise RuntimeError((work / "caddy.log").read_text())
        yield Ports(plain, tls, "caddy")
    finally:
        process.terminate()
        process.wait(timeout=10)
