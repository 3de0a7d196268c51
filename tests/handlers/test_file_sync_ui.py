"""``file_sync_ui`` configuration: strict fields with JSON paths, and its Caddyfile
directive. (What the page does is in tests/browser/test_sync_ui.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from caddytw.caddyfile import CaddyfileError, adapt
from caddytw.server.build import validate


def config(handler: dict[str, Any]) -> dict[str, Any]:
    return {
        "admin": {"disabled": True},
        "apps": {
            "http": {
                "servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"handle": [handler]}]}}
            }
        },
    }


WHERE = "apps.http.servers.srv0.routes[0].handle[0]"


@pytest.mark.parametrize("api", ["/api", "/sync/v1", "/api/"])
def test_good_configs(api: str) -> None:
    assert validate(config({"handler": "file_sync_ui", "api": api})) == []
    assert validate(config({"handler": "file_sync_ui"})) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api", 5, "expected a string, got number"),
        ("api", "api", "path prefix like /api"),
        ("api", "/", "path prefix like /api"),
        ("api", "/a b", "path prefix like /api"),
        ("api", '/x"><script>', "path prefix like /api"),
        ("api", "/api?x=1", "path prefix like /api"),
        ("root", "/srv", 'unknown field "root"'),
    ],
)
def test_bad_configs_name_the_field(field: str, value: Any, message: str) -> None:
    errors = validate(config({"handler": "file_sync_ui", field: value}))
    assert len(errors) == 1
    assert errors[0].startswith(f"{WHERE}.{field}: "), errors
    assert message in errors[0]


def test_caddyfile_directive() -> None:
    adapted, _ = adapt(
        ":8080 {\n\tfile_sync_ui\n\tfile_sync /api/* {\n\t\troot /srv/sync\n\t}\n}\n"
    )
    routes = adapted["apps"]["http"]["servers"]["srv0"]["routes"]
    # the API first (it is matched), then the page for every other path
    assert [h["handler"] for r in routes for h in r["handle"]] == ["file_sync", "file_sync_ui"]
    assert routes[1]["handle"] == [{"handler": "file_sync_ui"}]
    adapted, _ = adapt(":80 {\n\tfile_sync_ui /files/* /sync/v1\n}\n")
    route = adapted["apps"]["http"]["servers"]["srv0"]["routes"][0]
    assert route == {
        "match": [{"path": ["/files/*"]}],
        "handle": [{"handler": "file_sync_ui", "api": "/sync/v1"}],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [("file_sync_ui /a /b /c", "Wrong argument count"), ("file_sync_ui {\n\t\tx\n\t}", "no block")],
)
def test_caddyfile_errors(body: str, message: str) -> None:
    with pytest.raises(CaddyfileError, match=message):
        adapt(":80 {\n\t" + body + "\n}\n")
