"""Is the ``h2`` library the wall? Server CPU µs per request for a 1 KiB answer over
cleartext HTTP/2 (h2c, ``h2load -c10 -m10``): caddytw's ``file_server``, next to the floor
of each protocol library it could sit on, a bare Twisted protocol that does nothing but
answer a fixed 1 KiB:

* ``h2`` (pure Python, what ``twisted.web`` and caddytw use): ``receive_data``,
  ``send_headers``, ``send_data``, one write per read;
* ``libnghttp2`` through ``pynghttp2`` (PyPI, ctypes bindings; needs ``libnghttp2.so``,
  Debian's ``libnghttp2-dev``, or ``--nghttp2-lib DIR`` holding that name), when installed.

    PYTHONPATH=. python bench/h2_floor.py [--rounds 3] [--requests 20000]

Servers are pinned to ``BENCH_SERVER_CPUS``, h2load to ``BENCH_CLIENT_CPUS``. Prints
Markdown; not run in CI. Measured for issue 18 (item 4): see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import common

REPO = common.REPO
sys.path.insert(0, str(REPO))

from tests.support.configs import plain_and_tls  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.server import start_server  # noqa: E402
from tests.tls.pki import TestCA  # noqa: E402

BODY = b"x" * 1024
FIELDS = [(b":status", b"200"), (b"content-type", b"application/octet-stream")]


def serve_h2(port: int) -> None:
    """The ``h2`` floor (run in its own process)."""
    import h2.config
    import h2.connection
    import h2.events
    from twisted.internet import protocol, reactor

    class Floor(protocol.Protocol):
        def connectionMade(self) -> None:
            config = h2.config.H2Configuration(
                client_side=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
            self.conn = h2.connection.H2Connection(config)
            self.conn.initiate_connection()
            self.transport.write(self.conn.data_to_send())  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            conn = self.conn
            for event in conn.receive_data(data):
                if type(event) is h2.events.RequestReceived:
                    conn.send_headers(event.stream_id, FIELDS)
                    conn.send_data(event.stream_id, BODY, end_stream=True)
            self.transport.write(conn.data_to_send())  # type: ignore[union-attr]

    reactor.listenTCP(port, protocol.Factory.forProtocol(Floor), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def serve_nghttp2(port: int) -> None:
    """The ``libnghttp2`` floor through ``pynghttp2`` (run in its own process)."""
    from ctypes import memmove, string_at

    from pynghttp2 import nghttp2
    from twisted.internet import protocol, reactor

    fields = [(name.decode(), value.decode()) for name, value in FIELDS]

    @nghttp2.on_header_callback  # type: ignore[misc]
    def on_header(
        session: Any,
        frame: Any,
        name: Any,
        nlen: int,
        value: Any,
        vlen: int,
        flags: int,
        proto: Any,
    ) -> int:
        proto.fields.setdefault(frame[0].hd.stream_id, []).append(
            (string_at(name, nlen), string_at(value, vlen))
        )
        return 0

    @nghttp2.on_frame_recv_callback  # type: ignore[misc]
    def on_frame_recv(session: Any, frame: Any, proto: Any) -> int:
        head = frame[0].hd
        if head.type == nghttp2.frame_type.HEADERS and head.flags & nghttp2.flag.END_STREAM:
            proto.session.submit_response(head.stream_id, fields, provider)
        return 0

    @nghttp2.on_stream_close_callback  # type: ignore[misc]
    def on_stream_close(session: Any, stream_id: int, code: int, proto: Any) -> int:
        proto.fields.pop(stream_id, None)
        return 0

    @nghttp2.data_source_read_callback  # type: ignore[misc]
    def read_body(
        session: Any, sid: int, buf: Any, size: int, flags: Any, src: Any, data: Any
    ) -> int:
        memmove(buf, BODY, len(BODY))
        flags[0] = nghttp2.data_flag.EOF
        return len(BODY)

    provider = nghttp2.data_provider(read_callback=read_body)
    callbacks = {
        "on_header": on_header,
        "on_frame_recv": on_frame_recv,
        "on_stream_close": on_stream_close,
    }

    class Floor(protocol.Protocol):
        def connectionMade(self) -> None:
            self.fields: dict[int, list[tuple[bytes, bytes]]] = {}
            self.session = nghttp2.Session(nghttp2.session_type.SERVER, callbacks, user_data=self)
            self.session.submit_settings([])
            self.flush()

        def dataReceived(self, data: bytes) -> None:
            self.session.mem_recv(data)
            self.flush()

        def flush(self) -> None:
            out = []
            while chunk := self.session.mem_send():
                out.append(chunk)
            if out:
                self.transport.write(b"".join(out))  # type: ignore[union-attr]

    reactor.listenTCP(port, protocol.Factory.forProtocol(Floor), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def h2load(url: str, requests: int) -> int:
    out = subprocess.run(
        common.pinned(
            ["h2load", "-n", str(requests), "-c", "10", "-m", "10", url], common.CLIENT_CPUS
        ),
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    done = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if not done or int(done.group(2)):
        raise RuntimeError(f"h2load failed on {url}:\n{out}")
    return int(done.group(1))


def cpu_per_request(pid: int, url: str, requests: int) -> float:
    h2load(url, max(200, requests // 10))  # warm up
    before = common.cpu_seconds(pid)
    done = h2load(url, requests)
    return (common.cpu_seconds(pid) - before) / done * 1e6


def floor(kind: str, requests: int, env: dict[str, str]) -> float | None:
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, str(port)]
    process = subprocess.Popen(
        common.pinned(command, common.SERVER_CPUS), env=env, stderr=subprocess.PIPE
    )
    try:
        if not wait_for_port(port, 20):
            print(
                f"{kind}: did not start: {process.stderr.read().decode()[-300:]}", file=sys.stderr
            )  # type: ignore[union-attr]
            return None
        return cpu_per_request(process.pid, f"http://127.0.0.1:{port}/1k.bin", requests)
    finally:
        process.terminate()
        process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=common.rounds(3))
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--nghttp2-lib", help="a directory holding libnghttp2.so")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        {"h2": serve_h2, "nghttp2": serve_nghttp2}[args.serve[0]](int(args.serve[1]))
        return
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    if args.nghttp2_lib:
        env["LD_LIBRARY_PATH"] = args.nghttp2_lib
    results: dict[str, list[float]] = {"caddytw": [], "h2": [], "nghttp2": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        (root / "1k.bin").write_bytes(BODY)
        cert, key, _ = TestCA().write_leaf(work, "site", ["127.0.0.1"])
        for _ in range(args.rounds):
            plain, tls = free_port(), free_port()
            routes = [{"handle": [{"handler": "file_server", "root": str(root)}]}]
            config = plain_and_tls(plain, tls, routes, cert, key, work / "storage")
            server = start_server(config, work, [plain, tls])
            try:
                os.sched_setaffinity(server.process.pid, {int(common.SERVER_CPUS.split(",")[0])})
                url = f"http://127.0.0.1:{plain}/1k.bin"
                results["caddytw"].append(cpu_per_request(server.process.pid, url, args.requests))
            finally:
                server.stop()
            for kind in ("h2", "nghttp2"):
                value = floor(kind, args.requests, env)
                if value is not None:
                    results[kind].append(value)
    labels = {
        "caddytw": "caddytw `file_server` (h2 library, CaddyH2Connection)",
        "h2": "floor: bare `h2` protocol, fixed answer",
        "nghttp2": "floor: bare `libnghttp2` via `pynghttp2`, fixed answer",
    }
    rows = [
        [labels[kind], f"{statistics.median(values):.1f}" if values else "not available"]
        for kind, values in results.items()
    ]
    print(
        f"h2c 1 KiB, h2load -c10 -m10 -n{args.requests}, median of {args.rounds}; "
        f"server on CPU {common.SERVER_CPUS}, h2load on CPU {common.CLIENT_CPUS}.\n"
    )
    print(common.markdown_table(["server", "server CPU µs/req"], rows))


if __name__ == "__main__":
    main()
