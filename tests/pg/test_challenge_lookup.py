"""HTTP-01 answers from the shared storage, against a real PostgreSQL and a real
``twistd`` node: a challenge the node was never told about (written to the storage with
no ``NOTIFY``, after it loaded the pending challenges) is answered, not a 404."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from caddytw.tls.pgstore import _UPSERT, ACKS, PostgresStorage
from caddytw.tls.store import HTTP01
from tests.support.ports import free_port
from tests.support.server import running_server


def acknowledged(url: str, key: str) -> bool:
    """Whether a node has loaded the challenge under ``key`` into memory (and said so)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute(f"SELECT count(*) FROM {ACKS} WHERE key = %s", (key,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return bool(row and row[0])


def get(url: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_an_unannounced_challenge_is_answered_from_the_storage(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    config: dict[str, Any] = {
        "admin": {"disabled": True},
        "storage": {"module": "postgres", "connection_string": pg_url},
        "apps": {
            "http": {
                "servers": {
                    "plain": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": [{"handle": [{"handler": "static_response", "body": "site"}]}],
                        "automatic_https": {"disable": True},
                    }
                }
            }
        },
    }
    storage = PostgresStorage(pg_url)
    try:
        # One challenge announced as usual: the node loads it when it subscribes.
        storage.save_challenge(HTTP01, "announced", {"key_authorization": "announced.t"})
        with running_server(config, tmp_path, [port]) as server:
            deadline = time.monotonic() + 20
            while not acknowledged(pg_url, storage.challenge_key(HTTP01, "announced")):
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
            # Another node's challenge, as if its NOTIFY never reached this node: the
            # row alone, written after this node loaded the pending challenges.
            token = "pub-LISHED_later_1"
            key = storage.challenge_key(HTTP01, token)
            value = json.dumps({"key_authorization": f"{token}.thumbprint"}).encode()
            with storage.database.connection() as conn:
                conn.execute(_UPSERT, (key, value))
            base = f"http://127.0.0.1:{port}/.well-known/acme-challenge/"
            assert get(base + token) == (200, f"{token}.thumbprint".encode())
            assert get(base + token, "HEAD") == (200, b"")
            # Unknown tokens still reach the site's routes (after the lookup).
            assert get(base + "never-published") == (200, b"site")
            assert get(base + "not%20a%20token") == (200, b"site")
            assert f"answering http-01 token {token} from the storage" in server.log()
            assert get(base + "announced") == (200, b"announced.t")
            assert "answering http-01 token announced" not in server.log()
    finally:
        storage.close()
