"""The UDP side of an HTTP/3 listener: a Twisted ``DatagramProtocol`` routing QUIC
packets to connections by connection ID.

Per datagram: parse the header; answer an unknown version with version negotiation
(only in a datagram of at least 1200 bytes, RFC 9000 section 5.2.2);
find the connection by destination connection ID; for an unknown ID accept only an
INITIAL of at least 1200 bytes (anti-amplification, RFC 9000 section 14.1), optionally
demand a retry token first, read the SNI of its ClientHello to pick the certificate,
and create the connection. The routing dict follows each connection's issued and
retired IDs and loses all of them when the connection terminates.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from aioquic.buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet import (
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from caddytw.wire.h3.certs import CONNECTION_ID_LENGTH, QuicConfigurations
from caddytw.wire.h3.connection import ConnectionRoutes, H3ServerConnection
from caddytw.wire.h3.sni import HelloCollector, NotAClientHello

if TYPE_CHECKING:
    from caddytw.wire.h3.stream import AnySite

log = Logger()

SUPPORTED_VERSIONS: list[int] = [QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2]
MAX_HELLO_DATAGRAMS = 4  # a ClientHello spread over more INITIALs than this is refused
MAX_PENDING_HELLOS = 1024  # connection attempts whose ClientHello is still incomplete


class H3ServerProtocol(DatagramProtocol, ConnectionRoutes):
    """Routes QUIC datagrams of one UDP port to :class:`H3ServerConnection` objects."""

    def __init__(
        self,
        site: AnySite,
        configurations: QuicConfigurations,
        *,
        reactor: Any,
        retry: bool = False,
    ) -> None:
        self.site = site
        self.configurations = configurations
        self.reactor = reactor
        self.retry = QuicRetryTokenHandler() if retry else None
        self.routes: dict[bytes, H3ServerConnection] = {}
        self.connections: set[H3ServerConnection] = set()
        self.pending_hellos: OrderedDict[bytes, HelloCollector] = OrderedDict()
        self._host: IPv4Address | IPv6Address | None = None
        self.counters = {"retries": 0, "version_negotiations": 0, "refused": 0}

    # -- DatagramProtocol ------------------------------------------------------------

    def startProtocol(self) -> None:
        if self.transport is not None:
            self._host = self.transport.getHost()

    def stopProtocol(self) -> None:
        """The port is gone: forget every connection (their timers with them)."""
        for connection in list(self.connections):
            connection.abandon(ConnectionDone("HTTP/3 listener stopped"))
            self._forget(connection)
        self.pending_hellos.clear()

    def close_connections(self) -> None:
        """Tell every client the server is going away (CONNECTION_CLOSE, H3_NO_ERROR)."""
        for connection in list(self.connections):
            connection.close(error_code=0x100, reason="server shutting down")

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        address: NetworkAddress = (addr[0], addr[1])
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CONNECTION_ID_LENGTH)
        except ValueError:
            return
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in SUPPORTED_VERSIONS
        ):
            # Never answer a version negotiation packet with another one (reflection),
            # nor a datagram under 1,200 bytes: RFC 9000 section 5.2.2 says to drop it,
            # so a spoofed source cannot get more bytes sent to it than it sent.
            if len(data) < SMALLEST_MAX_DATAGRAM_SIZE:
                self.counters["refused"] += 1
                return
            self.counters["version_negotiations"] += 1
            self._send(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=SUPPORTED_VERSIONS,
                ),
                address,
            )
            return
        connection = self.routes.get(header.destination_cid)
        if connection is None:
            if header.packet_type != QuicPacketType.INITIAL:
                return
            if len(data) < SMALLEST_MAX_DATAGRAM_SIZE:
                self.counters["refused"] += 1
                return
            connection = self._accept(data, address, header)
            if connection is None:
                return
        connection.datagram_received(data, address)

    def _send(self, data: bytes, addr: NetworkAddress) -> None:
        if self.transport is not None:
            self.transport.write(data, addr)

    # -- new connections -------------------------------------------------------------

    def _accept(self, data: bytes, addr: NetworkAddress, header: Any) -> H3ServerConnection | None:
        original_cid: bytes = header.destination_cid
        retry_cid: bytes | None = None
        if self.retry is not None:
            if not header.token:
                self._send_retry(addr, header)
                return None
            try:
                original_cid, retry_cid = self._validate_token(addr, header)
            except ValueError:
                return None  # a bad or expired token: drop it, the client retries
        hello = self._collect_hello(data, header)
        if hello is None:
            return None
        configuration = self.configurations.for_server_name(hello[1])
        if configuration is None:
            log.info("QUIC: no certificate for server name {name!r}", name=hello[1])
            return None
        quic = QuicConnection(
            configuration=configuration,
            original_destination_connection_id=original_cid,
            retry_source_connection_id=retry_cid,
        )
        connection = H3ServerConnection(
            quic,
            site=self.site,
            reactor=self.reactor,
            send=self._send,
            routes=self,
            host=self._host or IPv4Address("UDP", "0.0.0.0", 0),
        )
        self.connections.add(connection)
        for cid in (header.destination_cid, quic.host_cid):
            self.route_added(cid, connection)
            connection.cids.add(cid)
        # Earlier datagrams of a ClientHello that spanned several go in first.
        for earlier in hello[0][:-1]:
            connection.datagram_received(earlier, addr)
        return connection

    def _collect_hello(self, data: bytes, header: Any) -> tuple[list[bytes], str | None] | None:
        """The datagrams carrying a complete ClientHello and its SNI, or None (wait/drop)."""
        key = header.destination_cid
        collector = self.pending_hellos.pop(key, None)
        if collector is None:
            collector = HelloCollector(header.destination_cid, header.version)
        try:
            collector.add_datagram(data, CONNECTION_ID_LENGTH)
            complete, name = collector.server_name()
        except NotAClientHello as exc:
            log.debug("QUIC: dropping INITIAL: {why}", why=exc)
            return None
        if complete:
            return collector.datagrams, name
        if len(collector.datagrams) < MAX_HELLO_DATAGRAMS:
            self.pending_hellos[key] = collector
            while len(self.pending_hellos) > MAX_PENDING_HELLOS:
                self.pending_hellos.popitem(last=False)
        return None

    def _send_retry(self, addr: NetworkAddress, header: Any) -> None:
        assert self.retry is not None
        self.counters["retries"] += 1
        source_cid = os.urandom(CONNECTION_ID_LENGTH)
        token = self.retry.create_token(
            address=addr,
            original_destination_connection_id=header.destination_cid,
            retry_source_connection_id=source_cid,
            now=self.reactor.seconds(),
        )
        self._send(
            encode_quic_retry(
                version=header.version,
                source_cid=source_cid,
                destination_cid=header.source_cid,
                original_destination_cid=header.destination_cid,
                retry_token=token,
            ),
            addr,
        )

    def _validate_token(self, addr: NetworkAddress, header: Any) -> tuple[bytes, bytes]:
        assert self.retry is not None
        original = self.retry.validate_token(
            address=addr,
            destination_cid=header.destination_cid,
            token=header.token,
            now=self.reactor.seconds(),
        )
        return original, header.destination_cid

    # -- ConnectionRoutes ------------------------------------------------------------

    def route_added(self, cid: bytes, connection: H3ServerConnection) -> None:
        self.routes[cid] = connection

    def route_removed(self, cid: bytes) -> None:
        self.routes.pop(cid, None)

    def connection_closed(self, connection: H3ServerConnection) -> None:
        self._forget(connection)

    def _forget(self, connection: H3ServerConnection) -> None:
        for cid in list(connection.cids):
            if self.routes.get(cid) is connection:
                del self.routes[cid]
        # IDs the connection never reported (defensive: none are expected).
        for cid, owner in list(self.routes.items()):
            if owner is connection:
                del self.routes[cid]
        connection.cids.clear()
        self.connections.discard(connection)

    # -- introspection ---------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """State sizes for leak checks (connections, routing entries, timers, streams)
        and event counters (retries sent, version negotiations, refused INITIALs)."""
        return {
            **self.counters,
            "connections": len(self.connections),
            "routes": len(self.routes),
            "timers": sum(c.timers_pending for c in self.connections),
            "streams": sum(len(c.streams) for c in self.connections),
            "pending_hellos": len(self.pending_hellos),
        }
