"""A counting TCP relay: put it between a client and a server to measure the bytes on the
wire each way (and optionally slow the client-to-server direction down, so a test can
interrupt an upload half-way, or record what the client sent to count its requests, or
rewrite what the server sends, as a faulty network or middlebox would)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

from tests.support.ports import free_port


class Relay:
    """Listens on a free loopback port and forwards every connection to ``target``.

    ``up`` counts client-to-server bytes, ``down`` server-to-client bytes (payload only,
    as TCP carries them). ``up_rate`` (bytes/s, 0 = unlimited) throttles uploads.
    ``record`` keeps the client-to-server bytes so :meth:`requests` can count requests.
    ``down_rewrite`` maps each block the server sends before it reaches the client.
    """

    def __init__(
        self,
        target_port: int,
        up_rate: int = 0,
        record: bool = False,
        down_rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.down_rewrite = down_rewrite
        self.target_port = target_port
        self.port = free_port()
        self.up = 0
        self.down = 0
        self.up_rate = up_rate
        self.sent: bytearray | None = bytearray() if record else None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> tuple[int, int]:
        """The (up, down) counts so far, and start counting again from zero."""
        with self._lock:
            counts = (self.up, self.down)
            self.up = self.down = 0
            if self.sent is not None:
                self.sent = bytearray()
        return counts

    def requests(self, start: bytes) -> int:
        """How many requests the client began with ``start`` (e.g. ``b"POST /api/upload"``)
        since the last reset; needs ``record``. A request may follow a body directly, so
        no line break is required before it."""
        with self._lock:
            sent = bytes(self.sent or b"")
        return sent.count(start)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, up: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if up:
                        self.up += len(data)
                        if self.sent is not None:
                            self.sent += data
                    else:
                        self.down += len(data)
                if not up and self.down_rewrite is not None:
                    data = self.down_rewrite(data)
                sink.sendall(data)
                if up and self.up_rate:
                    time.sleep(len(data) / self.up_rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def byte_relay(
    target_port: int,
    record: bool = False,
    down_rewrite: Callable[[bytes], bytes] | None = None,
) -> Iterator[tuple[int, Relay]]:
    """``(relay port, relay)`` while the block runs, closed after it."""
    relay = Relay(target_port, record=record, down_rewrite=down_rewrite)
    try:
        yield relay.port, relay
    finally:
        relay.close()
