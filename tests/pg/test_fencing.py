"""Lock fencing on the ``postgres`` storage, against a real PostgreSQL: when the session
holding a node's order lock ends mid-order (``pg_terminate_backend``, as a dropped
connection would), that node's certificate save is refused and the certificate of the
node that took the lock over is the one stored and served."""

from __future__ import annotations

import threading

import pytest

from caddytw.tls.certs import CertificateSelector
from caddytw.tls.config import IssuerConfig
from caddytw.tls.internal import InternalIssuer
from caddytw.tls.manager import CertificateManager
from caddytw.tls.pgstore import LOCK_CLASS, PostgresStorage, lock_id
from caddytw.tls.store import LockLost
from tests.tls.test_certs_store import managed

KEY = "issue_cert_localhost"


def terminate_lock_holder(url: str, key: str) -> None:
    """End the session holding the advisory lock of ``key`` and wait until it is gone."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid::bigint = %s AND objid::bigint = %s",
            (LOCK_CLASS, lock_id(key) & 0xFFFFFFFF),
        ).fetchall()
        assert len(rows) == 1, rows
        ended = conn.execute("SELECT pg_terminate_backend(%s, 10000)", (rows[0][0],)).fetchone()
        assert ended is not None and ended[0] is True


def test_a_save_under_a_lost_lock_is_refused(
    two_storages: tuple[PostgresStorage, PostgresStorage], pg_url: str
) -> None:
    first, second = two_storages
    with first.lock(KEY) as stale:
        first.save_certificate("ca", "localhost", b"FIRST", b"K1", {}, fence=stale)
        terminate_lock_holder(pg_url, KEY)
        # Nobody holds the lock yet: the dead session alone makes the save stale.
        with pytest.raises(LockLost):
            first.save_certificate("ca", "localhost", b"STALE", b"K1", {}, fence=stale)
        with second.lock(KEY) as current:
            assert current.token > stale.token
            second.save_certificate("ca", "localhost", b"SECOND", b"K2", {}, fence=current)
            with pytest.raises(LockLost):
                first.save_certificate("ca", "localhost", b"STALE", b"K1", {}, fence=stale)
        # After the new holder let go, the stale fence is still refused.
        with pytest.raises(LockLost):
            first.save_certificate("ca", "localhost", b"STALE", b"K1", {}, fence=stale)
    stored = second.load_certificate("ca", "localhost")
    assert stored is not None and (stored.chain_pem, stored.key_pem) == (b"SECOND", b"K2")


class SessionDroppingIssuer:
    """The real internal CA; on its first order the lock's session is terminated and
    another node (a second manager on its own storage) orders the same name meanwhile."""

    def __init__(self, storage: PostgresStorage, url: str, other: CertificateManager) -> None:
        self.inner = InternalIssuer(IssuerConfig("internal", ca="local"), storage)
        self.name = self.inner.name
        self.url = url
        self.other = other
        self.calls = 0
        self.other_result: list[tuple[str, object, str]] = []

    def issue(self, name: str, key_pem: bytes) -> bytes:
        self.calls += 1
        if self.calls == 1:
            terminate_lock_holder(self.url, KEY)
            worker = threading.Thread(
                target=lambda: self.other_result.append(
                    self.other._obtain_blocking(self.other.names["localhost"])
                )
            )
            worker.start()
            worker.join(30)
            assert self.other_result, "the other node did not order"
        return self.inner.issue(name, key_pem)


def test_the_stale_holder_discards_its_order_and_serves_the_other_nodes(
    two_storages: tuple[PostgresStorage, PostgresStorage], pg_url: str
) -> None:
    first, second = two_storages
    second_issuer = InternalIssuer(IssuerConfig("internal", ca="local"), second)
    other = CertificateManager(
        managed(), second, CertificateSelector(), lambda c: second_issuer, None, 60
    )
    issuer = SessionDroppingIssuer(first, pg_url, other)
    manager = CertificateManager(
        managed(), first, CertificateSelector(), lambda c: issuer, None, 60
    )
    name, certificate, ordered_by = manager._obtain_blocking(manager.names["localhost"])
    assert name == "localhost"
    assert issuer.calls == 1  # its one order was discarded, not repeated
    assert ordered_by == ""  # served what storage has: the other node's order
    (_, theirs, their_issuer) = issuer.other_result[0]
    assert their_issuer == "local"
    stored = first.load_certificate("local", "localhost")
    assert stored is not None
    assert certificate.chain_pem == stored.chain_pem == theirs.chain_pem  # type: ignore[attr-defined]
