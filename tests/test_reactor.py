"""The reactor a server process runs on (caddytw.server.reactor), with real processes:
twistd picks it unless told otherwise, and an error escaping a connection's handler is
logged without stopping the loop (what Twisted's per-event log context also did)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.ports import free_port, wait_for_port
from tests.support.server import TWISTD, running_server, server_env, simple_config

HELLO = [{"handle": [{"handler": "static_response", "body": "hello"}]}]


def _get(port: int) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    connection.request("GET", "/")
    body = connection.getresponse().read()
    connection.close()
    return body


def test_twistd_serves_on_caddys_reactor(tmp_path: Path) -> None:
    port = free_port()
    with running_server(simple_config(port, HELLO), tmp_path, [port]) as server:
        assert _get(port) == b"hello"
        assert "reactor class: caddytw.server.reactor.CaddyReactor" in server.log()


def test_a_reactor_chosen_with_twistd_r_is_kept(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "caddy.json"
    config.write_text(json.dumps(simple_config(port, HELLO)))
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*TWISTD, "-r", "poll", "-n", "--pidfile=", "caddy", "-c", str(config)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(),
        )
    try:
        assert wait_for_port(port, timeout=15), log.read_text()
        assert _get(port) == b"hello"
        assert "reactor class: twisted.internet.pollreactor.PollReactor" in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=15)


FAULTY = textwrap.dedent(
    """
    import socket, sys
    from twisted.logger import globalLogBeginner, textFileLogObserver
    from caddytw.server import reactor as choice

    assert choice.install()
    from twisted.internet import reactor
    from twisted.internet.abstract import FileDescriptor

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])

    class Reader(FileDescriptor):
        def __init__(self, sock):
            super().__init__(reactor)
            self.sock = sock
        def fileno(self):
            return self.sock.fileno()

    class Faulty(Reader):
        def doRead(self):
            self.sock.recv(100)
            raise RuntimeError("boom in a handler")
        def connectionLost(self, reason):
            # Twisted logs doRead's error and disconnects; this one escapes the
            # reactor's own handling, as a buggy protocol's connectionLost would.
            raise RuntimeError("boom while disconnecting")

    class Echo(Reader):
        def doRead(self):
            print("still serving:", self.sock.recv(100).decode(), flush=True)
            reactor.stop()

    a, b = socket.socketpair()
    c, d = socket.socketpair()
    faulty, echo = Faulty(a), Echo(c)
    reactor.addReader(faulty)
    reactor.addReader(echo)
    b.send(b"x")
    reactor.callLater(0.2, d.send, b"after the error")
    reactor.callLater(10, reactor.stop)
    reactor.run()
    print("reactor:", type(reactor).__name__)
    """
)


def test_an_error_escaping_a_handler_is_logged_and_the_loop_goes_on() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FAULTY],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "RuntimeError: boom in a handler" in out
    assert "Unhandled error in <__main__.Faulty" in out
    assert "RuntimeError: boom while disconnecting" in out
    assert "still serving: after the error" in out
    assert "reactor: CaddyReactor" in out
