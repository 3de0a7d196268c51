"""Mapping request paths onto the disk without ever leaving the site root.

The lexical part is pure: the request path (already percent-decoded, so ``%2e%2e`` and
``%2f`` arrive as ``..`` and ``/``) is cleaned as ``"/" + path`` the way Go's
``path.Clean`` does, so ``..`` can never climb above ``/``, and only then joined to the
root. The part that needs the disk (where symlinks really lead) is :func:`real_path` and
:func:`real_path_of_fd`, and :func:`is_within` decides containment.
"""

from __future__ import annotations

import os
from functools import lru_cache

from caddytw.http.gourl import go_clean

#: Longer request paths are not looked up at all (Linux's PATH_MAX is 4096).
MAX_PATH_BYTES = 4096


def go_base(path: str) -> str:
    """Go's ``path.Base``: the last element, trailing slashes ignored (``"/"`` for root)."""
    if not path:
        return "."
    path = path.rstrip("/")
    if not path:
        return "/"
    return path[path.rfind("/") + 1 :]


@lru_cache(maxsize=1024)
def sanitized_join(root: str, request_path: str) -> str:
    """Caddy's ``SanitizedPathJoin``: ``root`` joined with the cleaned request path, which
    cannot leave ``root`` lexically; a trailing slash on the request is kept, so that a
    file requested as a directory (``/a.txt/``) does not exist. Cached: a site asks for
    the same few paths over and over, and cleaning them twice is a visible share of a
    small file's cost."""
    base = root or "."
    cleaned = go_clean("/" + request_path)
    joined = go_clean(base + "/" + cleaned.lstrip("/")) if cleaned != "/" else go_clean(base)
    if request_path.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return joined


def lookup_refused(request_path: str) -> bool:
    """Paths never looked up on disk: NUL bytes (which no file name holds) and paths
    longer than any the kernel would resolve."""
    if "\x00" in request_path:
        return True
    # No character encodes to more than 4 bytes: short paths need no encoding to tell.
    if len(request_path) * 4 <= MAX_PATH_BYTES:
        return False
    return len(os.fsencode(request_path)) > MAX_PATH_BYTES


def is_within(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` itself or below it (both resolved)."""
    if path == root:
        return True
    prefix = root if root.endswith("/") else root + "/"
    return path.startswith(prefix)


_PROC_FD = "/proc/self/fd/"


def real_path_of_fd(fd: int, fallback: str) -> str:
    """Where an open file really is: the kernel's own answer from ``/proc`` (one syscall,
    and it describes exactly what was opened), else ``realpath`` of ``fallback``."""
    try:
        return os.readlink(_PROC_FD + str(fd))
    except OSError:
        return os.path.realpath(fallback)


def real_path(path: str) -> str:
    """Where ``path`` really leads, symlinks resolved (cheaply through ``O_PATH`` on Linux)."""
    flag = getattr(os, "O_PATH", None)
    if flag is None:
        return os.path.realpath(path)
    try:
        fd = os.open(path, flag | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        return real_path_of_fd(fd, path)
    finally:
        os.close(fd)


@lru_cache(maxsize=256)
def child_prefix(root: str) -> str | None:
    """The lexical prefix that :func:`sanitized_join` puts before a file directly in
    ``root`` (``"/srv/"`` for ``/srv/``, ``""`` for ``.``), or None when ``root`` has a
    ``..`` component: only without one does cleaning the root lexically name the same
    directory the kernel resolves it to (``link/..`` is not ``.`` when ``link`` is a
    symlink)."""
    if ".." in root.split("/"):
        return None
    cleaned = go_clean(root or ".")
    if cleaned == ".":
        return ""
    return cleaned if cleaned.endswith("/") else cleaned + "/"


def direct_child(root: str, filename: str) -> bool:
    """Whether ``filename`` (from :func:`sanitized_join`) names an entry directly in
    ``root``, so that, opened without following a final symlink, it cannot be anywhere
    but in the directory the root resolves to."""
    prefix = child_prefix(root)
    if prefix is None or not filename.startswith(prefix):
        return False
    name = filename[len(prefix) :]
    return name not in ("", ".", "..") and "/" not in name
