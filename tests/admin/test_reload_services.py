"""A reload keeps shared background work alive: a sync folder's store and watcher."""

import hashlib
import json
import time

from tests.admin.test_admin_process import Admin, get
from tests.support.ports import free_port
from tests.support.server import running_server


def sync_config(admin_port, port, root, body):
    return {
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "apps": {
            "http": {
                "servers": {
                    "srv0": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": [
                            {
                                "match": [{"path": ["/api/*"]}],
                                "handle": [
                                    {
                                        "handler": "file_sync",
                                        "root": str(root),
                                        "enable_upload": True,
                                    }
                                ],
                            },
                            {"handle": [{"handler": "static_response", "body": body}]},
                        ],
                    }
                }
            }
        },
    }


def upload(port, path, data):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(
        "POST",
        f"/api/upload?path={path}",
        body=data,
        headers={
            "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
            "X-Requested-With": "test",  # no tokens: changes need a non-simple header
        },
    )
    response = connection.getresponse()
    response.read()
    return response.status


def listed(port):
    status, body = get(port, "/api/list")
    assert status == 200
    return {entry["path"] for entry in json.loads(body)}


def test_file_sync_keeps_working_across_reloads(tmp_path):
    admin_port, port = free_port(), free_port()
    root = tmp_path / "data"
    root.mkdir()
    admin = Admin(admin_port)
    with running_server(sync_config(admin_port, port, root, "v1"), tmp_path, [port, admin_port]):
        assert upload(port, "before.txt", b"one") in (200, 201)
        for version in ("v2", "v3"):
            status, _, body = admin.call(
                "POST", "/load", sync_config(admin_port, port, root, version)
            )
            assert status == 200, body
            assert get(port, "/")[1] == version.encode()
        assert upload(port, "after.txt", b"two") in (200, 201)
        (root / "outside.txt").write_bytes(b"written by another program")
        deadline = time.monotonic() + 15
        while "outside.txt" not in listed(port) and time.monotonic() < deadline:
            time.sleep(0.1)  # the watcher still runs after the reloads
        assert {"before.txt", "after.txt", "outside.txt"} <= listed(port)


def test_admin_lists_reverse_proxy_upstreams(tmp_path):
    admin_port, port, upstream_port = free_port(), free_port(), free_port()
    upstream = {
        "apps": {
            "http": {
                "servers": {
                    "up": {
                        "listen": [f"127.0.0.1:{upstream_port}"],
                        "routes": [
                            {"handle": [{"handler": "static_response", "body": "from upstream"}]}
                        ],
                    }
                }
            }
        },
        "admin": {"disabled": True},
    }
    proxy = {
        "admin": {"listen": f"127.0.0.1:{admin_port}"},
        "apps": {
            "http": {
                "servers": {
                    "srv0": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": [
                            {
                                "handle": [
                                    {
                                        "handler": "reverse_proxy",
                                        "upstreams": [{"dial": f"127.0.0.1:{upstream_port}"}],
                                    }
                                ]
                            }
                        ],
                    }
                }
            }
        },
    }
    (tmp_path / "up").mkdir()
    (tmp_path / "proxy").mkdir()
    with (
        running_server(upstream, tmp_path / "up", [upstream_port]),
        running_server(proxy, tmp_path / "proxy", [port, admin_port]),
    ):
        for _ in range(3):
            assert get(port, "/") == (200, b"from upstream")
        status, _, body = Admin(admin_port).call("GET", "/reverse_proxy/upstreams")
        assert status == 200
        assert json.loads(body) == [
            {"address": f"127.0.0.1:{upstream_port}", "num_requests": 0, "fails": 0}
        ]
        status, _, body = Admin(admin_port).call("GET", "/metrics")
        assert status == 200
