"""The shared protocol: the seed's JSON examples round-trip, bad input names its JSON path."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.sync import protocol as p
from caddytw.sync.localfs import temp_name

HASH = "a" * 64

SEED_LIST = (
    """[
  {
    "path": "documents/file.txt",
    "size": 1024,
    "modified": "2024-01-01T12:00:00Z",
    "hash": "HASH",
    "is_directory": false
  }
]"""
).replace("HASH", HASH)

SEED_SYNC = (
    """{
  "operations": [
    {"Create": {"metadata": {"path": "documents/file.txt", "size": 1024,
      "modified": "2024-01-01T12:00:00Z", "hash": "HASH", "is_directory": false}}}
  ],
  "client_id": "uuid"
}"""
).replace("HASH", HASH)


def test_seed_list_round_trips_exactly():
    items = p.metadata_list_from_json(json.loads(SEED_LIST))
    assert items == [
        p.FileMetadata("documents/file.txt", 1024, datetime(2024, 1, 1, 12, tzinfo=UTC), HASH)
    ]
    assert p.metadata_list_to_json(items) == json.loads(SEED_LIST)


def test_seed_sync_request_round_trips_exactly():
    request = p.SyncRequest.from_json(json.loads(SEED_SYNC))
    assert request.client_id == "uuid"
    assert isinstance(request.operations[0], p.Create)
    assert request.to_json() == json.loads(SEED_SYNC)
    assert p.SyncRequest.from_json(p.loads(p.dumps(request))) == request


def test_seed_placeholder_hash_is_refused_clearly():
    # The seed writes "sha256hash" as a placeholder; real messages carry a real digest.
    data = json.loads(SEED_LIST.replace(HASH, "sha256hash"))
    with pytest.raises(p.ProtocolError, match=r"\$\[0\]\.hash: expected a lowercase hex SHA-256"):
        p.metadata_list_from_json(data)


def test_operation_shapes():
    assert p.Delete("a/b").to_json() == {"Delete": {"path": "a/b"}}
    assert p.Move("a", "b").to_json() == {"Move": {"from": "a", "to": "b"}}
    assert p.Delete("a", HASH).to_json() == {"Delete": {"path": "a", "base_hash": HASH}}
    assert p.operation_from_json({"Move": {"from": "x", "to": "y/z"}}) == p.Move("x", "y/z")


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"Create": {}}, "$.Create.metadata"),
        ({"Delete": {"path": "../x"}}, "$.Delete.path"),
        ({"Move": {"from": "a", "to": "/b"}}, "$.Move.to"),
        ({"Move": {"from": "a", "to": "b", "extra": 1}}, "$.Move.extra"),
        ({"Frobnicate": {}}, "$.Frobnicate"),
        ({"Delete": {"path": "a"}, "Move": {}}, "$"),
        ([], "$"),
        ({"Delete": {"path": "a", "base_hash": "ABC"}}, "$.Delete.base_hash"),
    ],
)
def test_bad_operations_name_their_path(value, where):
    with pytest.raises(p.ProtocolError) as caught:
        p.operation_from_json(value)
    assert caught.value.where == where


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"size": -1}, "$.size"),
        ({"size": True}, "$.size"),
        ({"size": 1.5}, "$.size"),
        ({"hash": "A" * 64}, "$.hash"),
        ({"hash": "a" * 63}, "$.hash"),
        ({"modified": "2024-01-01 12:00:00"}, "$.modified"),
        ({"modified": "2024-13-01T12:00:00Z"}, "$.modified"),
        ({"is_directory": "no"}, "$.is_directory"),
        ({"is_directory": True}, "$.hash"),
        ({"path": "a//b"}, "$.path"),
        ({"bogus": 1}, "$.bogus"),
    ],
)
def test_bad_metadata_names_its_path(patch, where):
    data = json.loads(SEED_LIST)[0] | patch
    with pytest.raises(p.ProtocolError) as caught:
        p.FileMetadata.from_json(data)
    assert caught.value.where == where


def test_missing_field():
    data = json.loads(SEED_LIST)[0]
    del data["hash"]
    with pytest.raises(p.ProtocolError, match=r"\$\.hash: missing field"):
        p.FileMetadata.from_json(data)


def test_times():
    assert p.format_time(datetime(2024, 1, 1, 12, tzinfo=UTC)) == "2024-01-01T12:00:00Z"
    assert p.parse_time("2024-01-01T14:00:00+02:00") == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert p.parse_time("2024-01-01T12:00:00.123456789Z").microsecond == 123456
    assert p.format_time(p.parse_time("2024-01-01T12:00:00.25Z")) == "2024-01-01T12:00:00.250000Z"


def test_etags():
    assert p.parse_etag(p.format_etag(HASH)) == HASH
    assert p.parse_etag(f'W/"{HASH}"') is None
    assert p.parse_etag("*") is None


def test_temp_names_are_reserved():
    name = temp_name("file.txt", "0123456789abcdef")
    assert name == ".file.txt.0123456789abcdef.tmp"
    assert p.is_temp_name(name) and p.is_reserved_name(name)
    with pytest.raises(p.ProtocolError):
        p.validate_path("docs/" + name)
    with pytest.raises(p.ProtocolError):
        p.validate_path(p.INDEX_DIR_NAME + "/index.db")
    assert p.validate_path(".hidden/.file.tmp") == ".hidden/.file.tmp"


def test_other_messages_round_trip():
    meta = p.FileMetadata("a.txt", 3, datetime(2024, 5, 1, tzinfo=UTC), HASH)
    conflict = p.ConflictInfo("a.txt", meta, None, "Rename")
    response = p.SyncResponse(
        operations=(p.Update(meta, HASH), p.Delete("b")),
        conflicts=(conflict,),
        results=(p.OperationResult(0, "conflict", "a.txt", message="stale"),),
        cursor=7,
        index_id="abc",
    )
    assert p.SyncResponse.from_json(p.loads(p.dumps(response))) == response
    page = p.ChangesPage("abc", 9, (p.Change(9, "a.txt", "update", "c1", meta),), more=True)
    assert p.ChangesPage.from_json(p.loads(p.dumps(page))) == page
    with pytest.raises(p.ProtocolError, match="must be null"):
        p.Change.from_json(
            {"seq": 1, "path": "a", "op": "delete", "origin": None, "metadata": meta.to_json()}
        )


def test_seed_minimal_response_shape_is_accepted():
    assert p.SyncResponse.from_json({"operations": [], "conflicts": []}) == p.SyncResponse()


def test_invalid_json():
    with pytest.raises(p.ProtocolError, match="invalid JSON"):
        p.loads(b"\xff{")


# -- property tests ---------------------------------------------------------------------

segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", "..") and not p.is_reserved_name(s))
paths = st.lists(segment, min_size=1, max_size=4).map("/".join)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
files = st.builds(p.FileMetadata, paths, st.integers(0, 2**53), times, hashes, st.just(False))
dirs = st.builds(p.FileMetadata, paths, st.just(0), times, st.just(""), st.just(True))
metas = files | dirs
optional_hash = st.none() | hashes
operations = st.one_of(
    st.builds(p.Create, metas),
    st.builds(p.Update, metas, optional_hash),
    st.builds(p.Delete, paths, optional_hash),
    st.builds(p.Move, paths, paths, optional_hash),
)


@given(
    st.lists(operations, max_size=5),
    st.text(min_size=1, max_size=20).filter(
        lambda s: (
            all(0x20 <= ord(c) != 0x7F for c in s) and not any(0xD800 <= ord(c) < 0xE000 for c in s)
        )
    ),
)
def test_requests_round_trip(ops, client_id):
    request = p.SyncRequest(tuple(ops), client_id)
    assert p.SyncRequest.from_json(p.loads(p.dumps(request))) == request


@given(metas)
def test_metadata_round_trips(meta):
    assert p.FileMetadata.from_json(json.loads(json.dumps(meta.to_json()))) == meta


@given(paths)
def test_generated_paths_are_valid(path):
    assert p.validate_path(path) == path


@given(st.text(max_size=30))
def test_validate_path_never_accepts_traversal(text):
    try:
        checked = p.validate_path(text)
    except p.ProtocolError:
        return
    parts = checked.split("/")
    assert not checked.startswith("/") and "\\" not in checked and "\x00" not in checked
    assert all(part not in ("", ".", "..") for part in parts)
