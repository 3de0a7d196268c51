"""zstd on the wire against a real ``twistd``: downloads negotiated by ``Accept-Encoding``
(whole files only, hash of the identity bytes), zstd upload bodies decoded and verified,
bombs refused with nothing on disk, incompressible data sent as it is, plain clients
unchanged."""

from __future__ import annotations

import json
import os

import pytest
import zstandard

from caddytw.sync import compression
from tests.sync_server.helpers import Api, everything, folder_view, sha, upload_server

LOG = b"".join(
    json.dumps({"ts": n, "level": "info", "msg": "request done", "path": f"/a/{n % 97}"}).encode()
    + b"\n"
    for n in range(20_000)
)
LIMIT = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with upload_server(tmp_path_factory.mktemp("zstd"), LIMIT) as srv:
        yield srv


def test_download_is_compressed_only_when_asked_and_worth_it(server) -> None:
    api = Api(server.ports[0])
    assert api.upload("log.json", LOG).status == 201
    noise = os.urandom(300_000)
    assert api.upload("noise.bin", noise).status == 201

    plain = api.call("GET", "download?path=log.json")
    assert plain.status == 200 and plain.body == LOG
    assert "content-encoding" not in plain.headers

    packed = api.call("GET", "download?path=log.json", headers={"Accept-Encoding": "gzip, zstd"})
    assert packed.status == 200 and packed.headers["content-encoding"] == "zstd"
    assert len(packed.body) < len(LOG) * 0.3
    assert compression.decompress(packed.body) == LOG
    # The validators name the file's bytes, not the encoded body.
    assert packed.headers["etag"] == plain.headers["etag"] == f'"{sha(LOG)}"'
    assert packed.headers["x-content-sha256"] == sha(LOG)
    assert "accept-encoding" in packed.headers["vary"].lower()

    refused = api.call("GET", "download?path=log.json", headers={"Accept-Encoding": "zstd;q=0"})
    assert "content-encoding" not in refused.headers and refused.body == LOG

    random_answer = api.call("GET", "download?path=noise.bin", headers={"Accept-Encoding": "zstd"})
    assert "content-encoding" not in random_answer.headers  # the sample said no
    assert random_answer.body == noise

    ranged = api.call(
        "GET", "download?path=log.json", headers={"Accept-Encoding": "zstd", "Range": "bytes=10-99"}
    )
    assert ranged.status == 206 and "content-encoding" not in ranged.headers
    assert ranged.body == LOG[10:100]
    api.close()


def test_zstd_upload_is_decoded_verified_and_stored_plain(server) -> None:
    api = Api(server.ports[0])
    assert "zstd" in api.call("GET", "whoami").headers["accept-encoding"]
    body = compression.compress(LOG)
    reply = api.upload(
        "up/log.json", body, Content_Encoding="zstd", X_Content_SHA256=sha(LOG), If_None_Match="*"
    )
    assert reply.status == 201, reply
    assert reply.json()["hash"] == sha(LOG) and reply.json()["size"] == len(LOG)
    assert (server.root / "up/log.json").read_bytes() == LOG

    before = folder_view(server.root), everything(server.root)
    wrong = api.upload("up/wrong.json", body, Content_Encoding="zstd", X_Content_SHA256=sha(body))
    assert wrong.status == 422  # the hash is of the decoded bytes
    truncated = api.upload("up/cut.json", body[:-10], Content_Encoding="zstd")
    assert truncated.status == 400 and "truncated" in truncated.json()["error"]
    garbage = api.upload("up/junk.json", b"not zstd at all", Content_Encoding="zstd")
    assert garbage.status == 400
    gzip = api.upload("up/g.json", b"x", Content_Encoding="gzip")
    assert gzip.status == 415
    assert (folder_view(server.root), everything(server.root)) == before
    api.close()


def test_a_zstd_bomb_gets_413_and_leaves_nothing(server) -> None:
    api = Api(server.ports[0])
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (256 << 20))
    assert len(bomb) < 16_384 < LIMIT
    before = folder_view(server.root), everything(server.root)
    reply = api.upload("bomb.bin", bomb, Content_Encoding="zstd")
    assert reply.status == 413 and "decoded" in reply.json()["error"]
    assert (folder_view(server.root), everything(server.root)) == before
    api.close()
