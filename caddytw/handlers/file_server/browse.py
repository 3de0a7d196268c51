"""Directory listings: reading a directory, sorting and paging it, and its JSON form.

:func:`scan` does blocking IO and runs in a thread; everything else is pure. The JSON
is Caddy's: an array of ``{name, size, url, mod_time, mode, is_dir, is_symlink}`` with
``/`` appended to directory names, ``mode`` as Go's ``os.FileMode`` bits and
``mod_time`` as RFC 3339 with nanoseconds, in UTC.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

# Go's os.FileMode type bits.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20
GO_MODE_IRREGULAR = 1 << 19

SORT_NAME = "name"
SORT_NAME_DIR_FIRST = "namedirfirst"
SORT_SIZE = "size"
SORT_TIME = "time"

#: Characters Go's URL path escaping leaves alone (besides letters, digits and ``-_.~``).
_URL_SAFE = "$&+,/:;=@"


def go_file_mode(st_mode: int) -> int:
    """Go's ``os.FileMode`` for a POSIX ``st_mode`` (type bits moved, permissions kept)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    if kind == stat.S_IFDIR:
        mode |= GO_MODE_DIR
    elif kind == stat.S_IFLNK:
        mode |= GO_MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        mode |= GO_MODE_DEVICE
    elif kind == stat.S_IFCHR:
        mode |= GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        mode |= GO_MODE_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        mode |= GO_MODE_SOCKET
    elif kind != stat.S_IFREG:
        mode |= GO_MODE_IRREGULAR
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


def rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: fraction without trailing zeros, none if zero."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def display_name(name: str) -> str:
    """A file name as text: undecodable bytes become U+FFFD, as Go's JSON does."""
    return os.fsencode(name).decode("utf-8", "replace")


@dataclass(frozen=True)
class Entry:
    """One listed file; ``name`` ends with ``/`` for directories."""

    name: str
    url: str
    size: int
    mod_time_ns: int
    mode: int
    is_dir: bool
    is_symlink: bool

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "url": self.url,
            "mod_time": rfc3339_nano(self.mod_time_ns),
            "mode": self.mode,
            "is_dir": self.is_dir,
            "is_symlink": self.is_symlink,
        }


def make_entry(name: str, info: os.stat_result, target: os.stat_result | None) -> Entry:
    """An entry from ``lstat`` info; ``target`` is the ``stat`` of a symlink's target
    (size and directory-ness come from it, mode and time from the link, as Caddy)."""
    is_symlink = stat.S_ISLNK(info.st_mode)
    effective = target if (is_symlink and target is not None) else info
    is_dir = stat.S_ISDIR(effective.st_mode)
    raw = os.fsencode(name) + (b"/" if is_dir else b"")
    return Entry(
        name=display_name(name) + ("/" if is_dir else ""),
        url="./" + quote(raw, safe=_URL_SAFE),
        size=effective.st_size,
        mod_time_ns=info.st_mtime_ns,
        mode=go_file_mode(info.st_mode),
        is_dir=is_dir,
        is_symlink=is_symlink,
    )


def scan(
    directory: str, skip: Callable[[str], bool], target_allowed: Callable[[str], bool]
) -> list[Entry]:
    """Read ``directory`` (blocking: call from a thread), in file-name byte order.

    ``skip(path)`` drops hidden files; ``target_allowed(path)`` is asked for symlinks and
    drops those whose target may not be served (its size and time would leak).
    """
    entries = []
    with os.scandir(directory) as listing:
        found = sorted(listing, key=lambda e: os.fsencode(e.name))
    for item in found:
        path = os.path.join(directory, item.name)
        if skip(path):
            continue
        try:
            info = item.stat(follow_symlinks=False)
        except OSError:
            continue
        target = None
        if stat.S_ISLNK(info.st_mode):
            if not target_allowed(path):
                continue
            try:
                target = os.stat(path)
            except OSError:
                target = None  # a dangling link is listed as itself, as Caddy does
        entries.append(make_entry(item.name, info, target))
    return entries


def _lower(entry: Entry) -> str:
    return entry.name.lower()


_SORT_KEYS: dict[str, Callable[[Entry], tuple[object, ...]]] = {
    SORT_NAME: lambda e: (_lower(e),),
    SORT_NAME_DIR_FIRST: lambda e: (not e.is_dir, _lower(e)),
    # Directory sizes mean little: they come first, by name; files by size.
    SORT_SIZE: lambda e: (0, 0, _lower(e)) if e.is_dir else (1, e.size, ""),
    SORT_TIME: lambda e: (e.mod_time_ns,),
}


def _int_param(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


@dataclass
class Listing:
    """What a listing page shows (the fields Caddy's browse templates see)."""

    name: str
    path: str
    items: list[Entry]
    can_go_up: bool
    sort: str = SORT_NAME_DIR_FIRST
    order: str = "asc"
    limit: int = 0
    offset: int = 0
    num_dirs: int = field(init=False, default=0)
    num_files: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.num_dirs = sum(1 for e in self.items if e.is_dir)
        self.num_files = len(self.items) - self.num_dirs

    def apply_query(self, sort: str, order: str, limit: str, offset: str) -> None:
        """Caddy's ``sort``/``order``/``limit``/``offset`` query parameters: unknown sort
        keys leave the directory order, and out-of-range limits or offsets are ignored."""
        self.sort = sort or SORT_NAME_DIR_FIRST
        self.order = order or "asc"
        key = _SORT_KEYS.get(self.sort)
        if key is not None:
            self.items.sort(key=key, reverse=self.order == "desc")
        offset_value = _int_param(offset)
        if 0 < offset_value <= len(self.items):
            self.items = self.items[offset_value:]
            self.offset = offset_value
        limit_value = _int_param(limit)
        if 0 < limit_value <= len(self.items):
            self.items = self.items[:limit_value]
            self.limit = limit_value

    def breadcrumbs(self) -> list[tuple[str, str]]:
        """``(relative link, text)`` for each level of ``path``; links are relative so
        they stay right under a stripped path prefix."""
        parts = [p for p in self.path.split("/") if p]
        crumbs = [("./" if not parts else "../" * len(parts), "/")]
        for depth, part in enumerate(parts, start=1):
            crumbs.append(("../" * (len(parts) - depth) or "./", part))
        return crumbs


def listing_json(items: list[Entry]) -> bytes:
    """The JSON array as Go's encoder writes it (``<>&`` escaped, trailing newline)."""
    text = json.dumps([e.as_json() for e in items], ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8") + b"\n"


def human_size(size: int) -> str:
    """go-humanize's ``IBytes`` as Caddy's listing shows sizes: ``1000 B``, ``1.5 KiB``."""
    if size < 10:
        return f"{size} B"
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    exponent = 0
    while size >= 1024 ** (exponent + 1) and exponent < len(units) - 1:
        exponent += 1
    value = int(size / 1024**exponent * 10 + 0.5) / 10
    return f"{value:.1f} {units[exponent]}" if value < 10 else f"{value:.0f} {units[exponent]}"
