"""A counting TCP relay: put it between a client and a server to measure the bytes on the
wire each way (and optionally slow the client-to-server direction down, so a test can
interrupt an upload half-way)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.support.ports import free_port


class Relay:
    """Listens on a free loopback port and forwards every connection to ``target``.

    ``up`` counts client-to-server bytes, ``down`` server-to-client bytes (payload only,
    as TCP carries them). ``up_rate`` (bytes/s, 0 = unlimited) throttles uploads.
    """

    def __init__(self, target_port: int, up_rate: int = 0) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.up = 0
        self.down = 0
        self.up_rate = up_rate
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
        return counts

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
                    else:
                        self.down += len(data)
                sink.sendall(data)
                if up and self.up_rate:
                    time.sleep(len(data) / self.up_rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
