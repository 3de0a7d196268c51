"""``--workers 2`` shares what must look like one server: ``/metrics`` sums every
worker (also one that was killed and replaced), and an upstream one worker finds dead
is avoided by the other too, then used again by both once it is back."""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.fast.test_workers import children, index_of, wait_until
from tests.support.ports import free_port
from tests.support.server import simple_config, start_server


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (so the kernel picks a worker each time)."""
    request = urllib.request.Request(url, headers={"Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def metric_total(admin_port: int, name: str) -> float:
    _, _, text = fetch(f"http://127.0.0.1:{admin_port}/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == name
    )


def test_metrics_are_summed_over_workers_and_survive_a_replaced_worker(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    routes = [{"handle": [{"handler": "static_response", "body": "{env.CADDYTW_WORKER_INDEX}"}]}]
    config = simple_config(port, routes)
    config["admin"] = {"listen": f"127.0.0.1:{admin_port}"}
    server = start_server(config, tmp_path, [port, admin_port], extra_args=["--workers", "2"])
    url = f"http://127.0.0.1:{port}/"
    sent = 0

    def send_until_both_served(at_least: int) -> None:
        nonlocal sent
        served: set[bytes] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _, body = fetch(url)
            assert status == 200
            sent += 1
            served.add(body)
            at_least -= 1
            if at_least <= 0 and served == {b"0", b"1"}:
                return
        raise AssertionError(f"not both workers served: {served}\n{server.log()}")

    def counted_eventually() -> bool:
        """The total reaches ``sent`` (a worker counts a request just after sending its
        answer, so a scrape may briefly lag), and never passes it."""
        totals = []

        def scrape() -> bool:
            totals.append(metric_total(admin_port, "caddy_http_requests_total"))
            return totals[-1] >= sent

        return wait_until(scrape, timeout=10) and max(totals) == sent

    try:
        assert wait_until(lambda: len(children(server.process.pid)) == 2)
        send_until_both_served(20)
        assert counted_eventually(), server.log()

        # A worker killed outright keeps its counts; its replacement adds to them.
        victim = next(p for p in children(server.process.pid) if index_of(p) == b"1")
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(children(server.process.pid) - {victim}) == 2)
        send_until_both_served(10)
        assert counted_eventually(), server.log()
        assert metric_total(admin_port, "caddy_http_requests_in_flight") == 0
    finally:
        server.stop()


class Upstream(socketserver.ThreadingTCPServer):
    """A test upstream answering ``200 <name>`` with ``Connection: close``, or, while
    ``broken``, reading the request and closing without an answer (a crashed app).
    ``hits`` counts the requests other than health probes it got while broken."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _UpstreamHandler)
        self.name = name
        self.broken = False
        self.hits = 0
        self.probes = 0
        self.lock = threading.Lock()

    @property
    def dial(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _UpstreamHandler(socketserver.StreamRequestHandler):
    server: Upstream

    def handle(self) -> None:
        line = self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        health = b" /health " in line
        with self.server.lock:
            if self.server.broken:
                if health:
                    self.server.probes += 1
                else:
                    self.server.hits += 1
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        body = self.server.name.encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        self.wfile.write(head.encode() + body)


@contextmanager
def upstream(name: str) -> Iterator[Upstream]:
    server = Upstream(name)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


MAX_FAILS = 4
FAIL_DURATION = 3.0


def test_an_upstream_down_in_one_worker_is_avoided_by_all_and_comes_back(tmp_path: Path) -> None:
    port = free_port()
    with upstream("good") as good, upstream("flaky") as flaky:
        proxy = {
            "handler": "reverse_proxy",
            "upstreams": [{"dial": good.dial}, {"dial": flaky.dial}],
            "load_balancing": {"selection_policy": {"policy": "round_robin"}},
            "health_checks": {
                "passive": {"fail_duration": f"{FAIL_DURATION}s", "max_fails": MAX_FAILS},
                "active": {"uri": "/health", "interval": "300ms", "timeout": "1s", "fails": 5},
            },
        }
        tag = {
            "handler": "headers",
            "response": {"set": {"X-Worker": ["{env.CADDYTW_WORKER_INDEX}"]}},
        }
        config = simple_config(port, [{"handle": [tag, proxy]}])
        server = start_server(config, tmp_path, [port], extra_args=["--workers", "2"])
        url = f"http://127.0.0.1:{port}/"

        def served() -> set[tuple[str, bytes]]:
            """(worker, upstream) of 10 requests; failures count as upstream b"5xx"."""
            seen = set()
            for _ in range(10):
                status, headers, body = fetch(url)
                seen.add((headers.get("X-Worker", "?"), body if status == 200 else b"5xx"))
            return seen

        everyone = {(w, u) for w in ("0", "1") for u in (b"good", b"flaky")}
        try:
            assert wait_until(lambda: len(children(server.process.pid)) == 2)
            assert wait_until(lambda: everyone <= served()), server.log()

            # The flaky upstream dies. Failures seen by either worker count for both:
            # after MAX_FAILS of them in all (plus at most one in flight per worker),
            # no request reaches it, from either worker. (Counted per worker alone,
            # it would take 2 * MAX_FAILS.)
            flaky.broken = True
            killed = time.monotonic()
            workers = set()
            for _ in range(30):
                _, headers, _ = fetch(url)
                workers.add(headers.get("X-Worker"))
            assert workers == {"0", "1"}
            assert MAX_FAILS <= flaky.hits <= MAX_FAILS + 2, server.log()

            # Once the passive failures expired, active checks keep it out everywhere.
            assert wait_until(
                lambda: time.monotonic() - killed > FAIL_DURATION + 0.5 and flaky.probes >= 10
            )
            hits = flaky.hits
            answers = served() | served()
            assert {w for w, _ in answers} == {"0", "1"}
            assert {u for _, u in answers} == {b"good"}
            assert flaky.hits == hits

            # It comes back: the active checks see it, and both workers use it again.
            flaky.broken = False
            assert wait_until(lambda: {("0", b"flaky"), ("1", b"flaky")} <= served()), server.log()
        finally:
            server.stop()
