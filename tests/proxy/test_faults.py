"""Failures with real processes: retries, timeouts, broken and dead upstreams, a kill under
load, and no leaked connections in the proxy."""

from __future__ import annotations

import socket
import threading
import time

from tests.proxy.harness import (
    Client,
    get,
    open_fds,
    port_of,
    proxy,
    proxy_route,
    settled_fds,
    start_upstream,
    upstreams,
)
from tests.support.ports import free_port

DEAD = "127.0.0.1:{}"


def dead_dial() -> str:
    return DEAD.format(free_port())  # nothing listens there


def statuses(port: int, count: int, method: str = "GET") -> list[int]:
    client = Client(port)
    try:
        return [client.request(method, "/").status for _ in range(count)]
    finally:
        client.close()


def round_robin(**extra):
    return {"selection_policy": {"policy": "round_robin"}, **extra}


def test_dial_errors_are_retried_on_another_upstream(tmp_path):
    with upstreams("a") as (a,):
        route = [dead_dial(), a.dial]
        with proxy(tmp_path, proxy_route(route, load_balancing=round_robin())) as server:
            without = statuses(port_of(server), 6)
        with proxy(tmp_path, proxy_route(route, load_balancing=round_robin(retries=1))) as server:
            with_retries = statuses(port_of(server), 6, method="POST")  # dial: any method
    assert sorted(set(without)) == [200, 502]
    assert with_retries == [200] * 6


def test_non_dial_failures_retry_only_get_unless_retry_match(tmp_path):
    with upstreams("a") as (a,), upstreams("bad", mode="garbage") as (bad,):
        route = [bad.dial, a.dial]
        with proxy(tmp_path, proxy_route(route, load_balancing=round_robin(retries=1))) as server:
            port = port_of(server)
            assert statuses(port, 4) == [200] * 4
            assert 502 in statuses(port, 4, method="POST")
        lb = round_robin(retries=1, retry_match=[{"method": ["POST"]}])
        with proxy(tmp_path, proxy_route(route, load_balancing=lb)) as server:
            assert statuses(port_of(server), 4, method="POST") == [200] * 4


def test_broken_response_is_502(tmp_path):
    with upstreams("bad", mode="garbage") as (bad,), proxy(tmp_path, proxy_route([bad])) as s:
        assert get(port_of(s)).status == 502


def test_silent_upstream_is_504_after_the_header_timeout(tmp_path):
    transport = {"protocol": "http", "response_header_timeout": "500ms"}
    with (
        upstreams("hang", mode="hang") as (hang,),
        proxy(tmp_path, proxy_route([hang], transport=transport)) as server,
    ):
        assert Client(port_of(server), timeout=10).request().status == 504


def test_try_duration_keeps_trying_then_gives_up(tmp_path):
    lb = {"try_duration": "600ms", "try_interval": "100ms"}
    with proxy(tmp_path, proxy_route([dead_dial()], load_balancing=lb)) as server:
        assert get(port_of(server)).status == 502
        # A late upstream is found within try_duration.
    port = free_port()
    lb = {"try_duration": "5s", "try_interval": "100ms"}
    with proxy(tmp_path, proxy_route([f"127.0.0.1:{port}"], load_balancing=lb)) as server:
        result = {}
        thread = threading.Thread(target=lambda: result.update(r=get(port_of(server))))
        thread.start()
        time.sleep(0.5)
        late = start_upstream("late", port=port)
        thread.join(timeout=15)
        late.kill()
    assert result["r"].status == 200 and result["r"].upstream == "late"


def test_all_upstreams_down_is_503_once_health_removed_them(tmp_path):
    health = {"passive": {"fail_duration": "30s", "max_fails": 1}}
    route = proxy_route([dead_dial(), dead_dial()], health_checks=health)
    with proxy(tmp_path, route) as server:
        got = statuses(port_of(server), 4)
    assert got[:2] == [502, 502] and got[2:] == [503, 503]


def test_upstream_killed_under_load(tmp_path):
    """Clients see errors only for requests in flight at the kill; then passive health
    routes around the dead upstream and nothing fails; the proxy leaks no descriptors."""
    health = {"passive": {"fail_duration": "30s", "max_fails": 1}}
    transport = {"protocol": "http", "keep_alive": {"idle_timeout": "1s"}}
    with upstreams("a", "b", "c") as (a, b, c):
        route = proxy_route(
            [a, b, c],
            load_balancing=round_robin(retries=2),
            health_checks=health,
            transport=transport,
        )
        with proxy(tmp_path, route) as server:
            port, pid = port_of(server), server.process.pid
            get(port)
            time.sleep(1.5)  # let the warm-up connection idle out
            baseline = settled_fds(pid)
            results: list[tuple[int, str]] = []
            killed = threading.Event()
            workers = 4

            def load() -> None:
                client = Client(port)
                for index in range(150):
                    try:
                        reply = client.request("GET", f"/{index}")
                        results.append(
                            (reply.status, reply.upstream if reply.status == 200 else "")
                        )
                    except OSError:
                        results.append((0, ""))
                    if index == 40 and not killed.is_set():
                        killed.set()
                        b.kill()
                client.close()

            threads = [threading.Thread(target=load) for _ in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            failures = [r for r in results if r[0] != 200]
            assert len(results) == workers * 150
            assert len(failures) <= workers  # at most the requests in flight at the kill
            assert all(status == 200 and name != "b" for status, name in results[-100:])
            assert {name for _, name in results[-100:]} == {"a", "c"}
            deadline = time.monotonic() + 10
            while open_fds(pid) > baseline and time.monotonic() < deadline:
                time.sleep(0.2)
            assert open_fds(pid) == baseline
            assert server.process.poll() is None


def test_client_leaving_cancels_the_upstream_request(tmp_path):
    """A client that goes away while the upstream is silent, or mid-body, takes the
    upstream connection with it: the proxy's descriptors return to their baseline."""
    with upstreams("hang", mode="hang") as (hang,), upstreams("big") as (big,):
        handler = {
            "handler": "subroute",
            "routes": [
                {"match": [{"path": ["/big"]}], "handle": [proxy_route([big])]},
                {"handle": [proxy_route([hang])]},
            ],
        }
        with proxy(tmp_path, handler) as server:
            port, pid = port_of(server), server.process.pid
            baseline = settled_fds(pid)
            for request in (
                b"GET /silent HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /big?size=1000000000 HTTP/1.1\r\nHost: x\r\n\r\n",
            ):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(request)
                if b"big" in request:
                    assert sock.recv(100).startswith(b"HTTP/1.1 200")
                deadline = time.monotonic() + 10  # client and upstream connections open
                while open_fds(pid) < baseline + 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert open_fds(pid) >= baseline + 2
                sock.close()
                deadline = time.monotonic() + 10
                while open_fds(pid) > baseline and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert open_fds(pid) == baseline
            assert server.process.poll() is None
