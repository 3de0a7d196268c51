"""Every shipped config in conf/ validates."""

from pathlib import Path

import pytest

from caddytw.server.build import validate
from caddytw.server.configfile import load_config_file

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in CONF.iterdir()
        if p.is_file() and (p.suffix == ".json" or p.name.startswith("Caddyfile"))
    ),
    ids=lambda p: p.name,
)
def test_conf_file_validates(path):
    assert validate(load_config_file(str(path))) == []


def test_default_config_serves_the_project_site(tmp_path):
    """The README's command: the default config serves conf/site from the repo root."""
    import http.client
    import json

    from tests.support.ports import free_port
    from tests.support.server import running_server

    config = json.loads((CONF / "caddy.json").read_text())
    port = free_port()
    config["apps"]["http"]["servers"]["srv0"]["listen"] = [f"127.0.0.1:{port}"]
    with running_server(config, tmp_path, [port], cwd=CONF.parent):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert body == (CONF / "site" / "index.html").read_bytes()
        connection.request("GET", "/health")
        assert connection.getresponse().read() == b"OK"


def test_seed_sync_config_serves_the_file_manager(tmp_path):
    """The seed's config opens in a browser on a new machine: the folder is created, the page
    is at /, the API beside it."""
    import http.client
    import json

    from tests.support.ports import free_port
    from tests.support.server import running_server

    config = json.loads((CONF / "example-sync-config.json").read_text())
    port = free_port()
    config["apps"]["http"]["servers"]["file_sync_server"]["listen"] = [f"127.0.0.1:{port}"]
    config["admin"] = {"disabled": True}
    data_home = {"XDG_DATA_HOME": str(tmp_path / "data-home")}
    with running_server(config, tmp_path, [port], env=data_home):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        page = response.read()
        assert response.status == 200
        assert b'<meta name="caddytw-api" content="/api">' in page
        assert "script-src 'self'" in response.getheader("Content-Security-Policy")
        connection.request("GET", "/api/list")
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (200, [])
