"""The admin API of a real ``twistd caddy`` process: endpoints, reloads, stop, shutdown."""

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port, wait_for_port
from tests.support.server import REPO, running_server, server_env, start_server

PLUGIN = Path(__file__).parent / "plugin"
ENV = {"PYTHONPATH": f"{REPO}:{PLUGIN}"}


def make_config(admin_port, port, body="v0", grace=None, extra_routes=(), **admin):
    routes = [
        *extra_routes,
        {"@id": "main", "handle": [{"handler": "static_response", "body": body}]},
    ]
    http_app = {"servers": {"srv0": {"listen": [f"127.0.0.1:{port}"], "routes": routes}}}
    if grace:
        http_app["grace_period"] = grace
    return {"admin": {"listen": f"127.0.0.1:{admin_port}", **admin}, "apps": {"http": http_app}}


def slow_route(delay):
    return {
        "match": [{"path": ["/slow"]}],
        "handle": [{"handler": "slow_test", "delay": delay, "body": "slow done"}],
    }


class Admin:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, content_type="application/json", **headers):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type} if data is not None else {}
        all_headers.update({k.replace("_", "-"): v for k, v in headers.items()})
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def get(port, path="/"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def server(tmp_path):
    admin_port, port = free_port(), free_port()
    config = make_config(admin_port, port, extra_routes=[slow_route("0.2s")])
    with running_server(config, tmp_path, [port, admin_port], env=ENV) as process:
        process.admin = Admin(admin_port)
        process.config = config
        yield process


def test_config_endpoints_and_etags(server):
    admin = server.admin
    status, headers, body = admin.call("GET", "/config/")
    assert status == 200 and json.loads(body) == server.config
    path = "/config/apps/http/servers/srv0/routes/1/handle/0/body"
    status, headers, body = admin.call("GET", path)
    assert json.loads(body) == "v0"
    tag = headers["ETag"]
    assert tag.startswith(f'"{path} ')
    assert admin.call("PATCH", path, "v1", If_Match=tag)[0] == 200
    assert get(server.ports[0]) == (200, b"v1")
    status, _, body = admin.call("PATCH", path, "v2", If_Match=tag)
    assert status == 412
    assert get(server.ports[0]) == (200, b"v1")
    assert admin.call("PATCH", "/id/main/handle/0/body", "by id")[0] == 200
    assert get(server.ports[0]) == (200, b"by id")
    status, _, body = admin.call("POST", path, b'"x"', content_type="text/plain")
    assert status == 400 and b"'application/json' required" in body
    assert admin.call("GET", "/config/", Host="evil.example")[0] == 403
    assert admin.call("GET", "/config/", Origin="http://evil.example")[0] == 403
    assert admin.call("GET", "/id/nope")[0] == 404
    assert admin.call("GET", "/reverse_proxy/upstreams")[2] == b"[]\n"


def test_listeners_follow_the_config(server):
    admin, extra = server.admin, free_port()
    listen = "/config/apps/http/servers/srv0/listen"
    assert admin.call("POST", listen, f"127.0.0.1:{extra}")[0] == 200
    assert get(extra) == (200, b"v0")
    assert admin.call("DELETE", f"{listen}/1")[0] == 200
    deadline = time.monotonic() + 10
    while not refused(extra) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused(extra)
    assert get(server.ports[0]) == (200, b"v0")


def test_bad_load_keeps_old_config(server):
    admin = server.admin
    bad = make_config(admin.port, server.ports[0], body="bad")
    bad["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["handler"] = "no_such_handler"
    status, _, body = admin.call("POST", "/load", bad)
    assert status == 400
    error = json.loads(body)
    assert "apps.http.servers.srv0.routes[0].handle[0].handler" in error["error"]
    busy = make_config(admin.port, server.ports[0])
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    taken = other.getsockname()[1]
    busy["apps"]["http"]["servers"]["srv0"]["listen"].append(f"127.0.0.1:{taken}")
    busy["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["body"] = "busy"
    try:
        status, _, body = admin.call("POST", "/load", busy)
    finally:
        other.close()
    assert status == 400 and b"cannot listen" in body
    assert get(server.ports[0]) == (200, b"v0")
    assert json.loads(admin.call("GET", "/config/")[2]) == server.config


def test_caddyfile_load_and_admin_move(server, tmp_path):
    admin = server.admin
    new_admin = free_port()
    caddyfile = (
        f"{{\n\tadmin 127.0.0.1:{new_admin}\n}}\n"
        f'http://127.0.0.1:{server.ports[0]} {{\n\trespond "from caddyfile"\n}}\n'
    )
    status, _, body = admin.call("POST", "/load", caddyfile.encode(), content_type="text/caddyfile")
    assert status == 200, body
    assert get(server.ports[0]) == (200, b"from caddyfile")
    assert wait_for_port(new_admin, timeout=10)
    assert (
        Admin(new_admin).call("GET", "/config/admin/listen")[2]
        == f'"127.0.0.1:{new_admin}"\n'.encode()
    )
    deadline = time.monotonic() + 10
    while not refused(admin.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused(admin.port)


def metric_samples(admin):
    status, headers, body = admin.call("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(body.decode())}


def test_metrics_scrape(server):
    for _ in range(5):
        assert get(server.ports[0])[0] == 200
    assert get(server.ports[0], "/slow")[1] == b"slow done"
    families = metric_samples(server.admin)
    requests = {
        (s.labels["server"], s.labels["handler"], s.labels["code"]): s.value
        for s in families["caddy_http_requests"]
        if s.name == "caddy_http_requests_total"
    }
    assert requests[("srv0", "static_response", "2xx")] == 5
    assert requests[("srv0", "slow_test", "2xx")] == 1
    durations = [
        s for s in families["caddy_http_request_duration_seconds"] if s.name.endswith("_count")
    ]
    assert sum(s.value for s in durations) == 6
    out = [s for s in families["caddy_http_response_body_bytes"] if s.name.endswith("_total")]
    assert out[0].value == 5 * 2 + len(b"slow done")
    assert "caddy_http_requests_in_flight" in families
    assert "process_resident_memory_bytes" in families


class Hammer(threading.Thread):
    """A client sending requests as fast as it can, on one keep-alive connection or a
    new connection each time, recording every failure."""

    def __init__(self, port, keep_alive):
        super().__init__(daemon=True)
        self.port = port
        self.keep_alive = keep_alive
        self.stop = threading.Event()
        self.failures = []
        self.bodies = set()
        self.count = 0

    def run(self):
        connection = None
        while not self.stop.is_set():
            try:
                if connection is None or not self.keep_alive:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("GET", "/")
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    self.failures.append(f"status {response.status}")
                self.bodies.add(body)
                self.count += 1
            except Exception as error:
                self.failures.append(repr(error))
                connection = None
            finally:
                if connection is not None and not self.keep_alive:
                    connection.close()


def test_fifty_reloads_under_load_lose_nothing(server):
    hammers = [Hammer(server.ports[0], keep_alive=True), Hammer(server.ports[0], keep_alive=False)]
    for hammer in hammers:
        hammer.start()
    try:
        for index in range(1, 51):
            config = make_config(server.admin.port, server.ports[0], body=f"v{index}")
            status, _, body = server.admin.call("POST", "/load", config)
            assert status == 200, body
            seen = [hammer.count for hammer in hammers]
            while any(h.count <= n for h, n in zip(hammers, seen, strict=True)):
                assert all(h.is_alive() for h in hammers)
                time.sleep(0.001)  # let every client get answers between reloads
    finally:
        for hammer in hammers:
            hammer.stop.set()
        for hammer in hammers:
            hammer.join(timeout=20)
    for hammer in hammers:
        assert hammer.failures == [], hammer.failures[:5]
        assert hammer.count > 50
        assert len(hammer.bodies) > 1  # the routes did change under the client
    assert get(server.ports[0]) == (200, b"v50")


def slow_request(port, results):
    try:
        results.append(get(port, "/slow"))
    except Exception as error:
        results.append(error)


def wait_in_flight(admin, count=1):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        samples = metric_samples(admin)["caddy_http_requests_in_flight"]
        if sum(s.value for s in samples) >= count:
            return
        time.sleep(0.02)
    raise AssertionError("the slow request never started")


def assert_clean_exit(process):
    """twistd re-raises the signal after a clean shutdown, so -15 is a normal exit."""
    assert process.process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert "Server Shut Down." in process.log()


def test_sigterm_lets_in_flight_requests_finish(tmp_path):
    admin_port, port = free_port(), free_port()
    config = make_config(admin_port, port, grace="10s", extra_routes=[slow_route("1.5s")])
    process = start_server(config, tmp_path, [port, admin_port], env=ENV)
    try:
        results = []
        client = threading.Thread(target=slow_request, args=(port, results))
        client.start()
        wait_in_flight(Admin(admin_port))
        process.process.send_signal(signal.SIGTERM)
        client.join(timeout=20)
        assert results == [(200, b"slow done")]
        assert_clean_exit(process)
    finally:
        process.stop()


def test_grace_period_bounds_shutdown(tmp_path):
    admin_port, port = free_port(), free_port()
    config = make_config(admin_port, port, grace="300ms", extra_routes=[slow_route("60s")])
    process = start_server(config, tmp_path, [port, admin_port], env=ENV)
    try:
        results = []
        client = threading.Thread(target=slow_request, args=(port, results))
        client.start()
        wait_in_flight(Admin(admin_port))
        process.process.send_signal(signal.SIGTERM)
        assert_clean_exit(process)
        client.join(timeout=15)
        assert len(results) == 1 and isinstance(results[0], Exception)
    finally:
        process.stop()


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "caddytw", *args],
        env=server_env(ENV),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_cli_reload_and_stop(server, tmp_path):
    config_file = tmp_path / "new.json"
    config_file.write_text(json.dumps(make_config(server.admin.port, server.ports[0], body="cli")))
    result = run_cli("reload", "-c", str(config_file))
    assert result.returncode == 0, result.stderr
    assert get(server.ports[0]) == (200, b"cli")
    bad = make_config(server.admin.port, server.ports[0])
    bad["apps"]["http"]["servers"]["srv0"]["idle_timeout"] = "soon"
    config_file.write_text(json.dumps(bad))
    result = run_cli(
        "reload", "-c", str(config_file), "--address", f"127.0.0.1:{server.admin.port}"
    )
    assert result.returncode == 1 and "apps.http.servers.srv0.idle_timeout" in result.stderr
    assert get(server.ports[0]) == (200, b"cli")
    result = run_cli("stop", "--address", f"127.0.0.1:{server.admin.port}")
    assert result.returncode == 0, result.stderr
    assert server.process.wait(timeout=15) == 0


def test_admin_disabled(tmp_path):
    admin_port, port = free_port(), free_port()
    config = make_config(admin_port, port, disabled=True)
    with running_server(config, tmp_path, [port], env=ENV):
        assert get(port) == (200, b"v0")
        assert refused(admin_port)


def read_answer(sock):
    data = b""
    sock.settimeout(10)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_admin_bodies_are_bounded(server):
    """A config body over 100 MiB gets 413 and a closed connection: a declared one
    before ``100 Continue``, a chunked one where it passes the bound (twisted's stock
    Site spooled either whole, without a bound)."""
    from caddytw.admin.web import MAX_ADMIN_BODY

    port = server.admin.port
    head = b"POST /load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (200 << 20))
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 Continue" not in answer and b"Connection: close" in answer
    assert b'{"error":"request body too large' in answer

    piece = b" " * (1 << 20)
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent <= MAX_ADMIN_BODY + (8 << 20):
                sock.sendall(chunk)
                sent += len(piece)
        except OSError:
            pass
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent <= MAX_ADMIN_BODY + (8 << 20)  # reading stopped near the bound
    # The admin API still works, with the config unchanged.
    status, _, body = server.admin.call("GET", "/config/")
    assert status == 200 and json.loads(body) == server.config
