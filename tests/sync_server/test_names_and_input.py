"""Names are limited in bytes, names Windows/macOS cannot store are refused with a
clear 4xx, and odd input (deep JSON, huge or non-ASCII numbers) gets a 400: never a 500
or a traceback in the log. Real ``twistd`` processes."""

from __future__ import annotations

import pytest

from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, q, sha, sync_route


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("names")
    port = free_port()
    root = tmp_path / "data"
    root.mkdir()
    config = simple_config(port, sync_route(root, enable_upload=True))
    with running_server(config, tmp_path, [port]) as srv:
        srv.root = root
        srv.api = Api(port)
        yield srv
        srv.api.close()


def quiet_log(server) -> None:
    log = server.log()
    assert "Traceback" not in log and "CRITICAL" not in log.upper().replace("NON-CRITICAL", "")


def test_a_255_byte_utf8_name_is_stored(server) -> None:
    name = "é" * 127 + "x"  # 255 bytes of UTF-8: legal on Linux
    reply = server.api.upload(f"long/{name}", b"long name")
    assert reply.status == 201, reply
    assert (server.root / "long" / name).read_bytes() == b"long name"
    too_long = server.api.upload(f"long/{name}y", b"256 bytes")
    assert too_long.status == 400, too_long
    assert "255 bytes" in too_long.json()["error"]
    quiet_log(server)


@pytest.mark.parametrize("name", ["CON", "aux.txt", "dots.", "space ", "a<b", 'q"uote', "c:d"])
def test_names_windows_cannot_store_are_refused(server, name: str) -> None:
    reply = server.api.upload(f"win/{name}", b"x", x_content_sha256=sha(b"x"))
    assert reply.status == 422, reply
    body = reply.json()
    assert body["path"] == f"win/{name}" and body["resolution"] == "Rename" and body["error"]
    assert not (server.root / "win" / name).exists()
    created = {
        "Create": {
            "metadata": {
                "path": f"win2/{name}",
                "size": 1,
                "modified": "2024-01-01T00:00:00Z",
                "hash": sha(b"x"),
                "is_directory": False,
            }
        }
    }
    result = server.api.sync([created]).json()["results"][0]
    assert result["status"] == "error" and result["message"]


def test_portable_names_can_be_turned_off(tmp_path) -> None:
    port = free_port()
    root = tmp_path / "data"
    root.mkdir()
    config = simple_config(port, sync_route(root, enable_upload=True, portable_names=False))
    with running_server(config, tmp_path, [port]):
        api = Api(port)
        assert api.upload("aux.txt", b"ok here").status == 201
        api.close()


def test_deep_json_is_a_400(server) -> None:
    reply = server.api.call("POST", "sync", b"[" * 100_000, {"Content-Type": "application/json"})
    assert reply.status == 400, reply
    quiet_log(server)


@pytest.mark.parametrize(
    "query",
    ["list?since=" + "9" * 5000, "list?since=0&limit=%C2%B2", "list?since=%C2%B2"],
    ids=["5000-digits", "superscript-limit", "superscript-since"],
)
def test_odd_numbers_are_a_400(server, query: str) -> None:
    reply = server.api.call("GET", query)
    assert reply.status == 400, reply
    assert "integer" in reply.json()["error"]
    quiet_log(server)


def test_quoted_long_path_in_query(server) -> None:
    reply = server.api.call("GET", f"metadata?path={q('x' * 5000)}")
    assert reply.status == 400
    quiet_log(server)


def test_unexpected_errors_log_a_traceback_once_per_kind() -> None:
    from twisted.logger import LogLevel, globalLogPublisher
    from twisted.python.failure import Failure

    from caddytw.sync.resource import report_unexpected

    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        ids = []
        for _ in range(3):
            try:
                {}["missing"]  # the same bug, hit by three requests
            except KeyError:
                ids.append(report_unexpected(Failure(), "unexpected error"))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    ours = [event for event in seen if event.get("what") == "unexpected error"]
    assert len(ours) == 3 and len(set(ids)) == 3
    assert all(event["log_level"] == LogLevel.error for event in ours)
    assert [("traceback" in event) for event in ours] == [True, False, False]
    assert [event["request_id"] for event in ours] == ids
