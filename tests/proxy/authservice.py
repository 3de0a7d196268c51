"""A forward-auth service, run as its own process: ``python authservice.py PORT``.

It decides from ``X-Forwarded-Uri`` (what ``forward_auth`` sends), as Authelia-like
services do: a URI with ``/ok`` is allowed (200 with ``Remote-User``/``Remote-Email``),
one with ``/login`` is sent to a login page (302), anything else is denied (401 with a body and
``WWW-Authenticate``). Every answer says in ``X-Auth-Saw`` which request it got.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "authservice"
    sys_version = ""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        uri = self.headers.get("X-Forwarded-Uri", "")
        saw = f"{self.command} {self.path} {self.headers.get('X-Forwarded-Method', '')} {uri}"
        if "/ok" in uri:
            code, body = 200, b"allowed, not shown\n"
            extra = [("Remote-User", "alice"), ("Remote-Email", "alice@example.com")]
        elif "/login" in uri:
            code, body = 302, b""
            extra = [("Location", "https://auth.example/login?rd=" + uri)]
        else:
            code, body = 401, b"denied by the auth service\n"
            extra = [("WWW-Authenticate", 'Basic realm="test"'), ("X-Auth-Reason", "no")]
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Auth-Saw", saw)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # the proxy's rewrite must make every check a GET


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
