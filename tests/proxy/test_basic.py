"""End to end through a real caddytw process: forwarding, headers, bodies, statuses."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

from tests.proxy.harness import Client, get, port_of, proxy, proxy_route, upstreams
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config


def test_forwarding_headers_and_bodies(tmp_path):
    with (
        upstreams("a") as (a,),
        proxy(
            tmp_path,
            proxy_route(
                [a],
                headers={
                    "request": {"set": {"X-Up": ["{http.reverse_proxy.upstream.address}"]}},
                    "response": {"add": {"X-Proxied": ["yes"]}, "delete": ["X-Upstream"]},
                },
            ),
        ) as server,
    ):
        port = port_of(server)
        reply = get(
            port,
            "/a%20b?x=1",
            X_Forwarded_For="6.6.6.6",
            Connection="X-Secret",
            X_Secret="1",
            Keep_Alive="timeout=5",
            Host="example.test",
        )
        assert reply.status == 200
        seen = {k.lower(): v for k, v in reply.json()["headers"]}
        assert reply.json()["path"] == "/a%20b?x=1"
        assert seen["host"] == "example.test"
        assert seen["x-forwarded-for"] == "127.0.0.1"  # the spoofed value is replaced
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-host"] == "example.test"
        assert seen["x-up"] == a.dial
        assert "x-secret" not in seen and "keep-alive" not in seen
        assert reply.headers.get_all("Server") == ["Caddy", "upstream"]
        assert reply.headers["X-Proxied"] == "yes"
        assert reply.headers["X-Upstream"] is None

        body = os.urandom(300_000)  # spooled to a temp file by twisted.web, streamed on
        client = Client(port)
        posted = client.request("POST", "/upload", body=body).json()
        assert posted["method"] == "POST"
        assert posted["body_len"] == len(body)
        assert posted["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert client.request("GET", "/status?code=418").status == 418
        head = client.request("HEAD", "/x")
        assert head.status == 200 and head.body == b""
        client.close()


def test_trusted_proxies_keep_forwarded_chain(tmp_path):
    with (
        upstreams("a") as (a,),
        proxy(tmp_path, proxy_route([a], trusted_proxies=["127.0.0.1/32"])) as server,
    ):
        reply = get(port_of(server), "/", X_Forwarded_For="6.6.6.6", X_Forwarded_Proto="https")
        seen = {k.lower(): v for k, v in reply.json()["headers"]}
        assert seen["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "https"


def test_server_sent_events_arrive_before_the_response_ends(tmp_path):
    import http.client

    with upstreams("a") as (a,), proxy(tmp_path, proxy_route([a])) as server:
        connection = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
        connection.request("GET", "/sse")
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "text/event-stream"
        # The upstream keeps the response open after three events; reading them proves
        # each was flushed as it arrived rather than at the end.
        got = b""
        while got.count(b"\n\n") < 3:
            got += response.read1(1024)
        assert got == b"data: event 0\n\ndata: event 1\n\ndata: event 2\n\n"
        connection.close()


def test_a_whole_small_answer_goes_through_encode_and_keeps_the_connection(tmp_path):
    """A small upstream answer is written in one piece (no relay): what follows the
    proxy still sees it whole (``encode`` decides on the first write), and the client
    and upstream connections both serve the next request."""
    port = free_port()
    encode = {"handler": "encode", "encodings": {"gzip": {}}, "minimum_length": 64}
    with upstreams("a") as (a,):
        config = simple_config(port, [{"handle": [encode, proxy_route([a])]}])
        with running_server(config, tmp_path, [port]):
            client = Client(port)
            for index in range(3):
                reply = client.request("GET", f"/small/{index}", Accept_Encoding="gzip")
                assert reply.status == 200 and reply.headers["Content-Encoding"] == "gzip"
                assert json.loads(gzip.decompress(reply.body))["path"] == f"/small/{index}"
                assert client.connection is not None  # kept alive
            head = client.request("HEAD", "/small/head")
            assert head.status == 200 and head.body == b""
            plain = client.request("GET", "/small/plain")
            assert plain.json()["path"] == "/small/plain"
            assert plain.headers["Content-Length"] == str(len(plain.body))
            client.close()
