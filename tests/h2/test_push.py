"""The ``push`` handler: HTTP/2 server push of configured resources and of ``Link``
URIs, seen by a real HTTP/2 client (the ``h2`` state machine over a real socket to
a real twistd) that records the PUSH_PROMISE frames and the pushed responses."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    DataReceived,
    PushedStreamReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)
from h2.settings import SettingCodes

from caddytw.caddyfile import adapt
from tests.support.ports import free_port
from tests.support.server import running_server

LINK = (
    "</script.js>; rel=preload, </nopush.js>; rel=preload; nopush, "
    "<https://elsewhere.example/x.js>; rel=preload"
)
CADDYFILE = """{{
    servers {{
        protocols h1 h2c
    }}
}}
http://127.0.0.1:{port} {{
    bind 127.0.0.1
    root * {root}
    push /page.html /style.css {{
        GET /head.txt
        headers {{
            X-Pushed yes
        }}
    }}
    header /page.html Link "{link}"
    file_server
}}
"""


def exchange(port: int, path: str, enable_push: bool = True) -> dict[str, Any]:
    """GET ``path`` over h2c; every stream's request, status and body until all end."""
    connection = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    connection.update_settings({SettingCodes.ENABLE_PUSH: int(enable_push)})
    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", path),
        ("user-agent", "push-test"),
        ("cookie", "secret=1"),
    ]
    connection.send_headers(1, headers, end_stream=True)
    streams: dict[int, dict[str, Any]] = {1: {"request": dict(headers), "body": b""}}
    open_streams = {1}
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(connection.data_to_send())
        while open_streams:
            data = sock.recv(65536)
            assert data, "connection closed"
            for event in connection.receive_data(data):
                if isinstance(event, PushedStreamReceived):
                    streams[event.pushed_stream_id] = {
                        "request": dict(event.headers),
                        "body": b"",
                        "parent": event.parent_stream_id,
                    }
                    open_streams.add(event.pushed_stream_id)
                elif isinstance(event, ResponseReceived):
                    streams[event.stream_id]["status"] = dict(event.headers)[":status"]
                elif isinstance(event, DataReceived):
                    streams[event.stream_id]["body"] += event.data
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, (StreamEnded, StreamReset)):
                    open_streams.discard(event.stream_id)
            sock.sendall(connection.data_to_send())
    return streams


def test_resources_and_link_preloads_are_pushed(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    for name, text in {
        "page.html": "<p>page",
        "style.css": "p{}",
        "head.txt": "h",
        "script.js": "js",
        "nopush.js": "no",
        "other.html": "o",
    }.items():
        (root / name).write_text(text)
    port = free_port()
    config, _ = adapt(CADDYFILE.format(port=port, root=root, link=LINK))
    with running_server(config, tmp_path, [port]) as server:
        streams = exchange(port, "/page.html")
        assert streams[1]["status"] == "200" and streams[1]["body"] == b"<p>page"
        pushed = {s["request"][":path"]: s for sid, s in streams.items() if sid != 1}
        assert sorted(pushed) == ["/head.txt", "/script.js", "/style.css"]
        assert pushed["/style.css"]["body"] == b"p{}"
        assert pushed["/script.js"]["body"] == b"js"
        assert pushed["/head.txt"]["request"][":method"] == "GET"
        assert pushed["/head.txt"]["body"] == b"h"
        request = pushed["/style.css"]["request"]
        # Caddy's pushed requests: a few safe fields, its marker, the handler's ops.
        assert request["user-agent"] == "push-test" and request["x-pushed"] == "yes"
        assert request["caddy-push"] == "1" and "cookie" not in request
        assert all(s["parent"] == 1 for s in pushed.values())
        # The matcher limits it; a client that disabled push gets only its answer.
        assert sorted(exchange(port, "/other.html")) == [1]
        assert sorted(exchange(port, "/page.html", enable_push=False)) == [1]
        assert "Traceback" not in server.log()


def test_only_safe_methods_are_pushed() -> None:
    import pytest

    from caddytw.config.errors import ConfigError
    from caddytw.config.reader import ObjectReader
    from caddytw.handlers.push import build, parse_links

    with pytest.raises(ConfigError) as error:
        build(ObjectReader({"resources": [{"method": "POST", "target": "/x"}]}, "h"), None, None)
    assert error.value.path == "h.resources[0].method"
    assert parse_links(["</a.js>; rel=preload, </b.css>; rel=preload; nopush"]) == [
        ("/a.js", {"rel"}),
        ("/b.css", {"rel", "nopush"}),
    ]
