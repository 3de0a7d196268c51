"""The library face: embed caddytw's resource tree in another Twisted program."""

import subprocess
import sys
import textwrap

import caddytw
from tests.support.server import server_env


def test_exports_exist():
    for name in caddytw.__all__:
        assert hasattr(caddytw, name), name


def test_embedding_in_a_twisted_program(tmp_path):
    program = textwrap.dedent(
        """
        import json, sys, urllib.request, threading
        from twisted.internet import reactor, threads
        from twisted.web.server import Site
        from caddytw import build_resource, build_service
        from caddytw.http.request import CaddyRequest

        config = {"apps": {"http": {"servers": {"s": {"listen": ["127.0.0.1:0"], "routes": [
            {"handle": [{"handler": "static_response", "body": "embedded {http.request.uri.path}"}]}
        ]}}}}}
        resource = build_resource(config)
        site = Site(resource, requestFactory=CaddyRequest)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        service = build_service(config)
        service.startService()
        service_port = service.bound_ports()[0]

        def fetch(p, path):
            return urllib.request.urlopen(f"http://127.0.0.1:{p}{path}", timeout=5).read().decode()

        def check():
            out = [fetch(port.getHost().port, "/mine"), fetch(service_port, "/svc")]
            return out

        def done(result):
            print(json.dumps(result))
            reactor.stop()

        def failed(failure):
            print(failure.getTraceback(), file=sys.stderr)
            reactor.stop()

        reactor.callWhenRunning(lambda: threads.deferToThread(check).addCallbacks(done, failed))
        reactor.run()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == '["embedded /mine", "embedded /svc"]', result.stderr


def test_top_level_is_a_handful_of_leaves():
    """Every concept lives in its package (``caddytw/__init__.py`` says which); the top
    level keeps the library face, ``python -m caddytw`` and the alias Twisted's plugin
    cache needs (``interfaces``: the very objects of ``caddytw.http.interfaces``)."""
    from pathlib import Path

    import caddytw.http.interfaces
    import caddytw.interfaces

    top = Path(caddytw.__file__).parent
    modules = sorted(path.name for path in top.glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "interfaces.py"]
    for name in caddytw.interfaces.__all__:
        assert getattr(caddytw.interfaces, name) is getattr(caddytw.http.interfaces, name)
    for package in ("admin", "config", "http", "server", "sync", "tls", "wire"):
        assert f"``{package}/``" in (caddytw.__doc__ or "")
