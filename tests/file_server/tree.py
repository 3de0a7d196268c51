"""A site tree (and a secret beside it) shared by the file_server tests."""

from __future__ import annotations

import calendar
import os
from pathlib import Path

SECRET = b"TOPSECRET-OUTSIDE-THE-ROOT"
HELLO = b"hello world\n"
HELLO_MTIME = calendar.timegm((2023, 1, 2, 3, 4, 5, 0, 0, 0))
HELLO_ETAG = '"rnu8itc"'  # what caddy 2.6.2 sends for a 12-byte file with that mtime
HELLO_LAST_MODIFIED = "Mon, 02 Jan 2023 03:04:05 GMT"
BIG = bytes(range(256)) * 1024  # 256 KiB: streamed by the producer, not read at once


def make_tree(base: Path) -> Path:
    """Create ``base/site`` (the root) and ``base/outside`` (must never be served)."""
    site, outside = base / "site", base / "outside"
    for folder in ("sub/deeper", "withidx", "txtidx", "private", "pre/dirside.js.gz", "empty"):
        (site / folder).mkdir(parents=True, exist_ok=True)
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_bytes(SECRET)
    files = {
        "hello.txt": HELLO,
        "empty.txt": b"",
        "page.html": b"<!doctype html><p>page</p>\n",
        "style.css": b"body{}\n",
        "noext": b"plain\n",
        "big.bin": BIG,
        "sub/a.txt": b"sub a\n",
        "withidx/index.html": b"<h1>index</h1>\n",
        "withidx/other.txt": b"other\n",
        "txtidx/index.txt": b"text index\n",
        ".hidden": b"hidden\n",
        "secret.key": b"key\n",
        "private/x.txt": b"private\n",
        "pre/app.js": b"console.log('plain')\n",
        "pre/app.js.gz": b"GZIP-BYTES",
        "pre/app.js.br": b"BROTLI-BYTES!",
        "pre/app.js.zst": b"ZSTD",
        "pre/only.css.gz": b"GZ-ONLY",
        "pre/dirside.js": b"plain dirside\n",
    }
    for name, data in files.items():
        (site / name).write_bytes(data)
    links = {
        "link.txt": "hello.txt",
        "sublink": "sub",
        "escape.txt": "../outside/secret.txt",
        "escdir": "../outside",
        "dangling": "does-not-exist",
        "abs-escape": str(outside / "secret.txt"),
    }
    for name, target in links.items():
        (site / name).symlink_to(target)
    # Distinct times (links and directories included) so sorting by time has no ties.
    stamp = 1_700_000_000
    for index, path in enumerate(sorted(site.rglob("*"), key=str), start=1):
        os.utime(path, (stamp + index, stamp + index), follow_symlinks=False)
    os.utime(site / "hello.txt", (HELLO_MTIME, HELLO_MTIME))
    return site
