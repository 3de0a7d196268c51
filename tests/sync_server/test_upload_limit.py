"""``max_upload_size``: a larger upload gets 413 and leaves nothing on disk, whether it
declares its length or streams chunked; the Caddyfile spells the new options. Real
``twistd``."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from caddytw.caddyfile import CaddyfileError, adapt
from tests.support.ports import free_port
from tests.support.server import running_server, simple_config
from tests.sync_server.helpers import Api, folder_view, sync_route


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("limit")
    port = free_port()
    root = tmp_path / "data"
    root.mkdir()
    config = simple_config(port, sync_route(root, enable_upload=True, max_upload_size=1000))
    with running_server(config, tmp_path, [port]) as srv:
        srv.root = root
        yield srv


def everything(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_declared_length_over_the_limit_is_413(limited) -> None:
    api = Api(limited.ports[0])
    assert api.upload("small.bin", b"s" * 1000).status == 201
    before = everything(limited.root)
    reply = api.upload("big.bin", b"b" * 1001)
    assert reply.status == 413 and "1000 bytes" in reply.json()["error"]
    assert everything(limited.root) == before
    api.close()


def test_a_chunked_body_over_the_limit_is_413_and_leaves_nothing(limited) -> None:
    before = folder_view(limited.root), everything(limited.root)
    conn = http.client.HTTPConnection("127.0.0.1", limited.ports[0], timeout=15)
    chunks = (b"c" * 300 for _ in range(5))
    conn.request(
        "POST",
        "/api/upload?path=sub/chunked.bin",
        body=chunks,
        headers={"X-Requested-With": "t", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 413
    assert (folder_view(limited.root), everything(limited.root)) == before


def test_caddyfile_options() -> None:
    config, _ = adapt(
        ":8080 {\n\tfile_sync {\n\t\troot /srv/sync\n\t\tcreate_root\n"
        "\t\tportable_names off\n\t\tmax_upload_size 2MiB\n\t}\n}\n"
    )
    route = config["apps"]["http"]["servers"]["srv0"]["routes"][0]
    (handler,) = route["handle"]
    assert handler == {
        "handler": "file_sync",
        "root": "/srv/sync",
        "create_root": True,
        "portable_names": False,
        "max_upload_size": 2 * 1024 * 1024,
    }
    with pytest.raises(CaddyfileError, match="portable_names on"):
        adapt(":80 {\n\tfile_sync {\n\t\troot /d\n\t\tportable_names maybe\n\t}\n}\n")
