"""Read the server name (SNI) a QUIC client asks for, before any connection exists.

aioquic takes one certificate per ``QuicConfiguration`` and has no per-name hook, so the
listener must know the name before it creates the connection. The client's first
INITIAL packets are protected with keys derived from the client's own destination
connection ID (RFC 9001 section 5.2), so anyone can remove that protection: this module
does it, reassembles the CRYPTO frames from offset 0 and parses the TLS ClientHello.

A ClientHello can span several INITIAL packets (large key shares do), so
:class:`HelloCollector` gathers CRYPTO data across datagrams; the listener keeps one
collector per new connection ID, with a small bound on datagrams and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aioquic.buffer import Buffer, BufferReadError
from aioquic.quic.crypto import CryptoError, CryptoPair
from aioquic.quic.packet import QuicFrameType, QuicPacketType, pull_quic_header
from aioquic.tls import pull_client_hello

# A ClientHello is at most a few kilobytes; refuse to collect more than this.
MAX_HELLO_BYTES = 16 * 1024

_CLIENT_HELLO = 1


class NotAClientHello(ValueError):
    """The INITIAL packets do not carry a parsable ClientHello."""


@dataclass
class HelloCollector:
    """CRYPTO stream bytes of one connection attempt, assembled from INITIAL packets."""

    destination_cid: bytes
    version: int
    datagrams: list[bytes] = field(default_factory=list)
    _chunks: dict[int, bytes] = field(default_factory=dict)

    def add_datagram(self, data: bytes, host_cid_length: int) -> None:
        """Decrypt every INITIAL packet of ``data`` and keep its CRYPTO frames."""
        self.datagrams.append(data)
        crypto = CryptoPair()
        crypto.setup_initial(cid=self.destination_cid, is_client=False, version=self.version)
        buf = Buffer(data=data)
        while not buf.eof():
            start = buf.tell()
            try:
                header = pull_quic_header(buf, host_cid_length=host_cid_length)
            except ValueError:
                return
            end = start + header.packet_length
            if header.packet_type != QuicPacketType.INITIAL:
                buf.seek(end)
                continue
            try:
                _, payload, _ = crypto.decrypt_packet(data[start:end], buf.tell() - start, 0)
            except (CryptoError, ValueError):
                raise NotAClientHello("INITIAL packet does not decrypt") from None
            buf.seek(end)
            self._add_frames(payload)

    def _add_frames(self, payload: bytes) -> None:
        buf = Buffer(data=payload)
        try:
            while not buf.eof():
                frame_type = buf.pull_uint_var()
                if frame_type in (QuicFrameType.PADDING, QuicFrameType.PING):
                    continue
                if frame_type == QuicFrameType.CRYPTO:
                    offset = buf.pull_uint_var()
                    length = buf.pull_uint_var()
                    if offset + length > MAX_HELLO_BYTES:
                        raise NotAClientHello("ClientHello is too large")
                    self._chunks[offset] = buf.pull_bytes(length)
                    continue
                if frame_type in (QuicFrameType.ACK, QuicFrameType.ACK_ECN):
                    _skip_ack(buf, frame_type == QuicFrameType.ACK_ECN)
                    continue
                # CONNECTION_CLOSE or anything unexpected: nothing more to learn here.
                return
        except BufferReadError:
            raise NotAClientHello("malformed frame in INITIAL packet") from None

    def contiguous(self) -> bytes:
        """CRYPTO bytes from offset 0 up to the first gap."""
        out = bytearray()
        while True:
            # Frames may overlap (retransmissions): take any chunk that covers len(out).
            best = b""
            for offset, chunk in self._chunks.items():
                if offset <= len(out) < offset + len(chunk):
                    tail = chunk[len(out) - offset :]
                    if len(tail) > len(best):
                        best = tail
            if not best:
                return bytes(out)
            out += best

    def server_name(self) -> tuple[bool, str | None]:
        """``(complete, name)``: whether the whole ClientHello is here, and its SNI."""
        data = self.contiguous()
        if len(data) < 4:
            return False, None
        if data[0] != _CLIENT_HELLO:
            raise NotAClientHello("first handshake message is not a ClientHello")
        length = int.from_bytes(data[1:4], "big")
        if len(data) < 4 + length:
            return False, None
        try:
            hello = pull_client_hello(Buffer(data=data[: 4 + length]))
        except Exception as exc:  # aioquic raises its TLS alerts and BufferReadError
            raise NotAClientHello(f"unparsable ClientHello: {exc}") from None
        return True, hello.server_name


def _skip_ack(buf: Buffer, ecn: bool) -> None:
    buf.pull_uint_var()  # largest acknowledged
    buf.pull_uint_var()  # delay
    ranges = buf.pull_uint_var()
    buf.pull_uint_var()  # first range
    for _ in range(ranges):
        buf.pull_uint_var()
        buf.pull_uint_var()
    if ecn:
        for _ in range(3):
            buf.pull_uint_var()
