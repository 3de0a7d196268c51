"""``php_fastcgi`` end to end: Debian's Caddy and caddytw on the same Caddyfile, in
front of the same real php-fpm, must give PHP the same CGI environment and the
client the same answers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.harness import CADDY, Answer, both_servers, fetch
from tests.fastcgi.phpfpm import PhpFpm

pytestmark = pytest.mark.skipif(CADDY is None, reason="Debian's caddy is not installed")

#: $_SERVER entries that differ by nature between two servers on two ports.
VARYING = {"REQUEST_TIME", "REQUEST_TIME_FLOAT", "REMOTE_PORT", "SERVER_SOFTWARE"}


def adapt(caddyfile: str, workdir: Path) -> dict[str, Any]:
    """Caddy's own JSON for the Caddyfile (the reference both servers run)."""
    path = workdir / "Caddyfile"
    path.write_text(caddyfile)
    out = subprocess.run(
        [CADDY, "adapt", "--config", str(path), "--adapter", "caddyfile"],
        check=True,
        capture_output=True,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},
    )
    config: dict[str, Any] = json.loads(out.stdout)
    return config


WORKDIR: list[Path] = []


def _server_logs() -> dict[str, str]:
    """What each server logged so far (Caddy's file, then caddytw's)."""
    work = WORKDIR[0]
    ours = "".join(p.read_text(errors="replace") for p in (work / "ours").glob("server-*.log"))
    return {"caddy": (work / "caddy" / "caddy.log").read_text(errors="replace"), "ours": ours}


@pytest.fixture(scope="module")
def servers(php_fpm: PhpFpm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    workdir = tmp_path_factory.mktemp("php-vs-caddy")
    WORKDIR[:] = [workdir]
    caddyfile = (
        ":80 {\n"
        f"\troot * {php_fpm.docroot}\n"
        f"\tphp_fastcgi 127.0.0.1:{php_fpm.port} {{\n\t\tcapture_stderr\n\t}}\n"
        "\tfile_server\n"
        "}\n"
    )
    with both_servers(adapt(caddyfile, workdir), workdir) as ports:
        yield ports


def _normalized(answer: Answer, port: int) -> dict[str, Any]:
    data = json.loads(answer.body)
    text = json.dumps({k: v for k, v in data.items() if k not in VARYING})
    return json.loads(text.replace(str(port), "PORT"))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "target",
    [
        "/info.php",
        "/info.php?a=1&b=two%20words&c",
        "/info.php/extra/path/info?x=y",
        "/sub/info.php/p%20i",
        "/INFO.PHP/case",
    ],
)
def test_cgi_environment_matches_caddy(servers: tuple[int, int], target: str) -> None:
    caddy, ours = servers
    headers = {"X-Custom": "one", "Accept": "text/html"}
    theirs, mine = fetch(caddy, "GET", target, headers), fetch(ours, "GET", target, headers)
    assert mine.status == theirs.status
    if theirs.status != 200:
        return
    reference, got = _normalized(theirs, caddy), _normalized(mine, ours)
    assert got == reference


def test_post_body_and_form_matches_caddy(servers: tuple[int, int]) -> None:
    caddy, ours = servers
    for body, content_type in (
        (b"name=caddy&lang=php", "application/x-www-form-urlencoded"),
        (b'{"json": true}', "application/json"),
        (bytes(range(256)) * 1000, "application/octet-stream"),
    ):
        headers = {"Content-Type": content_type}
        theirs = fetch(caddy, "POST", "/echo.php?q=1", headers, body)
        mine = fetch(ours, "POST", "/echo.php?q=1", headers, body)
        assert mine.status == theirs.status == 200
        assert mine.body == theirs.body == body
        for name in ("x-method", "x-content-type", "x-post", "content-type"):
            assert mine.headers.get(name) == theirs.headers.get(name), name


def test_post_environment_matches_caddy(servers: tuple[int, int]) -> None:
    caddy, ours = servers
    for method in ("POST", "PUT", "DELETE"):
        theirs = fetch(caddy, method, "/info.php", {}, b"abc")
        mine = fetch(ours, method, "/info.php", {}, b"abc")
        assert _normalized(mine, ours) == _normalized(theirs, caddy)


@pytest.mark.parametrize(
    "target", ["/pretty/url/here?page=2", "/", "/sub/", "/sub", "/missing.php", "/a.php/b"]
)
def test_pretty_urls_go_through_index_php(servers: tuple[int, int], target: str) -> None:
    caddy, ours = servers
    theirs, mine = fetch(caddy, "GET", target), fetch(ours, "GET", target)
    assert mine.status == theirs.status
    assert mine.body == theirs.body
    if target.startswith("/pretty"):
        assert json.loads(mine.body)["uri"] == target


@pytest.mark.parametrize("target", ["/status.php", "/redirect.php", "/hello.txt", "/sub"])
def test_status_and_headers_match_caddy(servers: tuple[int, int], target: str) -> None:
    caddy, ours = servers
    theirs, mine = fetch(caddy, "GET", target), fetch(ours, "GET", target)
    assert mine.status == theirs.status
    assert mine.body == theirs.body
    for name in ("location", "x-teapot", "status", "content-type", "x-powered-by"):
        assert mine.headers.get(name) == theirs.headers.get(name), name


def test_head_matches_caddy(servers: tuple[int, int]) -> None:
    caddy, ours = servers
    theirs, mine = fetch(caddy, "HEAD", "/status.php"), fetch(ours, "HEAD", "/status.php")
    # PHP turns a Location header into a 302 (whatever http_response_code said).
    assert (mine.status, mine.body) == (theirs.status, theirs.body) == (302, b"")
    assert mine.headers.get("x-teapot") == theirs.headers.get("x-teapot") == "yes"


def test_stderr_is_captured(servers: tuple[int, int]) -> None:
    """``capture_stderr``: caddytw logs what PHP wrote to FCGI_STDERR and answers as
    Caddy does. Caddy 2.6.2 itself logs nothing: its RoundTrip never hands
    ``CaptureStderr`` to its client (fixed in later Caddy), so the option's documented
    behaviour is what caddytw follows."""
    caddy, ours = servers
    for port, tag in ((caddy, "caddy"), (ours, "ours")):
        answer = fetch(port, "GET", f"/stderr.php?tag={tag}")
        assert (answer.status, answer.body) == (200, b"logged")
    deadline = time.monotonic() + 5
    while "fastcgi-stderr-marker ours" not in _server_logs()["ours"]:
        assert time.monotonic() < deadline, _server_logs()["ours"]
        time.sleep(0.05)
    assert "fastcgi-stderr-marker" not in _server_logs()["caddy"]


def test_unix_socket_upstream_matches_caddy(php_fpm: PhpFpm, tmp_path: Path) -> None:
    caddyfile = f":80 {{\n\troot * {php_fpm.docroot}\n\tphp_fastcgi unix/{php_fpm.socket}\n}}\n"
    with both_servers(adapt(caddyfile, tmp_path), tmp_path) as (caddy, ours):
        target = "/sub/info.php/x?y=1"
        theirs, mine = (
            fetch(caddy, "POST", target, {}, b"a=b"),
            fetch(ours, "POST", target, {}, b"a=b"),
        )
        assert mine.status == theirs.status == 200
        assert _normalized(mine, ours) == _normalized(theirs, caddy)
