"""Active and passive health checks with real upstream processes and short intervals."""

from __future__ import annotations

import time

from tests.proxy.harness import Client, get, port_of, proxy, proxy_route, upstreams


def served_by(port: int, count: int) -> set[str]:
    client = Client(port)
    try:
        replies = [client.request("GET", "/") for _ in range(count)]
        return {r.upstream if r.status == 200 else str(r.status) for r in replies}
    finally:
        client.close()


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_active_checks_remove_and_restore_an_upstream(tmp_path):
    active = {
        "uri": "/health",
        "interval": "200ms",
        "timeout": "1s",
        "expect_status": 2,
        "expect_body": "^ok$",
        "passes": 2,
        "fails": 1,
    }
    with upstreams("a", "b") as (a, b):
        route = proxy_route(
            [a, b],
            load_balancing={"selection_policy": {"policy": "round_robin"}},
            health_checks={"active": active},
        )
        with proxy(tmp_path, route) as server:
            port = port_of(server)
            assert served_by(port, 6) == {"a", "b"}
            assert get(b.port, "/_health?status=503").status == 200  # b reports sick
            assert wait_until(lambda: served_by(port, 6) == {"a"})
            assert get(b.port, "/_health?status=200").status == 200
            assert wait_until(lambda: served_by(port, 6) == {"a", "b"})


def test_active_checks_mark_a_dead_upstream_unavailable(tmp_path):
    active = {"uri": "/health", "interval": "200ms", "timeout": "500ms"}
    with upstreams("a", "b") as (a, b):
        route = proxy_route(
            [a, b],
            load_balancing={"selection_policy": {"policy": "round_robin"}},
            health_checks={"active": active},
        )
        with proxy(tmp_path, route) as server:
            port = port_of(server)
            b.kill()
            # Without retries a request sent to b would be a 502; once the checker has
            # seen b die, every request goes to a.
            assert wait_until(lambda: served_by(port, 6) == {"a"})


def test_passive_unhealthy_status_counts_a_failure_that_expires(tmp_path):
    passive = {"fail_duration": "1s", "max_fails": 1, "unhealthy_status": [5]}
    with upstreams("a", "b") as (a, b):
        route = proxy_route(
            [a, b],
            load_balancing={"selection_policy": {"policy": "first"}},
            health_checks={"passive": passive},
        )
        with proxy(tmp_path, route) as server:
            port = port_of(server)
            client = Client(port)
            # The 500 is still delivered, but counts as a failure of a...
            assert client.request("GET", "/status?code=500").status == 500
            # ...so "first" moves on to b until the failure expires after fail_duration.
            assert client.request("GET", "/").upstream == "b"
            assert wait_until(lambda: client.request("GET", "/").upstream == "a")
            client.close()
