"""The ``postgres`` TLS storage module against a real PostgreSQL: values, locks shared
between processes (and dying with a killed holder), challenges announced to listeners,
``caddytw storage export|import`` across modules, and config errors that name the path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from caddytw.cli import main
from caddytw.config.errors import ConfigError
from caddytw.tls.config import parse_storage
from caddytw.tls.pgstore import PostgresStorage
from caddytw.tls.store import HTTP01, TLS_ALPN01, FileStorage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage(pg_url: str) -> Iterator[PostgresStorage]:
    opened = PostgresStorage(pg_url)
    try:
        yield opened
    finally:
        opened.close()


def test_values_keys_and_certificates(storage: PostgresStorage) -> None:
    assert storage.load("certificates/x/a/a.crt") is None
    saved = storage.save_certificate("ca-dir", "*.a.test", b"CHAIN", b"KEY", {"sans": ["*.a.test"]})
    assert saved.cert_path is None  # nothing on disk: QUIC gets the objects
    loaded = storage.load_certificate("ca-dir", "*.a.test")
    assert loaded is not None and (loaded.chain_pem, loaded.key_pem) == (b"CHAIN", b"KEY")
    assert loaded.meta == {"sans": ["*.a.test"]}
    storage.store(storage.account_key_key("ca-dir", "me@example.com"), b"ACCOUNT", private=True)
    storage.save_ocsp("a.test", 0xABC, b"\x30\x03DER")
    assert storage.load_ocsp("a.test", 0xABC) == b"\x30\x03DER"
    assert storage.list("certificates") == [
        "certificates/ca-dir/wildcard_.a.test/wildcard_.a.test.crt",
        "certificates/ca-dir/wildcard_.a.test/wildcard_.a.test.json",
        "certificates/ca-dir/wildcard_.a.test/wildcard_.a.test.key",
    ]
    assert "acme/ca-dir/users/me@example.com/me@example.com.key" in storage.list()
    storage.delete("ocsp/a.test-abc")
    assert storage.load_ocsp("a.test", 0xABC) is None
    with pytest.raises(ValueError):
        storage.load("../etc/passwd")


def test_challenges_are_announced_to_listeners(storage: PostgresStorage, pg_url: str) -> None:
    other = PostgresStorage(pg_url)
    seen: list[dict[str, dict[str, dict[str, str]]]] = []
    arrived = threading.Event()

    def changed() -> None:
        seen.append(other.load_challenges())
        if seen[-1][HTTP01]:
            arrived.set()

    stop = other.listen(changed)
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)  # the listener loads once when it connects
        storage.save_challenge(HTTP01, "tok-EN_1", {"key_authorization": "tok-EN_1.thumb"})
        storage.save_challenge(TLS_ALPN01, "a.test", {"certificate": "C", "key": "K"})
        assert arrived.wait(10)
        latest = other.load_challenges()
        assert latest[HTTP01] == {"tok-EN_1": {"key_authorization": "tok-EN_1.thumb"}}
        assert latest[TLS_ALPN01] == {"a.test": {"certificate": "C", "key": "K"}}
        storage.delete_challenge(HTTP01, "tok-EN_1")
        assert other.load_challenges()[HTTP01] == {}
        with pytest.raises(ValueError):
            storage.save_challenge(HTTP01, "../x", {})
    finally:
        stop()
        other.close()


HOLDER = """
import sys, time
from caddytw.tls.pgstore import PostgresStorage
storage = PostgresStorage(sys.argv[1])
with storage.lock("issue_cert_a.test"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_lock_is_exclusive_across_processes_and_dies_with_its_holder(
    storage: PostgresStorage, pg_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg_url],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        got = threading.Event()

        def take() -> None:
            with storage.lock("issue_cert_a.test"):
                got.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        assert not got.wait(1.0)  # the other process holds it
        with storage.lock("issue_cert_b.test"):
            pass  # another name is free
        holder.send_signal(signal.SIGKILL)  # a node dying mid-order
        assert got.wait(15), "the dead holder's lock never went away"
        waiter.join(5)
    finally:
        holder.kill()
        holder.wait(10)


def test_close_gives_up_a_lock_wait(pg_url: str) -> None:
    first, second = PostgresStorage(pg_url), PostgresStorage(pg_url)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            with second.lock("k"):
                pass
        except BaseException as error:
            errors.append(error)

    with first.lock("k"):
        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(0.3)
        second.close()  # a node shutting down while another node orders
        waiter.join(10)
        assert not waiter.is_alive() and errors
    first.close()


def test_export_import_between_postgres_and_file_system(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = FileStorage(str(tmp_path / "files"))
    files.save_certificate("local", "a.test", b"CHAIN", b"KEY", {"sans": ["a.test"]})
    files.store("pki/authorities/local/root.crt", b"ROOT")
    pg_config, fs_config = tmp_path / "pg.json", tmp_path / "fs.json"
    pg_config.write_text(
        json.dumps({"storage": {"module": "postgres", "connection_string": pg_url}})
    )
    fs_config.write_text(json.dumps({"storage": {"module": "file_system", "root": files.root}}))
    archive = str(tmp_path / "s.tar")
    assert main(["storage", "export", "-c", str(fs_config), "-o", archive]) == 0
    assert main(["storage", "import", "-c", str(pg_config), "-i", archive]) == 0
    database = PostgresStorage(pg_url)
    try:
        stored = database.load_certificate("local", "a.test")
        assert stored is not None and stored.key_pem == b"KEY"
        assert database.list() == files.list()
    finally:
        database.close()
    # And back: a database export restores a file system storage, keys private.
    assert main(["storage", "export", "-c", str(pg_config), "-o", archive]) == 0
    fs_config.write_text(
        json.dumps({"storage": {"module": "file_system", "root": str(tmp_path / "restored")}})
    )
    assert main(["storage", "import", "-c", str(fs_config), "-i", archive]) == 0
    restored = tmp_path / "restored/certificates/local/a.test/a.test.key"
    assert restored.read_bytes() == b"KEY" and restored.stat().st_mode & 0o077 == 0
    capsys.readouterr()


def test_a_bad_or_unreachable_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_storage({"module": "postgres", "connection_string": "postgres://x@h:port/db"})
    assert error.value.path == "storage.connection_string"
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {"storage": {"module": "postgres", "connection_string": "postgres://x@h:port/db"}}
        )
    )
    assert main(["storage", "export", "-c", str(config), "-o", str(tmp_path / "s.tar")]) == 1
    assert "storage.connection_string" in capsys.readouterr().err


def test_a_node_whose_storage_database_is_down_keeps_serving(tmp_path: Path) -> None:
    """Storage reads happen in threads: an unreachable database is logged and retried,
    and the node's other sites answer meanwhile (a blocked reactor would answer none)."""
    import urllib.request

    from tests.support.ports import free_port
    from tests.support.server import running_server

    http_port, https_port, dead = free_port(), free_port(), free_port()
    config = {
        "storage": {
            "module": "postgres",
            "connection_string": f"postgresql://nobody@127.0.0.1:{dead}/none?connect_timeout=2",
        },
        "apps": {
            "http": {
                "http_port": http_port,
                "https_port": https_port,
                "servers": {
                    "plain": {
                        "listen": [f"127.0.0.1:{http_port}"],
                        "routes": [{"handle": [{"handler": "static_response", "body": "up"}]}],
                        "automatic_https": {"disable": True},
                    },
                    "site": {
                        "listen": [f"127.0.0.1:{https_port}"],
                        "routes": [{"match": [{"host": ["localhost"]}], "handle": []}],
                    },
                },
            }
        },
    }
    with running_server(config, tmp_path, [http_port, https_port]) as server:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10) as reply:
            assert reply.read() == b"up"
        # Answered while the storage read still waits for the database (the pool gives
        # up after caddytw.postgres.CONNECT_TIMEOUT): the reactor was never blocked.
        assert "could not read certificates from storage" not in server.log()
        deadline = time.monotonic() + 20
        while "could not read certificates from storage" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/", timeout=10) as reply:
            assert reply.read() == b"up"
        assert server.process.poll() is None
