"""An HTTP/1.1 upstream that records what it receives (run as a process by the tests).

    python tests/conformance/recorder.py PORT LOG

Each request it parses becomes one JSON line in LOG: method, target, headers (in
order, as sent), body length, trailers. Answers ``200 ok`` unless the target asks for a
hostile answer: ``/huge-head`` sends a response head that never ends (header lines
without end), ``/trickle`` nothing more. Raw bytes are not parsed by anything of the
server under test: the recorder uses ``httptools`` itself, the same parser on both
sides would hide a shared bug, so it also logs the raw bytes of each connection.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import httptools

LOCK = threading.Lock()


class Connection:
    def __init__(self, sock: socket.socket, log: Path) -> None:
        self.sock = sock
        self.log = log
        self.parser = httptools.HttpRequestParser(self)
        self.current: dict[str, Any] = {}
        self.in_trailers = False
        self.answers: list[bytes] = []
        self.skip = 0

    def on_message_begin(self) -> None:
        self.current = {"headers": [], "trailers": [], "body": 0, "target": ""}
        self.in_trailers = False

    def on_url(self, url: bytes) -> None:
        self.current["target"] += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = "trailers" if self.in_trailers else "headers"
        self.current[key].append([name.decode("latin-1"), value.decode("latin-1")])

    def on_headers_complete(self) -> None:
        self.current["method"] = self.parser.get_method().decode("latin-1")
        self.in_trailers = True

    def on_body(self, body: bytes) -> None:
        self.current["body"] += len(body)

    def on_message_complete(self) -> None:
        with LOCK, self.log.open("a") as out:
            out.write(json.dumps(self.current) + "\n")
        self.answers.append(self.current["target"].encode("latin-1"))

    def feed(self, data: bytes) -> None:
        """Parse ``data``; an Upgrade request's declared body is skipped as a body (llhttp
        leaves it unparsed), never parsed as a request: this upstream is not the one
        under test."""
        if self.skip:
            taken = min(self.skip, len(data))
            self.skip -= taken
            data = data[taken:]
        if not data:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.parser = httptools.HttpRequestParser(self)
            lengths = [v for n, v in self.current["headers"] if n.lower() == "content-length"]
            self.skip = int(lengths[0]) if lengths else 0
            self.feed(data[upgrade.args[0] :])

    def run(self) -> None:
        raw = self.log.with_suffix(".raw")
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                with LOCK, raw.open("ab") as out:
                    out.write(data)
                self.feed(data)
                while self.answers:
                    if not self.answer(self.answers.pop(0)):
                        return
        except OSError:
            return
        finally:
            self.sock.close()

    def answer(self, target: bytes) -> bool:
        if target.endswith(b"/huge-head"):
            self.sock.sendall(b"HTTP/1.1 200 OK\r\n")
            line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
            try:
                for _ in range(60_000):  # 60 MB of head, never ended
                    self.sock.sendall(line)
            except OSError:
                pass
            return False
        if target.endswith(b"/trickle"):
            self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nx")
            return True
        self.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True


def main() -> None:
    port, log = int(sys.argv[1]), Path(sys.argv[2])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    while True:
        sock, _ = server.accept()
        threading.Thread(target=Connection(sock, log).run, daemon=True).start()


if __name__ == "__main__":
    main()
