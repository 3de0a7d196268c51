"""A server imports what its config uses, and no more (issue 18: resident memory).

Every module a process imports stays resident: ACME (acme, josepy, requests), dnspython's
transports (trio, aioquic), prometheus_client, h3, PostgreSQL, the proxy, sync... cost
tens of MB before the first request. The real start-up paths (``twistd caddy`` and
``caddytw run``) run here on a plain ``file_server`` config (admin API on), and the
modules the process holds once it listens are checked against the ones only other
configs need. The same process then serves a directory listing and an admin
``/metrics`` scrape and must have imported their modules by then: the check sees lazy
imports, it does not just miss them.

No memory numbers here (they belong to ``bench/hotpath.py``): the module set is what
decides them, and it does not vary from run to run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.ports import free_port, wait_for_port
from tests.support.server import server_env
from tests.tls.pki import TestCA

#: ``twistd`` exactly as ``tests.support.server.TWISTD`` runs it (argv[2] "twistd"), or
#: the ``caddytw`` command ("cli"), plus a SIGUSR2 handler that writes the names of the
#: imported modules to argv[1] (twistd re-raises SIGTERM at exit, so an atexit hook
#: would never run).
CHILD = """
import signal, sys
out, launcher, args = sys.argv[1], sys.argv[2], sys.argv[3:]
def dump(*_):
    with open(out + ".tmp", "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))
    import os
    os.replace(out + ".tmp", out)
signal.signal(signal.SIGUSR2, dump)
if launcher == "twistd":
    from twisted.scripts.twistd import run
    sys.argv = ["twistd", "-n", "--pidfile=", "caddy", *args]
    run()
else:
    from caddytw.cli.main import main
    sys.exit(main(["run", *args]))
"""

#: twisted.web.server and what it brings along (twisted.spread, twisted.cred's portal,
#: twisted.web's templates, xml.sax): the servers and the admin API are built on
#: twisted.web.http alone; only ACME's challenge listeners and twisted.web sessions use it.
TWISTED_WEB_SERVER = (
    "twisted.web.server",
    "twisted.web.util",
    "twisted.spread",
    "twisted.cred.portal",
    "xml.sax",
)

#: Packages and caddytw modules that a plain file server must not import.
NOT_FOR_A_FILE_SERVER = (
    *TWISTED_WEB_SERVER,
    # certificates issued or managed, TLS extras
    "acme",
    "josepy",
    "requests",
    "treq",
    "dns",
    "trio",
    "caddytw.tls.acme",
    "caddytw.tls.internal",
    "caddytw.tls.dns01",
    "caddytw.tls.pgstore",
    # HTTP/3 and the server's own HTTP/2
    "aioquic",
    "caddytw.wire.h3",
    "caddytw.wire.h2",
    # metrics before a scrape
    "prometheus_client",
    # storage and sync
    "psycopg",
    "psycopg_pool",
    "caddytw.postgres",
    "caddytw.sync",
    "caddytw.syncui",
    "caddytw.handlers.file_sync",
    "sqlite3",
    "zstandard",
    "watchdog",
    # other handlers, matchers and config formats
    "caddytw.handlers.reverse_proxy",
    "caddytw.handlers.encode",
    "brotli",
    "caddytw.http.celmatcher",
    "caddytw.caddyfile",
    "twisted.names",
    # the file server's own directory listings until one is asked for
    "caddytw.handlers.file_server.listing",
    "caddytw.handlers.file_server.gotemplate",
)


def _imported(modules: set[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def _dump(process: subprocess.Popen[bytes], out: Path) -> set[str]:
    out.unlink(missing_ok=True)
    process.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 15
    while not out.exists():
        assert process.poll() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not write its module list"
        time.sleep(0.05)
    return set(out.read_text().split())


@contextmanager
def _running(
    tmp_path: Path,
    config: dict[str, Any],
    launcher: str,
    ports: list[int],
    options: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """The server on ``config``, started by ``launcher`` (with ``options``), listening
    on ``ports``."""
    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "modules.txt"
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), launcher, "--config", str(path), *options],
        cwd=tmp_path,
        env=server_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for port in ports:
            assert wait_for_port(port, 15), (tmp_path / "server.log").read_text()
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.mark.parametrize("launcher", ["twistd", "cli"])
def test_a_plain_file_server_imports_only_what_it_uses(tmp_path: Path, launcher: str) -> None:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello")
    port, admin = free_port(), free_port()
    files = {"handler": "file_server", "root": str(root), "browse": {}}
    server = {"listen": [f"127.0.0.1:{port}"], "routes": [{"handle": [files]}]}
    config = {
        "admin": {"listen": f"127.0.0.1:{admin}"},
        "apps": {"http": {"servers": {"s": server}}},
    }
    out = tmp_path / "modules.txt"
    with _running(tmp_path, config, launcher, [port, admin]) as process:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) as reply:
            assert reply.read() == b"hello"
        serving = _dump(process, out)
        unneeded = sorted(n for n in NOT_FOR_A_FILE_SERVER if _imported(serving, n))
        assert not unneeded, f"a plain file server imported {unneeded}"
        assert "caddytw.handlers.file_server.resource" in serving

        # The control: what a listing and a scrape need arrives when they are asked for.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sub/", timeout=10) as reply:
            assert reply.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as reply:
            assert b"caddy_http_requests_total" in reply.read()
        later = _dump(process, out)
        assert "caddytw.handlers.file_server.listing" in later
        assert "prometheus_client" in later
        assert "caddytw.admin.web" in later
        assert not [n for n in TWISTED_WEB_SERVER if _imported(later, n)]


#: What a process with the admin endpoint disabled and no managed certificate never
#: needs: the admin API and ACME's challenge listeners.
NOT_WITHOUT_ADMIN = ("caddytw.admin.api", "caddytw.admin.web", "caddytw.tls.solvers")


#: What a ``reverse_proxy`` to plain HTTP/1.1 upstreams, with no ``handle_response``,
#: ``rewrite``, dynamic upstreams, active health checks or Upgrade, never needs.
NOT_FOR_A_PLAIN_PROXY = (
    "twisted.web.client",
    "caddytw.handlers.reverse_proxy.agent",
    "caddytw.handlers.reverse_proxy.fastcgi",
    "caddytw.handlers.reverse_proxy.cgienv",
    "caddytw.handlers.reverse_proxy.dynamic",
    "caddytw.handlers.reverse_proxy.h2client",
    "caddytw.handlers.reverse_proxy.handle_response",
    "caddytw.handlers.reverse_proxy.websocket",
    "caddytw.handlers.rewrite.handler",
)


def _fetch(*args: str) -> bytes:
    """curl's ``HTTP-version status`` for one request."""
    out = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", *args],
        capture_output=True,
        timeout=30,
    )
    return out.stdout


def test_the_bench_config_imports_only_what_it_uses(tmp_path: Path) -> None:
    """bench/hotpath.py's config: a file server, a reverse proxy to it and a TLS (h1 and
    h2) file server with certificates from files, admin endpoint disabled. HTTP/3
    (aioquic), the issuers (acme, requests), the admin API, twisted.web.server and the
    proxy's unused features stay out, also once a request went through the proxy and
    one over HTTP/2; the modules of what was used come in."""
    cert, key, _ = TestCA().write_leaf(tmp_path, "leaf", ["localhost", "127.0.0.1"])
    plain, proxy, tls = free_port(), free_port(), free_port()
    files = [{"handle": [{"handler": "file_server", "root": str(tmp_path)}]}]
    upstreams = [{"dial": f"127.0.0.1:{plain}"}]
    servers = {
        "files": {"listen": [f"127.0.0.1:{plain}"], "routes": files},
        "proxy": {
            "listen": [f"127.0.0.1:{proxy}"],
            "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": upstreams}]}],
        },
        "tls": {
            "listen": [f"127.0.0.1:{tls}"],
            "routes": files,
            "tls_connection_policies": [{}],
            "automatic_https": {"disable": True},
            "protocols": ["h1", "h2"],
        },
    }
    config = {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(tmp_path / "storage")},
        "apps": {
            "http": {"http_port": free_port(), "servers": servers},
            "tls": {"certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}},
        },
    }
    with _running(tmp_path, config, "twistd", [plain, proxy, tls]) as process:
        assert _fetch(f"http://127.0.0.1:{proxy}/leaf.crt") == b"1.1 200"
        assert _fetch("--http2", f"https://127.0.0.1:{tls}/leaf.crt") == b"2 200"
        serving = _dump(process, tmp_path / "modules.txt")
    needless = ("aioquic", "caddytw.wire.h3", "acme", "josepy", "requests", "treq", "dns")
    unneeded = (*needless, *TWISTED_WEB_SERVER, *NOT_WITHOUT_ADMIN, *NOT_FOR_A_PLAIN_PROXY)
    assert not [n for n in unneeded if _imported(serving, n)]
    assert "caddytw.tls.context" in serving
    assert "caddytw.wire.h2" in serving
    assert "caddytw.handlers.reverse_proxy.lean" in serving


#: What a ``--workers`` supervisor, which serves nothing, never imports: the serving
#: stack (it checks the config in a forked child before starting the workers).
NOT_FOR_A_SUPERVISOR = (
    "caddytw.server.build",
    "caddytw.server.service",
    "caddytw.http.site",
    "caddytw.http.request",
    "caddytw.wire.h1",
    "caddytw.handlers.file_server",
    "caddytw.tls.runtime",
    "caddytw.admin.service",
    "httptools",
)


def test_a_workers_supervisor_imports_no_serving_stack(tmp_path: Path) -> None:
    files = {"handler": "file_server", "root": str(tmp_path)}
    port = free_port()
    server = {"listen": [f"127.0.0.1:{port}"], "routes": [{"handle": [files]}]}
    config = {"admin": {"disabled": True}, "apps": {"http": {"servers": {"s": server}}}}
    (tmp_path / "hello.txt").write_text("hello")
    options = ("--workers", "2")
    with _running(tmp_path, config, "twistd", [port], options) as supervisor:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) as reply:
            assert reply.read() == b"hello"
        imported = _dump(supervisor, tmp_path / "modules.txt")
    assert "caddytw.server.workers.supervisor" in imported
    assert not [n for n in NOT_FOR_A_SUPERVISOR if _imported(imported, n)]
