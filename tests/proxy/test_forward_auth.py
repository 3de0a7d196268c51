"""``forward_auth`` and ``handle_response`` answer like Debian's Caddy on one Caddyfile,
with a real auth service process (tests/proxy/authservice.py) and a real application
upstream (tests/proxy/upstream.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from caddytw.caddyfile.adapter import adapt
from tests.compat.harness import CADDY, both_servers, fetch
from tests.proxy.harness import start_upstream
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")

AUTH_SCRIPT = Path(__file__).with_name("authservice.py")
AUTH_HEADERS = (
    "content-type",
    "content-length",
    "location",
    "www-authenticate",
    "x-auth-reason",
    "x-auth-saw",
)
APP_HEADERS = ("x-user", "remote-email", "remote-user", "x-forwarded-method", "x-forwarded-uri")

CADDYFILE = """
:80 {
    handle /rp/* {
        reverse_proxy 127.0.0.1:AUTH {
            header_up X-Forwarded-Uri {uri}
            @denied status 401
            handle_response @denied {
                copy_response_headers {
                    include X-Auth-Reason
                }
                respond "status {rp.status_code} / {rp.status_text} / {rp.header.X-Auth-Reason}" 403
            }
            @moved status 3xx
            handle_response @moved {
                copy_response 203
            }
        }
    }
    handle /st/* {
        reverse_proxy 127.0.0.1:AUTH {
            header_up X-Forwarded-Uri {uri}
            @denied status 4xx
            replace_status @denied 418
        }
    }
    handle {
        forward_auth 127.0.0.1:AUTH {
            uri /verify?from=proxy
            copy_headers Remote-User>X-User Remote-Email
        }
        reverse_proxy 127.0.0.1:APP
    }
}
"""


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    auth_port = free_port()
    auth = subprocess.Popen([sys.executable, str(AUTH_SCRIPT), str(auth_port)])
    app = start_upstream("app")
    try:
        assert wait_for_port(auth_port)
        text = CADDYFILE.replace("AUTH", str(auth_port)).replace("APP", str(app.port))
        config, _ = adapt(text)
        with both_servers(config, tmp_path_factory.mktemp("fa")) as both:
            yield both
    finally:
        app.kill()
        auth.kill()
        auth.wait(timeout=5)


def both(ports: tuple[int, int], method: str, target: str, body: bytes | None = None):
    return [fetch(port, method, target, body=body) for port in ports]


def app_view(body: bytes) -> dict[str, object]:
    seen = json.loads(body)
    headers = {k.lower(): v for k, v in seen["headers"] if k.lower() in APP_HEADERS}
    return {"method": seen["method"], "path": seen["path"], "headers": headers}


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [("GET", "/ok/page?x=1", None), ("POST", "/ok/form", b"a=1"), ("HEAD", "/ok/h", None)],
)
def test_allowed_reaches_the_app_with_copied_headers(ports, method, target, body) -> None:
    caddy, ours = both(ports, method, target, body)
    assert caddy.status == ours.status == 200
    if method != "HEAD":
        view = app_view(ours.body)
        assert view == app_view(caddy.body)
        assert view["headers"] == {"x-user": "alice", "remote-email": "alice@example.com"}
        assert view["method"] == method


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/secret?q=1"),  # denied: 401, the service's body and headers
        ("POST", "/secret"),  # the check is a GET whatever the client sent
        ("GET", "/login/here"),  # redirect to the login page
    ],
)
def test_denied_answers_with_the_auth_service_response(ports, method, target) -> None:
    caddy, ours = both(ports, method, target)
    assert ours.comparable(AUTH_HEADERS) == caddy.comparable(AUTH_HEADERS)
    assert ours.status in (401, 302)
    assert ours.headers["x-auth-saw"].startswith(f"GET /verify?from=proxy {method} {target}")


@pytest.mark.parametrize("target", ["/rp/nope", "/rp/login", "/rp/ok", "/st/nope", "/st/ok"])
def test_handle_response_routes_and_copy_response(ports, target) -> None:
    caddy, ours = both(ports, "GET", target)
    assert ours.comparable(AUTH_HEADERS) == caddy.comparable(AUTH_HEADERS)
    expected = {"/rp/nope": 403, "/rp/login": 203, "/rp/ok": 200, "/st/nope": 418, "/st/ok": 200}
    assert ours.body == caddy.body
    assert ours.status == expected[target]
    if target == "/rp/nope":
        assert ours.body == b"status 401 / 401 Unauthorized / no"
