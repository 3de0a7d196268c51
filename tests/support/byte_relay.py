"""A TCP relay that counts the bytes going each way, for "what went on the wire" tests.

Plain sockets in a thread: the client talks to the relay's port, the relay to the
server; ``up`` counts client->server bytes, ``down`` server->client (headers included).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field


@dataclass
class Counts:
    up: int = 0
    down: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: What the client sent (only when ``byte_relay(record=True)``): to count requests.
    sent: bytearray | None = None

    def add(self, upward: bool, data: bytes) -> None:
        with self.lock:
            if upward:
                self.up += len(data)
                if self.sent is not None:
                    self.sent += data
            else:
                self.down += len(data)

    def requests(self, start: bytes) -> int:
        """How many requests began with ``start`` (e.g. ``b"POST /api/upload"``)."""
        with self.lock:
            sent = bytes(self.sent or b"")
        # A request may follow a body directly, so no line break is required before it.
        return sent.count(start)

    def reset(self) -> None:
        with self.lock:
            self.up = self.down = 0
            if self.sent is not None:
                self.sent = bytearray()


def _pump(source: socket.socket, sink: socket.socket, counts: Counts, upward: bool) -> None:
    try:
        while data := source.recv(65536):
            counts.add(upward, data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def byte_relay(target_port: int, record: bool = False) -> Iterator[tuple[int, Counts]]:
    """``(relay port, counts)`` while the block runs."""
    listener = socket.create_server(("127.0.0.1", 0))
    counts = Counts(sent=bytearray() if record else None)
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", target_port))
            for a, b, upward in ((client, server, True), (server, client, False)):
                threading.Thread(target=_pump, args=(a, b, counts, upward), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], counts
    finally:
        stopping.set()
        listener.close()
