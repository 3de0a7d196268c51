"""Certificate selection, storage layout and locking, the manager's retries (in memory)."""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from caddytw.tls.automation import ManagedName
from caddytw.tls.certs import Certificate, CertificateError, CertificateSelector, wildcard_of
from caddytw.tls.config import AutomationPolicy, CertificateSelection, IssuerConfig
from caddytw.tls.internal import InternalIssuer
from caddytw.tls.manager import CertificateManager
from caddytw.tls.store import FileStorage
from tests.tls.pki import TestCA


def cert(ca: TestCA, names: list[str], **kwargs) -> Certificate:
    chain, key, _ = ca.issue(names, **kwargs)
    return Certificate.from_pem(chain, key, tags=kwargs.get("tags", ()))


def test_selection_exact_wildcard_and_no_sni():
    ca = TestCA()
    selector = CertificateSelector()
    exact, wild = cert(ca, ["a.test"]), cert(ca, ["*.test"])
    selector.add(wild)
    selector.add(exact)
    assert selector.select("a.test") is exact
    assert selector.select("A.TEST.") is exact
    assert selector.select("b.test") is wild
    assert selector.select("x.b.test") is None
    assert selector.select(None) is not None  # no SNI: any certificate
    ip = cert(ca, ["127.0.0.1"])
    selector.add(ip)
    assert selector.select(b"127.0.0.1") is ip


def test_certificate_selection_by_tag_serial_and_organization():
    ca = TestCA()
    selector = CertificateSelector()
    one = Certificate.from_pem(*ca.issue(["a.test"], organization="One")[:2], tags=("t1",))
    two = Certificate.from_pem(*ca.issue(["a.test"], organization="Two")[:2], tags=("t2", "x"))
    selector.add(one)
    selector.add(two)
    assert selector.select("a.test", CertificateSelection(any_tag=("t2",))) is two
    assert selector.select("a.test", CertificateSelection(all_tags=("t2", "x"))) is two
    assert selector.select("a.test", CertificateSelection(all_tags=("t1", "x"))) is None
    assert selector.select("a.test", CertificateSelection(subject_organization=("One",))) is one
    assert (
        selector.select("a.test", CertificateSelection(serial_number=(two.serial_number,))) is two
    )


def test_managed_certificate_replaced_by_put():
    ca = TestCA()
    selector = CertificateSelector()
    seen = []
    selector.on_change.append(seen.append)
    first, second = cert(ca, ["m.test"]), cert(ca, ["m.test"])
    selector.put("m.test", first)
    selector.put("m.test", second)
    assert selector.select("m.test") is second
    assert selector.certificates == [second]
    assert seen == [first, second]


def test_mismatched_key_is_refused():
    ca = TestCA()
    chain, _, _ = ca.issue(["a.test"])
    _, other_key, _ = ca.issue(["a.test"])
    with pytest.raises(CertificateError, match="does not match"):
        Certificate.from_pem(chain, other_key)
    with pytest.raises(CertificateError):
        Certificate.from_pem(b"junk", other_key)


def test_renewal_window():
    ca = TestCA()
    c = cert(ca, ["a.test"], days=9)  # valid from 1 h ago for 9 days
    assert not c.needs_renewal(1 / 3)
    assert c.needs_renewal(1 / 3, now=datetime.now(UTC) + timedelta(days=6, hours=1))


@given(st.lists(st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True), min_size=1, max_size=5))
def test_wildcard_of_replaces_exactly_the_first_label(labels):
    name = ".".join(labels)
    wildcard = wildcard_of(name)
    if len(labels) == 1:
        assert wildcard is None
    else:
        assert wildcard == "*." + ".".join(labels[1:])


def test_storage_layout_and_private_keys(tmp_path: Path):
    storage = FileStorage(str(tmp_path))
    saved = storage.save_certificate("ca-dir", "*.a.test", b"CHAIN", b"KEY", {"sans": ["*.a.test"]})
    assert saved.cert_path == str(
        tmp_path / "certificates/ca-dir/wildcard_.a.test/wildcard_.a.test.crt"
    )
    assert stat.S_IMODE(os.stat(saved.key_path).st_mode) == 0o600
    loaded = storage.load_certificate("ca-dir", "*.a.test")
    assert loaded is not None and loaded.key_pem == b"KEY" and loaded.meta == {"sans": ["*.a.test"]}
    assert storage.load_certificate("ca-dir", "b.test") is None


def test_storage_lock_excludes_another_holder(tmp_path: Path):
    storage = FileStorage(str(tmp_path))
    order: list[str] = []
    with storage.lock("issue_cert_a.test"):
        waiter = threading.Thread(target=lambda: _take(storage, order))
        waiter.start()
        time.sleep(0.3)
        order.append("first done")
    waiter.join(5)
    assert order == ["first done", "second got it"]


def _take(storage: FileStorage, order: list[str]) -> None:
    with storage.lock("issue_cert_a.test"):
        order.append("second got it")


class CountingIssuer:
    """The real internal issuer, counting calls and failing the first ``failures`` ones."""

    def __init__(self, storage: FileStorage, failures: int = 0) -> None:
        self.inner = InternalIssuer(IssuerConfig("internal", ca="local"), storage)
        self.name = self.inner.name
        self.calls = 0
        self.failures = failures
        self.lock = threading.Lock()

    def issue(self, name: str, key_pem: bytes) -> bytes:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("CA unavailable")
        time.sleep(0.2)
        return self.inner.issue(name, key_pem)


def managed(name: str = "localhost") -> dict[str, ManagedName]:
    policy = AutomationPolicy()
    return {name: ManagedName(name, policy, (IssuerConfig("internal", ca="local"),))}


def test_two_processes_sharing_storage_order_once(tmp_path: Path):
    """Two managers (as two processes would) race for one name: one order, one cert."""
    storage = FileStorage(str(tmp_path))
    issuer = CountingIssuer(storage)
    managers = [
        CertificateManager(
            managed(), FileStorage(str(tmp_path)), CertificateSelector(), lambda c: issuer, None, 60
        )
        for _ in range(2)
    ]
    results = []
    threads = [
        threading.Thread(
            target=lambda m=m: results.append(m._obtain_blocking(m.names["localhost"]))
        )
        for m in managers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert issuer.calls == 1
    assert sorted(bool(r[2]) for r in results) == [False, True]
    assert results[0][1].chain_pem == results[1][1].chain_pem


def test_failures_retry_with_exponential_backoff(tmp_path: Path):
    clock = Clock()
    manager = CertificateManager(
        managed(), FileStorage(str(tmp_path)), CertificateSelector(), None, clock, 60
    )  # type: ignore[arg-type]
    from twisted.python.failure import Failure

    for attempt, delay in enumerate([2.0, 4.0, 8.0, 16.0], start=1):
        manager._failed(Failure(RuntimeError("down")), "localhost")
        assert manager.failures["localhost"] == attempt
        call = manager._retries["localhost"]
        assert call.getTime() - clock.seconds() == delay
        call.cancel()
        manager._retries.clear()


def test_runtime_certificate_provider_for_http3(tmp_path: Path):
    from caddytw.config.model import parse_config
    from caddytw.tls.automation import plan_automatic_https
    from caddytw.tls.runtime import TLSRuntime

    ca = TestCA()
    cert_path, key_path, serial = ca.write_leaf(tmp_path, "a", ["a.test"])
    data = {
        "storage": {"module": "file_system", "root": str(tmp_path / "s")},
        "apps": {
            "http": {
                "servers": {"s": {"listen": ["127.0.0.1:0"], "tls_connection_policies": [{}]}}
            },
            "tls": {
                "certificates": {
                    "load_files": [{"certificate": str(cert_path), "key": str(key_path)}]
                }
            },
        },
    }
    runtime = TLSRuntime(plan_automatic_https(parse_config(data)), Clock())
    chain, key = runtime.certificate_provider("a.test")
    assert chain[0].serial_number == serial
    assert key.public_key().public_numbers() == chain[0].public_key().public_numbers()
    assert runtime.certificate_provider("b.test") is None
