"""In-memory pieces of handshake-time certificates, and the ``automate`` loader."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from caddytw.tls.automation import policy_for
from caddytw.tls.certs import CertificateError
from caddytw.tls.config import AutomationPolicy, subject_matches
from caddytw.tls.hello import client_hello_server_name, parse_client_hello
from caddytw.tls.ondemand import RateLimiter, certificate_from_bundle
from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.client import client_context, handshake
from tests.tls.conftest import tls_config
from tests.tls.pki import TestCA


def real_client_hello(server_name: str | None) -> bytes:
    """The first bytes Python's ssl sends (a real ClientHello)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def connect() -> None:
        with socket.create_connection(("127.0.0.1", port)) as raw:
            context = client_context()
            with contextlib.suppress(OSError, ssl.SSLError):
                context.wrap_socket(raw, server_hostname=server_name)

    thread = threading.Thread(target=connect)
    thread.start()
    connection, _ = listener.accept()
    with connection, listener:
        connection.settimeout(5)
        data = connection.recv(65536)
    thread.join(10)
    return data


def test_client_hello_server_name_from_a_real_hello() -> None:
    hello = real_client_hello("on-demand.example.test")
    assert client_hello_server_name(hello) == (True, "on-demand.example.test")
    complete, parsed = parse_client_hello(hello)
    assert complete and parsed is not None
    assert 0x1302 in parsed.cipher_suites and 0x0403 in parsed.signature_schemes
    # Arriving a few bytes at a time: incomplete until the whole hello is there.
    for cut in (0, 3, 5, 40, len(hello) - 1):
        assert client_hello_server_name(hello[:cut]) == (False, None)
    assert client_hello_server_name(real_client_hello(None)) == (True, None)
    # Not TLS at all (a plain HTTP request on the TLS port): complete, no name.
    assert client_hello_server_name(b"GET / HTTP/1.1\r\n\r\n") == (True, None)


@given(st.binary(max_size=600))
def test_client_hello_parser_never_raises(data: bytes) -> None:
    complete, name = client_hello_server_name(data)
    assert isinstance(complete, bool) and (name is None or isinstance(name, str))


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2000))
def test_client_hello_parser_on_damaged_real_hello(noise: bytes, at: int) -> None:
    hello = HELLO
    damaged = hello[:at] + noise + hello[at + len(noise) :]
    complete, name = client_hello_server_name(damaged)
    assert isinstance(complete, bool) and (name is None or isinstance(name, str))


HELLO = real_client_hello("fuzz.example.test")


def test_rate_limiter_window() -> None:
    clock = Clock()
    limiter = RateLimiter(60.0, 2, clock)
    assert [limiter.allow(), limiter.allow(), limiter.allow()] == [True, True, False]
    clock.advance(59)
    assert not limiter.allow()
    clock.advance(1)
    assert limiter.allow()
    assert all(RateLimiter(0, 0, clock).allow() for _ in range(100))


@pytest.mark.parametrize(
    ("name", "subject", "matches"),
    [
        ("a.tld", "*.tld", True),
        ("a.b.tld", "*.*.tld", True),
        ("a.b.tld", "*.tld", False),
        ("tld", "*.tld", False),
        ("foo.tld", "foo.tld", True),
        ("www.foo.tld", "*.foo.tld", True),
    ],
)
def test_subject_matches(name: str, subject: str, matches: bool) -> None:
    assert subject_matches(name, subject) is matches


def test_policy_for_prefers_a_policy_naming_the_subject() -> None:
    wildcard = AutomationPolicy(subjects=("*.tld",), on_demand=True)
    exact = AutomationPolicy(subjects=("foo.tld",))
    catch_all = AutomationPolicy()
    policies = (wildcard, exact, catch_all)
    assert policy_for("foo.tld", policies) is exact
    assert policy_for("bar.tld", policies) is wildcard
    assert policy_for("other.example", policies) is catch_all


def test_certificate_bundle_in_either_order() -> None:
    chain, key, serial = TestCA().issue(["a.test"])
    for bundle in (chain + key, key + chain):
        assert certificate_from_bundle(bundle).serial_number == serial
    with pytest.raises(CertificateError):
        certificate_from_bundle(chain)
    with pytest.raises(CertificateError):
        certificate_from_bundle(b"not pem")


def test_automate_loader_manages_names_without_host_matchers(tmp_path: Path) -> None:
    """``certificates.automate`` (Caddy's loader; the Caddyfile writes it for site
    addresses like ``:443, ab``): the name gets a certificate though no route names it."""
    port = free_port()
    config = tls_config(
        port,
        free_port(),
        tmp_path / "storage",
        tls_extra={
            "certificates": {"automate": ["automated.localhost"]},
            "automation": {"policies": [{"issuers": [{"module": "internal"}]}]},
        },
    )
    with running_server(config, tmp_path, [port]) as server:
        import time

        deadline = time.monotonic() + 20
        while True:
            try:
                names = handshake(port, "automated.localhost", client_context()).names
                break
            except OSError:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
        assert names == ["automated.localhost"]


def test_on_demand_refuses_names_outside_the_allowlist_at_once(tmp_path: Path) -> None:
    """Names from host matchers under an on_demand policy are its allowlist: another
    name is refused without asking anyone, and the held handshake is released."""
    from twisted.python.failure import Failure

    from caddytw.config.model import parse_config
    from caddytw.tls.automation import plan_automatic_https
    from caddytw.tls.certs import CertificateSelector
    from caddytw.tls.challenges import ChallengeRegistry
    from caddytw.tls.hello import ClientHello
    from caddytw.tls.manager import CertificateManager
    from caddytw.tls.ondemand import HandshakeCertificates, OnDemandRefused
    from caddytw.tls.store import FileStorage

    route = {"match": [{"host": ["allowed.test"]}], "handle": []}
    config = tls_config(
        free_port(),
        free_port(),
        tmp_path,
        routes=[route],
        tls_extra={"automation": {"policies": [{"on_demand": True}]}},
    )
    plan = plan_automatic_https(parse_config(config))
    assert plan.managed == {} and list(plan.on_demand) == ["allowed.test"]
    selector, clock = CertificateSelector(), Clock()
    manager = CertificateManager({}, FileStorage(str(tmp_path)), selector, print, clock, 600)
    certificates = HandshakeCertificates(plan, selector, manager, clock, ChallengeRegistry())
    held = certificates.prepare(ClientHello("other.test"))
    assert held is not None
    outcome: list[object] = []
    held.addBoth(outcome.append)
    assert len(outcome) == 1 and isinstance(outcome[0], Failure)
    assert outcome[0].check(OnDemandRefused)
    assert certificates.pending == {}
