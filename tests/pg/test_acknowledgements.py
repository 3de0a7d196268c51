"""The ordering node waits for the other nodes to acknowledge a challenge (no fixed
delay), against a real PostgreSQL: it waits for a live node that has not taken the
challenge yet, goes on once that node acknowledged, and does not wait for a node whose
session is gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from caddytw.tls import pgstore
from caddytw.tls.pgstore import PostgresStorage
from caddytw.tls.store import TLS_ALPN01

CHALLENGE = {"certificate": "C", "key": "K"}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def awaiting(storage: PostgresStorage, name: str) -> threading.Event:
    """``storage.await_challenge`` for ``name`` in a thread; set when it returns."""
    done = threading.Event()

    def run() -> None:
        storage.await_challenge(TLS_ALPN01, name)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def session_alive(storage: PostgresStorage, pid: int) -> bool:
    with storage.database.connection() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        found = row.fetchone()
    return bool(found and found[0])


def test_the_order_waits_for_live_nodes_to_acknowledge(
    two_storages: tuple[PostgresStorage, PostgresStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgstore, "ACK_TIMEOUT", 600.0)  # returning at all proves the ack
    ordering, other = two_storages
    release = threading.Event()
    loaded: list[int] = []

    def changed() -> None:  # the other node's reload, held until the test lets it go
        found = other.load_challenges()
        loaded.append(len(found[TLS_ALPN01]))
        if found[TLS_ALPN01]:
            release.wait(30)
        other.acknowledge_challenges(found)

    stop = other.listen(changed)
    try:
        wait_until(lambda: bool(loaded), "the other node to subscribe")
        ordering.save_challenge(TLS_ALPN01, "a.test", CHALLENGE)
        done = awaiting(ordering, "a.test")
        wait_until(lambda: loaded[-1] == 1, "the other node to load the challenge")
        assert not done.wait(0.5)  # loaded but not acknowledged: still waiting
        release.set()
        assert done.wait(30), "the acknowledgement did not end the wait"
    finally:
        stop()
    # Once the other node's listening session is gone, nobody is waited for.
    pid = other._listener_pid
    assert pid is not None
    wait_until(lambda: not session_alive(ordering, pid), "the listener's session to end")
    ordering.save_challenge(TLS_ALPN01, "b.test", CHALLENGE)
    assert awaiting(ordering, "b.test").wait(30), "waited for a node that is gone"
