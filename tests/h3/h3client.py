"""A small HTTP/3 client (aioquic's asyncio API) run by the tests in a separate process.

Usage: ``python h3client.py SPEC_JSON``. The spec::

    {"host": "127.0.0.1", "port": 4433, "server_name": "localhost",
     "connections": [[{"method": "GET", "path": "/", "headers": {}, "body_size": 0}]],
     (or ``"raw_headers": [[name, value], ...]``: sent instead, unchecked, for probes)
     "vanish": false, "retry_expected": false}

Every connection is opened at once; the requests of one connection run concurrently
on their own streams. Prints one JSON object: per connection, per request, the status,
headers, body length, SHA-256 and (for small bodies) the body text. With ``vanish``, the
process sends its requests then exits without closing anything (a client that vanishes).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import sys
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset

SMALL = 4096


class Exchange:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, list[str]] = {}
        self.length = 0
        self.digest = hashlib.sha256()
        self.small = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error = ""

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "headers": self.headers,
            "length": self.length,
            "sha256": self.digest.hexdigest(),
        }
        if self.length <= SMALL:
            out["body"] = bytes(self.small).decode("utf-8", "replace")
        if self.error:
            out["error"] = self.error
        return out


class HeadAwareH3Connection(H3Connection):
    """aioquic's client compares a response's Content-Length with its DATA even for HEAD
    requests (whose responses carry the length of the body they omit, RFC 9110 9.3.2)."""

    head_streams: set[int]

    def _check_content_length(self, stream: Any) -> None:
        if stream.stream_id not in self.head_streams:
            super()._check_content_length(stream)


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = HeadAwareH3Connection(self._quic)
        self.h3.head_streams = set()
        self.exchanges: dict[int, Exchange] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset) and event.stream_id in self.exchanges:
            exchange = self.exchanges[event.stream_id]
            exchange.error = f"reset {event.error_code}"
            if not exchange.done.done():
                exchange.done.set_result(None)
        if isinstance(event, ConnectionTerminated):
            for pending in self.exchanges.values():
                if not pending.done.done():
                    pending.error = f"connection terminated: {event.reason_phrase}"
                    pending.done.set_result(None)
        for h3_event in self.h3.handle_event(event):
            found = self.exchanges.get(getattr(h3_event, "stream_id", -1))
            if found is None:
                continue
            exchange = found
            if isinstance(h3_event, HeadersReceived):
                for name, value in h3_event.headers:
                    if name == b":status":
                        exchange.status = int(value)
                    else:
                        exchange.headers.setdefault(name.decode(), []).append(value.decode())
            elif isinstance(h3_event, DataReceived):
                exchange.length += len(h3_event.data)
                exchange.digest.update(h3_event.data)
                if len(exchange.small) <= SMALL:
                    exchange.small += h3_event.data[: SMALL + 1]
            if getattr(h3_event, "stream_ended", False) and not exchange.done.done():
                exchange.done.set_result(None)

    async def request(self, spec: dict[str, Any], authority: str) -> Exchange:
        stream_id = self._quic.get_next_available_stream_id()
        exchange = Exchange()
        self.exchanges[stream_id] = exchange
        method = spec.get("method", "GET")
        if method == "HEAD":
            self.h3.head_streams.add(stream_id)
        body = spec.get("body", "").encode()
        if spec.get("body_size"):
            body = pattern(int(spec["body_size"]))
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", spec.get("path", "/").encode()),
        ]
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        for name, value in spec.get("headers", {}).items():
            headers.append((name.lower().encode(), value.encode()))
        if "raw_headers" in spec:  # exactly these fields, as given (probes)
            headers = [(name.encode(), value.encode()) for name, value in spec["raw_headers"]]
        # "open": send the headers only and leave the stream open (a body to come).
        self.h3.send_headers(stream_id, headers, end_stream=not body and not spec.get("open"))
        if body:
            step = 64 * 1024
            for start in range(0, len(body), step):
                chunk = body[start : start + step]
                self.h3.send_data(stream_id, chunk, end_stream=start + step >= len(body))
                self.transmit()
                await asyncio.sleep(0)
        self.transmit()
        return exchange


def pattern(size: int) -> bytes:
    """Deterministic bytes (the server-side test handler produces the same ones)."""
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


async def run_connection(spec: dict[str, Any], requests: list[dict[str, Any]]) -> list[Any]:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    configuration.verify_mode = ssl.CERT_NONE
    configuration.server_name = spec.get("server_name", "localhost")
    configuration.idle_timeout = float(spec.get("idle_timeout", 20))
    authority = f"{configuration.server_name}:{spec['port']}"
    async with connect(
        spec.get("host", "127.0.0.1"),
        spec["port"],
        configuration=configuration,
        create_protocol=H3Client,
        wait_connected=True,
    ) as client:
        assert isinstance(client, H3Client)
        exchanges = [await client.request(r, authority) for r in requests]
        if spec.get("vanish"):
            await asyncio.sleep(0.2)  # let the requests leave, then disappear
            print(json.dumps({"vanished": True}), flush=True)
            os._exit(0)
        timeout = float(spec.get("timeout", 60))
        await asyncio.wait_for(asyncio.gather(*(e.done for e in exchanges)), timeout)
        return [e.result() for e in exchanges]


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    results = await asyncio.gather(
        *(run_connection(spec, requests) for requests in spec["connections"]),
        return_exceptions=True,
    )
    out: list[Any] = []
    for result in results:
        if isinstance(result, BaseException):
            out.append({"error": f"{type(result).__name__}: {result}"})
        else:
            out.append(result)
    return {"connections": out}


def run(spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Run this client in its own process (its asyncio loop stays out of the test's) on
    ``spec`` (host defaults to 127.0.0.1, server name to localhost); its JSON output."""
    import subprocess

    from tests.support.server import server_env

    full = {"host": "127.0.0.1", "server_name": "localhost", **spec}
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(full)],
        capture_output=True,
        timeout=timeout,
        env=server_env(),
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
