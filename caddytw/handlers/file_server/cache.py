"""Small files and their response validators, remembered between requests.

Serving a 1 KiB file costs ``open`` + ``fstat`` + ``pread`` + ``close`` and the ETag,
Last-Modified and Content-Type values; a cache hit costs one ``stat`` of the path.

**Invalidation: none needed, every hit is checked.** Each hit stats the path (following
symlinks, as ``open`` does) and uses the entry only if device, inode, mode, size,
mtime *and ctime* are all unchanged; anything else drops the entry and the request
takes the ordinary path (which re-applies every check: regular file, inside the root,
permissions). So a file that is rewritten, truncated, replaced by ``rename``, deleted,
``chmod``-ed or swapped for a symlink is served correctly on the very next request:
there is no TTL and no inotify. ctime is the key that makes this sound: any write,
``utime`` or ``chmod`` sets it to the current time and no system call sets it back,
so restoring an old mtime (``touch -d``, ``rsync -t``) is still noticed.

One race remains, the one git calls "racily clean": timestamps advance in clock ticks
(a few ms; 2 s on FAT), so a file written twice within one tick, with the same size,
keeps its ctime. Bytes are therefore remembered only for a file whose ctime is at least
:data:`RACY_SECONDS` old when it is read: a later change then necessarily carries a
newer ctime. A file changed more recently is served from disk until it settles.

Containment is not remembered either: an entry is made only for a file the ordinary
path opened (inside the root, regular), and a hit is the very same inode, so it is the
same file, whatever path now leads to it.

Bounded: at most :data:`MAX_ENTRIES` files of at most :data:`MAX_FILE_BYTES` each and
:data:`MAX_TOTAL_BYTES` together, least recently used dropped first. Larger files are
not read into memory at all (they stream, by ``sendfile`` on plain TCP).
"""

from __future__ import annotations

import os
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from caddytw.handlers.file_server.conditional import make_etag
from caddytw.handlers.file_server.content_types import content_type_for
from caddytw.http.dates import http_date

#: How old a file's ctime must be before its bytes are remembered (see the docstring).
RACY_SECONDS = 2.0
MAX_FILE_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 8 << 20
MAX_ENTRIES = 2048

#: What identifies one version of a file: (dev, ino, mode, size, mtime_ns, ctime_ns).
Key = tuple[int, int, int, int, int, int]


def key_of(info: os.stat_result) -> Key:
    return (
        info.st_dev,
        info.st_ino,
        info.st_mode,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
    )


@lru_cache(maxsize=1024)
def header_value(text: str) -> bytes:
    """A response header value as twisted's ``Headers`` would store it (latin-1, line
    breaks folded to spaces), remembered: validators and types repeat across requests."""
    return b" ".join(text.encode("latin-1").splitlines())


@dataclass(frozen=True)
class Validators:
    """The response metadata of one version of a file, as header bytes."""

    etag: str
    etag_value: bytes
    #: Whole seconds, None for the Unix epoch (Go: "no modification time").
    mtime: int | None
    last_modified: bytes | None
    content_type: bytes | None

    @classmethod
    def of(cls, filename: str, info: os.stat_result, plain: os.stat_result) -> Validators:
        """The ETag from ``info`` (what is sent, maybe a sidecar), Last-Modified from
        ``plain`` (the file asked for), the type from the name."""
        etag = make_etag(info.st_mtime_ns // 1_000_000_000, info.st_size)
        seconds = plain.st_mtime_ns // 1_000_000_000
        mtime = seconds if seconds != 0 else None
        content_type = content_type_for(filename)
        return cls(
            etag,
            header_value(etag),
            mtime,
            None if mtime is None else header_value(http_date(mtime)),
            None if content_type is None else header_value(content_type),
        )


@dataclass(frozen=True)
class Entry:
    key: Key
    info: os.stat_result
    data: bytes
    validators: Validators


class FileCache:
    """Whole small files by path, each hit validated by one ``stat``."""

    def __init__(
        self,
        *,
        max_entries: int = MAX_ENTRIES,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        racy_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.racy_seconds = RACY_SECONDS if racy_seconds is None else racy_seconds
        self.clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes of file content held."""
        return self._bytes

    def get(self, filename: str) -> Entry | None:
        """The entry for ``filename`` if the file there is still exactly that version;
        a stale entry is dropped. Raises nothing: a failed ``stat`` is just a miss (the
        ordinary path then reports it)."""
        entry = self._entries.get(filename)
        if entry is None:
            return None
        try:
            info = os.stat(filename)
        except (OSError, ValueError):
            self._drop(filename)
            return None
        if key_of(info) != entry.key:
            self._drop(filename)
            return None
        self._entries.move_to_end(filename)
        return entry

    def fill(self, filename: str, fd: int, info: os.stat_result) -> Entry | None:
        """Read and remember the open regular file ``fd`` (``info`` from its ``fstat``)
        if it is small and settled; None if it is not remembered."""
        size = info.st_size
        if size > self.max_file_bytes or not stat.S_ISREG(info.st_mode):
            return None
        if info.st_ctime_ns / 1e9 > self.clock() - self.racy_seconds:
            return None  # changed too recently for its ctime to tell the next change
        data = os.pread(fd, size, 0)
        if len(data) != size:
            return None
        entry = Entry(key_of(info), info, data, Validators.of(filename, info, info))
        self._drop(filename)
        self._entries[filename] = entry
        self._bytes += size
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_total_bytes
        ):
            oldest = next(iter(self._entries))
            self._drop(oldest)
        return entry

    def _drop(self, filename: str) -> None:
        entry = self._entries.pop(filename, None)
        if entry is not None:
            self._bytes -= entry.info.st_size
