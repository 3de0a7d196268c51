"""``dial: "unix//path"``: reverse_proxy to an HTTP upstream on a unix socket."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.proxy.harness import get, port_of, proxy, proxy_route

UPSTREAM = """
import json, socketserver, sys
from http.server import BaseHTTPRequestHandler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"path": self.path, "host": self.headers["Host"],
                           "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

Server(sys.argv[1], Handler).serve_forever()
"""


def test_http_upstream_on_a_unix_socket(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(sock)])
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with proxy(tmp_path, proxy_route([f"unix/{sock}"])) as server:
            port = port_of(server)
            for _ in range(3):  # pooled connections over the socket too
                reply = get(port, "/some/path?x=1")
                assert reply.status == 200
                data = json.loads(reply.body)
                assert data["path"] == "/some/path?x=1"
                assert data["host"] == f"127.0.0.1:{port}"
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
