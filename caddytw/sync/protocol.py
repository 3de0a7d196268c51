"""The file-sync wire protocol, shared by the ``file_sync`` handler and ``synclient``.

Pure data and pure functions: no Twisted, no disk, no sockets. Every message type has
``to_json()`` (a JSON-ready ``dict``/``list``) and ``from_json(value, where="$")`` that
checks the value strictly and raises :class:`ProtocolError` naming the JSON path of the
first problem (``$.operations[2].Delete.path: ...``). Unknown fields are rejected, so a
typo never passes silently; fields marked *additive* below are optional extensions of the
shapes the project's original design brief fixed, and are omitted from ``to_json()`` when
unset.

Shapes fixed by the original design brief (the compatibility contract)::

    FileMetadata   {"path": "documents/file.txt", "size": 1024,
                    "modified": "2024-01-01T12:00:00Z", "hash": "<64 lowercase hex>",
                    "is_directory": false}
    SyncOperation  {"Create": {"metadata": FileMetadata}}
                   {"Update": {"metadata": FileMetadata}}
                   {"Delete": {"path": "a/b.txt"}}
                   {"Move":   {"from": "a/b.txt", "to": "c/b.txt"}}
    SyncRequest    {"operations": [SyncOperation, ...], "client_id": "uuid"}

``Update`` and ``Delete`` take an additive ``"base_hash"``: the hash the client's change
was based on (the optimistic-concurrency precondition). ``Create`` means "the path should
not exist yet" (``If-None-Match: *``).

Designed here (not fixed by the brief; additive)::

    SyncResponse   {"operations": [SyncOperation...],   # server changes the client lacks
                    "conflicts": [ConflictInfo...],
                    "results": [OperationResult...],     # one per request operation
                    "cursor": 42, "index_id": "..."}
    ConflictInfo   {"path": "...", "local_metadata": FileMetadata|null,
                    "remote_metadata": FileMetadata|null, "resolution": "KeepClient"}
    Change         {"seq": 42, "path": "...", "op": "create"|"update"|"delete",
                    "origin": "client id"|null, "metadata": FileMetadata|null}
    ChangesPage    {"index_id": "...", "cursor": 42, "changes": [Change...],
                    "more": false, "reset": false}

Folders are indexed like files (so empty ones sync too): in listings and changes they
have ``size`` 0, ``hash`` "" and ``is_directory`` true; creating a file creates its
parent folders (each with its own change). ``hash`` is always 64 lowercase hex
characters for a file. The brief's example hash ``"sha256hash"`` is a placeholder and is
refused like any other malformed hash.

HTTP conventions of the server (additive): uploads may send ``X-Content-SHA256``
(verified: 422 on mismatch), ``If-Match: "<sha256>"`` / ``If-None-Match: *``
(412 + ``ConflictInfo`` on mismatch; identical content is never a conflict),
``X-Sync-Modified`` (RFC 3339, kept as the file's mtime) and ``X-Sync-Client`` (the
origin when no bearer token names the client). Downloads carry ``ETag: "<sha256>"`` and
honour ``Range`` / ``If-Range``. ``GET /api/list`` also answers ``X-Sync-Index-Id`` and
``X-Sync-Cursor`` headers: the cursor the listing corresponds to.

Delta transfers (additive; :mod:`caddytw.sync.delta`, :mod:`caddytw.sync.chunks`). A
file of 256 KiB or more is cut into content-defined chunks (FastCDC, 2-32 KiB, 8 KiB on average); a
``Node`` lists children as ``[sha256, bytes covered]`` (chunks at height 1, nodes above)
and its hash is SHA-256 over ``height`` (1 byte) and each child's raw hash + 8-byte length::

    Node           {"hash": "<hex>", "height": 1, "children": [["<hex>", 16384], ...]}
    POST /api/delta/plan    DeltaPlan {"path": "a.bin", "size": 67108864,
                        "sha256": "<hex>", "root": "<node hex>", "nodes": [Node, ...]}
                   -> {"unknown_nodes": ["<hex>"...],      # send these Nodes next round
                       "missing_chunks": ["<hex>"...]}     # upload these chunks
    POST /api/delta/chunks  body: frames of 32-byte SHA-256, 4-byte big-endian length,
                   bytes (at most 8 MiB a request); each verified (422), staged outside
                   the served tree until used (expires after a day): resumable.
                   -> {"stored": ["<hex>"...]}
    POST /api/delta/commit  DeltaCommit {"path", "size", "sha256", "root"} with
                   If-Match / If-None-Match / X-Sync-Modified as on upload
                   -> 201/200 FileMetadata, 412 ConflictInfo,
                      409 {"error", "missing_chunks": [...]} (upload them, commit again)
    GET  /api/chunks?path=a.bin  -> {"path", "size", "sha256", "root", "nodes": [root Node]}
                   (409: the file is small or changing: download it whole)
    POST /api/delta/nodes   {"hashes": ["<hex>"...]} -> {"nodes": [Node...]} (known ones)
    GET  /api/chunk/<sha256>     -> the chunk's bytes (verified), 404 when unknown

Transfers (additive): ``Accept-Encoding: zstd`` on a whole-file download may be answered
with ``Content-Encoding: zstd`` (never for ``Range``); upload bodies may be
``Content-Encoding: zstd`` (every answer says ``Accept-Encoding: zstd``); hashes and ETags
are always of the decoded bytes, and ``max_upload_size`` holds for the decoded size (see
:mod:`caddytw.sync.compression`). ``POST /api/batch/upload`` and
``POST /api/batch/download`` move many small files per request; their framing and JSON
shapes are in :mod:`caddytw.sync.batch`::

    batch entry    {"path": "a.txt", "size": 5, "sha256": "<hex>",
                    "if_match": "<hex>" | "if_none_match": "*", "modified": "..."}
                   + 5 bytes, ...; then {"end": true, "count": N}
    batch result   {"results": [{"index": 0, "path": "a.txt", "status": 201,
                                 "metadata": FileMetadata},
                                {"index": 1, "path": "b.txt", "status": 412,
                                 "error": "...", "conflict": ConflictInfo}]}
    batch download {"paths": ["a.txt", ...]} -> entries {"path", "status": 200, "size",
                   "sha256", "modified"} + bytes, or {"path", "status", "error"}

Paths are relative POSIX paths: see :func:`validate_path`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, TypeAlias

from caddytw.config.reader import type_name

__all__ = [
    "CHANGE_OPS",
    "EMPTY_SHA256",
    "FOLDER_MARKER",
    "HEADER_CLIENT_ID",
    "HEADER_CONTENT_SHA256",
    "HEADER_MODIFIED",
    "INDEX_DIR_NAME",
    "RESOLUTIONS",
    "Change",
    "ChangesPage",
    "ConflictInfo",
    "Create",
    "Delete",
    "FileMetadata",
    "Move",
    "OperationResult",
    "ProtocolError",
    "SyncOperation",
    "SyncRequest",
    "SyncResponse",
    "Update",
    "dumps",
    "format_etag",
    "format_time",
    "is_reserved_name",
    "is_temp_name",
    "loads",
    "metadata_list_from_json",
    "metadata_list_to_json",
    "operation_from_json",
    "parse_etag",
    "parse_time",
    "unportable_reason",
    "validate_hash",
    "validate_path",
]

#: SHA-256 of the empty string, the hash of every empty file.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#: Where the server's index lived inside ``root`` before it moved to Caddy's data dir
#: (migrated on start); never a valid sync path segment.
INDEX_DIR_NAME = ".caddytw-sync"
#: The folder marker in the server's root (as Syncthing's ``.stfolder``): it proves the
#: folder is the one the index describes (not an empty mount point); never synced.
FOLDER_MARKER = ".caddytw-folder"

#: Upload header carrying the lowercase hex SHA-256 of the body; verified by the server.
HEADER_CONTENT_SHA256 = "X-Content-SHA256"
#: Optional header naming the client (the event ``origin``) when no bearer token does.
HEADER_CLIENT_ID = "X-Sync-Client"
#: Optional upload header: the file's modification time (RFC 3339) to keep on the server.
HEADER_MODIFIED = "X-Sync-Modified"

#: ``Change.op`` values.
CHANGE_OPS = ("create", "update", "delete")
#: ``ConflictInfo.resolution`` values (the brief's strategies; unit variants as strings).
RESOLUTIONS = ("KeepClient", "KeepServer", "Rename")

ChangeOp: TypeAlias = Literal["create", "update", "delete"]
Resolution: TypeAlias = Literal["KeepClient", "KeepServer", "Rename"]

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_TEMP_RE = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")
_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_MAX_PATH_BYTES = 4096
_MAX_SEGMENT_BYTES = 255
#: Segments of at most this many characters fit in :data:`_MAX_SEGMENT_BYTES` whatever
#: they hold (UTF-8 takes at most 4 bytes per character), so only longer ones are
#: encoded to be measured.
_SHORT_SEGMENT = _MAX_SEGMENT_BYTES // 4
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class ProtocolError(ValueError):
    """A message that does not follow the protocol; ``where`` is the JSON path."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


# -- small checkers ---------------------------------------------------------------------


def _object(
    value: object, where: str, required: Sequence[str], optional: Sequence[str] = ()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError(where, f"expected an object, got {type_name(value)}")
    for key in value:
        if key not in required and key not in optional:
            raise ProtocolError(f"{where}.{key}", "unknown field")
    for key in required:
        if key not in value:
            raise ProtocolError(f"{where}.{key}", "missing field")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(where, f"expected a string, got {type_name(value)}")
    return value


def _int(value: object, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(where, f"expected an integer, got {type_name(value)}")
    if value < minimum:
        raise ProtocolError(where, f"must be at least {minimum}, got {value}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(where, f"expected a boolean, got {type_name(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(where, f"expected an array, got {type_name(value)}")
    return value


def _optional_hash(value: object, where: str) -> str | None:
    return None if value is None else validate_hash(value, where)


# -- paths, hashes, times ---------------------------------------------------------------


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of the in-progress upload names from
    :func:`caddytw.sync.localfs.temp_name`."""
    return _TEMP_RE.fullmatch(name) is not None


def is_reserved_name(segment: str) -> bool:
    """Names the sync never touches: the folder marker, the old index folder and
    in-progress temp files."""
    # Every reserved name starts with a dot: most names are decided by one comparison
    # (this runs for each segment of each path a scan, a listing or a batch meets).
    if segment[:1] != ".":
        return False
    return segment in (FOLDER_MARKER, INDEX_DIR_NAME) or is_temp_name(segment)


def fold_key(path: str) -> str:
    """The name ``path`` has on a case-insensitive, normalising filesystem (macOS,
    Windows): NFC, casefolded, NFC again (casefolding can denormalise). Two paths with
    one key cannot both exist there, so the server keeps keys unique."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


def validate_path(value: object, where: str = "path") -> str:
    """Check a sync path and return it unchanged.

    A sync path is relative POSIX: segments joined by single ``/``; no leading or trailing
    ``/``, no empty, ``.`` or ``..`` segment, no backslash, no NUL or other control
    character, valid UTF-8 (no lone surrogates), at most 4096 bytes with segments of at
    most 255 bytes, and no reserved segment (:func:`is_reserved_name`). Symlinks are the
    store's business: this function never touches the disk.
    """
    text = _str(value, where)
    if not text:
        raise ProtocolError(where, "empty path")
    if text.startswith("/"):
        raise ProtocolError(where, "absolute paths are not allowed")
    if "\\" in text:
        raise ProtocolError(where, "backslashes are not allowed")
    if _CONTROL_RE.search(text) is not None:
        raise ProtocolError(where, "control characters (including NUL) are not allowed")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProtocolError(where, "not valid UTF-8") from None
    if size > _MAX_PATH_BYTES:
        raise ProtocolError(where, f"longer than {_MAX_PATH_BYTES} bytes")
    for segment in text.split("/"):
        if segment == "":
            raise ProtocolError(where, "empty path segment")
        if segment in (".", ".."):
            raise ProtocolError(where, f"{segment!r} segments are not allowed")
        if len(segment) > _SHORT_SEGMENT and len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            raise ProtocolError(where, f"a segment is longer than {_MAX_SEGMENT_BYTES} bytes")
        if is_reserved_name(segment):
            raise ProtocolError(where, f"{segment!r} is reserved for the sync itself")
    return text


_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{kind}{n}" for kind in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]]
)
_UNPORTABLE_CHARS = frozenset('<>:"|?*\\')


def unportable_reason(path: str) -> str | None:
    """Why Windows or macOS could not store ``path`` (a valid sync path), or ``None``.

    Refused: the characters ``< > : " | ? * \\`` (``:`` is also macOS's separator), a
    segment ending in a dot or a space (Windows drops them, so ``a.`` would become
    ``a``), and the device names ``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
    ``LPT0``-``LPT9`` with any extension (``aux.txt``). A client on such a system
    could not write the file and would see it as missing, so the server refuses to
    create it in the first place (``portable_names``).
    """
    for segment in path.split("/"):
        bad = sorted(set(segment) & _UNPORTABLE_CHARS)
        if bad:
            return f"{segment!r} contains {' '.join(bad)}, which Windows cannot store"
        if segment.endswith((".", " ")):
            return f"{segment!r} ends with a dot or a space, which Windows drops"
        if segment.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
            return f"{segment!r} is a device name on Windows"
    return None


def validate_hash(value: object, where: str = "hash") -> str:
    """A lowercase hex SHA-256 (64 characters)."""
    text = _str(value, where)
    if not _HASH_RE.fullmatch(text):
        raise ProtocolError(where, "expected a lowercase hex SHA-256 (64 characters)")
    return text


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: whole seconds as ``2024-01-01T12:00:00Z``, else
    with microseconds (``...:00.250000Z``). Naive datetimes are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    # isoformat leaves out a zero fraction and writes any other with 6 digits, as
    # this format wants, in C (strftime and an f-string cost three times as much, and
    # a listing or batch formats one time per file).
    return moment.isoformat() + "Z"


def parse_time(value: object, where: str = "modified") -> datetime:
    """Parse RFC 3339 (``Z`` or a numeric offset, up to 9 fractional digits, truncated to
    microseconds) into an aware UTC datetime."""
    text = _str(value, where)
    match = _TIME_RE.fullmatch(text)
    if match is None:
        raise ProtocolError(
            where, f"expected an RFC 3339 time like 2024-01-01T12:00:00Z, got {text!r}"
        )
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),
            micro,
            tzinfo=UTC,
        )
        if sign:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            moment = moment - offset if sign == "+" else moment + offset
    except (ValueError, OverflowError) as error:
        raise ProtocolError(where, f"invalid time {text!r}: {error}") from None
    return moment


def format_etag(hash_hex: str) -> str:
    """The strong ETag for a content hash: the hash in double quotes."""
    return f'"{hash_hex}"'


def parse_etag(value: str) -> str | None:
    """The hash inside ``"<sha256>"`` (or a bare hash); ``None`` when it is not one.
    Weak tags (``W/"..."``) are not content hashes and give ``None``."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text if _HASH_RE.fullmatch(text) else None


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileMetadata:
    """One file (or empty directory) as the server or a client sees it."""

    path: str
    size: int
    modified: datetime
    hash: str
    is_directory: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "modified": format_time(self.modified),
            "hash": self.hash,
            "is_directory": self.is_directory,
        }

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> FileMetadata:
        data = _object(value, where, ("path", "size", "modified", "hash", "is_directory"))
        is_directory = _bool(data["is_directory"], f"{where}.is_directory")
        hash_hex = _str(data["hash"], f"{where}.hash")
        if is_directory:
            if hash_hex != "":
                raise ProtocolError(f"{where}.hash", "must be empty for a directory")
        else:
            validate_hash(hash_hex, f"{where}.hash")
        return cls(
            path=validate_path(data["path"], f"{where}.path"),
            size=_int(data["size"], f"{where}.size"),
            modified=parse_time(data["modified"], f"{where}.modified"),
            hash=hash_hex,
            is_directory=is_directory,
        )


def metadata_list_to_json(items: Sequence[FileMetadata]) -> list[dict[str, Any]]:
    """The ``GET /api/list`` body: a JSON array of FileMetadata."""
    return [item.to_json() for item in items]


def metadata_list_from_json(value: object, where: str = "$") -> list[FileMetadata]:
    return [
        FileMetadata.from_json(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where))
    ]


@dataclass(frozen=True)
class Create:
    """A new path: the client has ``metadata`` and the server should not have the path."""

    metadata: FileMetadata
    tag: ClassVar[str] = "Create"

    def to_json(self) -> dict[str, Any]:
        return {self.tag: {"metadata": self.metadata.to_json()}}


@dataclass(frozen=True)
class Update:
    """Changed content; ``base_hash`` (additive) is the hash the change was based on."""

    metadata: FileMetadata
    base_hash: str | None = None
    tag: ClassVar[str] = "Update"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"metadata": self.metadata.to_json()}
        if self.base_hash is not None:
            body["base_hash"] = self.base_hash
        return {self.tag: body}


@dataclass(frozen=True)
class Delete:
    """Remove ``path``; with ``base_hash`` (additive) only if it still has that hash."""

    path: str
    base_hash: str | None = None
    tag: ClassVar[str] = "Delete"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path}
        if self.base_hash is not None:
            body["base_hash"] = self.base_hash
        return {self.tag: body}


@dataclass(frozen=True)
class Move:
    """Rename ``from_path`` to ``to_path`` (JSON ``from`` / ``to``); the target must not
    exist. ``base_hash`` (additive) guards the source's content."""

    from_path: str
    to_path: str
    base_hash: str | None = None
    tag: ClassVar[str] = "Move"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"from": self.from_path, "to": self.to_path}
        if self.base_hash is not None:
            body["base_hash"] = self.base_hash
        return {self.tag: body}


SyncOperation: TypeAlias = Create | Update | Delete | Move


def operation_from_json(value: object, where: str = "$") -> SyncOperation:
    """Decode one externally tagged operation (``{"Delete": {"path": ...}}``)."""
    if not isinstance(value, Mapping):
        raise ProtocolError(where, f"expected an object, got {type_name(value)}")
    if len(value) != 1:
        raise ProtocolError(where, "expected exactly one of Create, Update, Delete, Move")
    ((tag, body),) = value.items()
    at = f"{where}.{tag}"
    if tag in ("Create", "Update"):
        data = _object(body, at, ("metadata",), ("base_hash",) if tag == "Update" else ())
        metadata = FileMetadata.from_json(data["metadata"], f"{at}.metadata")
        if tag == "Create":
            return Create(metadata)
        return Update(metadata, _optional_hash(data.get("base_hash"), f"{at}.base_hash"))
    if tag == "Delete":
        data = _object(body, at, ("path",), ("base_hash",))
        return Delete(
            validate_path(data["path"], f"{at}.path"),
            _optional_hash(data.get("base_hash"), f"{at}.base_hash"),
        )
    if tag == "Move":
        data = _object(body, at, ("from", "to"), ("base_hash",))
        return Move(
            validate_path(data["from"], f"{at}.from"),
            validate_path(data["to"], f"{at}.to"),
            _optional_hash(data.get("base_hash"), f"{at}.base_hash"),
        )
    raise ProtocolError(
        f"{where}.{tag}", "unknown operation (expected Create, Update, Delete or Move)"
    )


def _client_id(value: object, where: str) -> str:
    text = _str(value, where)
    if not text or len(text) > 200 or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ProtocolError(where, "expected 1-200 printable characters")
    return text


@dataclass(frozen=True)
class SyncRequest:
    """``POST /api/sync`` body: operations applied in order, on behalf of ``client_id``."""

    operations: tuple[SyncOperation, ...]
    client_id: str

    def to_json(self) -> dict[str, Any]:
        return {"operations": [op.to_json() for op in self.operations], "client_id": self.client_id}

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> SyncRequest:
        data = _object(value, where, ("operations", "client_id"))
        items = _list(data["operations"], f"{where}.operations")
        return cls(
            tuple(
                operation_from_json(op, f"{where}.operations[{i}]") for i, op in enumerate(items)
            ),
            _client_id(data["client_id"], f"{where}.client_id"),
        )


CONFLICT_EXTRAS = ("error", "existing_path")
"""Optional fields of a ConflictInfo body (a 409 name clash adds them); ignored here."""


@dataclass(frozen=True)
class ConflictInfo:
    """A change the server refused because its state differs from the change's base.

    ``local_metadata`` is the client's side (what it sent or meant; ``null`` for a
    delete), ``remote_metadata`` the server's current state (``null`` when the path does
    not exist on the server). ``resolution`` is the suggested strategy; the server never
    applies one by itself: the newer bytes on the server are never overwritten.
    Also the body of every ``412 Precondition Failed``.
    """

    path: str
    local_metadata: FileMetadata | None
    remote_metadata: FileMetadata | None
    resolution: Resolution = "KeepClient"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "local_metadata": self.local_metadata.to_json() if self.local_metadata else None,
            "remote_metadata": self.remote_metadata.to_json() if self.remote_metadata else None,
            "resolution": self.resolution,
        }

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> ConflictInfo:
        data = _object(
            value,
            where,
            ("path", "local_metadata", "remote_metadata", "resolution"),
            CONFLICT_EXTRAS,
        )
        resolution = _str(data["resolution"], f"{where}.resolution")
        if resolution not in RESOLUTIONS:
            raise ProtocolError(f"{where}.resolution", f"expected one of {', '.join(RESOLUTIONS)}")

        def meta(key: str) -> FileMetadata | None:
            raw = data[key]
            return None if raw is None else FileMetadata.from_json(raw, f"{where}.{key}")

        return cls(
            validate_path(data["path"], f"{where}.path"),
            meta("local_metadata"),
            meta("remote_metadata"),
            resolution,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class OperationResult:
    """What became of one request operation (additive).

    ``status``: ``applied`` (done, ``seq`` set), ``unchanged`` (the server already had
    that state), ``upload_required`` (Create/Update: send the bytes with
    ``POST /api/upload``, using ``base_hash`` as ``If-Match``), ``conflict`` (see
    ``SyncResponse.conflicts``), ``error`` (``message`` says why, e.g. a missing path).
    """

    index: int
    status: Literal["applied", "unchanged", "upload_required", "conflict", "error"]
    path: str
    seq: int | None = None
    message: str = ""
    STATUSES: ClassVar[tuple[str, ...]] = (
        "applied",
        "unchanged",
        "upload_required",
        "conflict",
        "error",
    )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "status": self.status, "path": self.path}
        if self.seq is not None:
            body["seq"] = self.seq
        if self.message:
            body["message"] = self.message
        return body

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> OperationResult:
        data = _object(value, where, ("index", "status", "path"), ("seq", "message"))
        status = _str(data["status"], f"{where}.status")
        if status not in cls.STATUSES:
            raise ProtocolError(f"{where}.status", f"expected one of {', '.join(cls.STATUSES)}")
        seq = data.get("seq")
        return cls(
            _int(data["index"], f"{where}.index"),
            status,  # type: ignore[arg-type]
            _str(data["path"], f"{where}.path"),
            None if seq is None else _int(seq, f"{where}.seq"),
            _str(data.get("message", ""), f"{where}.message"),
        )


@dataclass(frozen=True)
class SyncResponse:
    """``POST /api/sync`` answer.

    ``operations``: the server's changes since this client's recorded cursor, as
    operations the client should apply (the brief's field). ``conflicts``: refused
    operations. Additive: ``results`` (one per request operation, in order),
    ``cursor`` and ``index_id`` (the journal position the answer reflects; the server
    records it as the client's cursor).
    """

    operations: tuple[SyncOperation, ...] = ()
    conflicts: tuple[ConflictInfo, ...] = ()
    results: tuple[OperationResult, ...] = ()
    cursor: int | None = None
    index_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operations": [op.to_json() for op in self.operations],
            "conflicts": [c.to_json() for c in self.conflicts],
            "results": [r.to_json() for r in self.results],
        }
        if self.cursor is not None:
            body["cursor"] = self.cursor
        if self.index_id is not None:
            body["index_id"] = self.index_id
        return body

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> SyncResponse:
        data = _object(value, where, ("operations", "conflicts"), ("results", "cursor", "index_id"))
        ops = _list(data["operations"], f"{where}.operations")
        conflicts = _list(data["conflicts"], f"{where}.conflicts")
        results = _list(data.get("results", []), f"{where}.results")
        cursor = data.get("cursor")
        index_id = data.get("index_id")
        return cls(
            tuple(operation_from_json(op, f"{where}.operations[{i}]") for i, op in enumerate(ops)),
            tuple(
                ConflictInfo.from_json(c, f"{where}.conflicts[{i}]")
                for i, c in enumerate(conflicts)
            ),
            tuple(
                OperationResult.from_json(r, f"{where}.results[{i}]") for i, r in enumerate(results)
            ),
            None if cursor is None else _int(cursor, f"{where}.cursor"),
            None if index_id is None else _str(index_id, f"{where}.index_id"),
        )


@dataclass(frozen=True)
class Change:
    """One journal entry: the ``GET /api/list?since=`` items and the ``/api/events``
    WebSocket messages (``{"seq", "path", "op", "origin"}`` plus ``metadata``).

    ``op`` is ``create``/``update``/``delete`` (a move is a delete and a create, each with
    its own ``seq``); ``origin`` is the client id that made the change, ``null`` for
    changes made in the folder by another program; ``metadata`` is the new state
    (``null`` for a delete).
    """

    seq: int
    path: str
    op: ChangeOp
    origin: str | None = None
    metadata: FileMetadata | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "path": self.path,
            "op": self.op,
            "origin": self.origin,
            "metadata": self.metadata.to_json() if self.metadata else None,
        }

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> Change:
        data = _object(value, where, ("seq", "path", "op", "origin"), ("metadata",))
        op = _str(data["op"], f"{where}.op")
        if op not in CHANGE_OPS:
            raise ProtocolError(f"{where}.op", f"expected one of {', '.join(CHANGE_OPS)}")
        origin = data["origin"]
        raw_meta = data.get("metadata")
        metadata = (
            None if raw_meta is None else FileMetadata.from_json(raw_meta, f"{where}.metadata")
        )
        if op == "delete" and metadata is not None:
            raise ProtocolError(f"{where}.metadata", "must be null for a delete")
        return cls(
            _int(data["seq"], f"{where}.seq", minimum=1),
            validate_path(data["path"], f"{where}.path"),
            op,  # type: ignore[arg-type]
            None if origin is None else _str(origin, f"{where}.origin"),
            metadata,
        )


@dataclass(frozen=True)
class ChangesPage:
    """``GET /api/list?since=SEQ[&index_id=ID][&limit=N]`` answer.

    ``changes`` are in ``seq`` order, at most one per path (its latest state) and at most
    ``limit``; ``cursor`` is the value to pass as ``since`` next time; ``more`` says
    another page follows at once. ``reset`` is true when the cursor cannot be served
    (another ``index_id``: the index was rebuilt, or a cursor older than the purged
    tombstones): ``changes`` is then empty and the client must re-list
    (``GET /api/list``) and reconcile by hash, then continue from ``cursor``.
    """

    index_id: str
    cursor: int
    changes: tuple[Change, ...] = ()
    more: bool = False
    reset: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "index_id": self.index_id,
            "cursor": self.cursor,
            "changes": [c.to_json() for c in self.changes],
            "more": self.more,
            "reset": self.reset,
        }

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> ChangesPage:
        data = _object(value, where, ("index_id", "cursor", "changes", "more", "reset"))
        items = _list(data["changes"], f"{where}.changes")
        return cls(
            _str(data["index_id"], f"{where}.index_id"),
            _int(data["cursor"], f"{where}.cursor"),
            tuple(Change.from_json(c, f"{where}.changes[{i}]") for i, c in enumerate(items)),
            _bool(data["more"], f"{where}.more"),
            _bool(data["reset"], f"{where}.reset"),
        )


# -- bytes ------------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON for a message's ``to_json()`` (or a list of them)."""
    if hasattr(value, "to_json"):
        value = value.to_json()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes | str, where: str = "$") -> Any:
    """Parse JSON text; bad UTF-8 or syntax becomes a :class:`ProtocolError`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(where, f"invalid JSON: {error}") from None
    except RecursionError:  # ``[`` x 100,000: deeper than any message of ours
        raise ProtocolError(where, "invalid JSON: nested too deeply") from None


@dataclass(frozen=True)
class DeltaPlan:
    """``POST /api/delta/plan`` body: one round of a delta upload's tree exchange."""

    path: str
    size: int
    sha256: str
    root: str
    nodes: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "root": self.root,
            "nodes": list(self.nodes),
        }

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> DeltaPlan:
        data = _object(value, where, ("path", "size", "sha256", "root", "nodes"))
        return cls(
            validate_path(data["path"], f"{where}.path"),
            _int(data["size"], f"{where}.size"),
            validate_hash(data["sha256"], f"{where}.sha256"),
            validate_hash(data["root"], f"{where}.root"),
            tuple(_list(data["nodes"], f"{where}.nodes")),
        )


@dataclass(frozen=True)
class DeltaCommit:
    """``POST /api/delta/commit`` body: place the file whose tree is ``root``."""

    path: str
    size: int
    sha256: str
    root: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "root": self.root}

    @classmethod
    def from_json(cls, value: object, where: str = "$") -> DeltaCommit:
        data = _object(value, where, ("path", "size", "sha256", "root"))
        return cls(
            validate_path(data["path"], f"{where}.path"),
            _int(data["size"], f"{where}.size"),
            validate_hash(data["sha256"], f"{where}.sha256"),
            validate_hash(data["root"], f"{where}.root"),
        )
