"""Content-Type from a file name's extension, as Caddy (Go's ``mime`` package) decides it.

Go consults a small built-in table first, then the system's shared-mime-info database
(``globs2``), then ``mime.types`` files; ``text/*`` types get ``; charset=utf-8``. An
unknown extension gets no Content-Type at all (Caddy never sniffs). Here the built-in
table is larger, so the common web types do not depend on what the host has installed;
where a host database disagrees with the web's registered type (``.ts`` as Qt
translations, ``.otf`` as an OpenDocument template) the table wins.
"""

from __future__ import annotations

import os
from functools import cache, lru_cache

_UTF8 = "; charset=utf-8"

_TABLE: dict[str, str] = {
    # Go's built-in table (these win over any system database in Go as well).
    ".avif": "image/avif",
    ".css": "text/css",
    ".gif": "image/gif",
    ".htm": "text/html",
    ".html": "text/html",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "text/javascript",
    ".json": "application/json",
    ".mjs": "text/javascript",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".xml": "text/xml",
    # Text and markup.
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".ics": "text/calendar",
    ".vcf": "text/vcard",
    ".vtt": "text/vtt",
    ".xhtml": "application/xhtml+xml",
    ".xht": "application/xhtml+xml",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".jsonld": "application/ld+json",
    ".geojson": "application/geo+json",
    ".webmanifest": "application/manifest+json",
    ".map": "application/json",
    ".manifest": "text/cache-manifest",
    ".appcache": "text/cache-manifest",
    ".yaml": "application/x-yaml",
    ".yml": "application/x-yaml",
    ".toml": "application/toml",
    ".gpx": "application/gpx+xml",
    ".kml": "application/vnd.google-earth.kml+xml",
    ".kmz": "application/vnd.google-earth.kmz",
    ".rtf": "application/rtf",
    ".tex": "text/x-tex",
    ".diff": "text/x-patch",
    ".patch": "text/x-patch",
    ".log": "text/x-log",
    # Source code.
    ".c": "text/x-csrc",
    ".h": "text/x-chdr",
    ".cpp": "text/x-c++src",
    ".go": "text/x-go",
    ".java": "text/x-java",
    ".py": "text/x-python",
    ".rs": "text/rust",
    ".sh": "application/x-shellscript",
    ".php": "application/x-php",
    ".pl": "application/x-perl",
    ".rb": "application/x-ruby",
    ".sql": "application/sql",
    # Images.
    ".bmp": "image/bmp",
    ".ico": "image/vnd.microsoft.icon",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".heic": "image/heif",
    ".heif": "image/heif",
    ".jxl": "image/jxl",
    ".psd": "image/vnd.adobe.photoshop",
    ".eps": "image/x-eps",
    ".ps": "application/postscript",
    ".ai": "application/illustrator",
    # Fonts.
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    # Audio.
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/x-wav",
    ".weba": "audio/webm",
    ".mid": "audio/midi",
    ".midi": "audio/midi",
    # Video and streaming.
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
    ".mkv": "video/x-matroska",
    ".mov": "video/quicktime",
    ".avi": "video/x-msvideo",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
    ".flv": "video/x-flv",
    ".3gp": "video/3gpp",
    ".ts": "video/mp2t",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    # Archives and packages.
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tgz": "application/x-compressed-tar",
    ".tar": "application/x-tar",
    ".bz2": "application/x-bzip",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
    ".7z": "application/x-7z-compressed",
    ".rar": "application/vnd.rar",
    ".deb": "application/vnd.debian.binary-package",
    ".rpm": "application/x-rpm",
    ".apk": "application/vnd.android.package-archive",
    ".jar": "application/x-java-archive",
    ".iso": "application/x-cd-image",
    ".dmg": "application/x-apple-diskimage",
    ".msi": "application/x-msi",
    ".exe": "application/x-ms-dos-executable",
    # Documents.
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".epub": "application/epub+zip",
    ".eml": "message/rfc822",
    ".srt": "application/x-subrip",
}

GLOBS_FILES = ("/usr/local/share/mime/globs2", "/usr/share/mime/globs2")
MIME_TYPES_FILES = (
    "/etc/mime.types",
    "/etc/apache2/mime.types",
    "/etc/apache/mime.types",
    "/etc/httpd/conf/mime.types",
)


def with_charset(media_type: str) -> str:
    """Go's rule: a ``text/*`` type without parameters is declared UTF-8."""
    if media_type.startswith("text/") and "charset=" not in media_type:
        return media_type + _UTF8
    return media_type


def parse_globs2(text: str) -> dict[str, str]:
    """``weight:type:*.ext`` lines of a shared-mime-info ``globs2`` file (first, i.e.
    heaviest, entry per extension wins; only plain ``*.ext`` globs count)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) < 3:
            continue
        media_type, glob = fields[1], fields[2]
        if not glob.startswith("*.") or any(c in glob[2:] for c in "*?["):
            continue
        found.setdefault(glob[1:].lower(), media_type)
    return found


def parse_mime_types(text: str) -> dict[str, str]:
    """``type ext ext ...`` lines of a ``mime.types`` file (later lines override)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        for ext in fields[1:]:
            found["." + ext.lower()] = fields[0]
    return found


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


@cache
def system_types() -> dict[str, str]:
    """The host's database, read once: ``globs2`` if present, else ``mime.types`` files.

    Called at build time so the reactor never waits on it.
    """
    for path in GLOBS_FILES:
        text = _read(path)
        if text is not None:
            return parse_globs2(text)
    merged: dict[str, str] = {}
    for path in MIME_TYPES_FILES:
        text = _read(path)
        if text is not None:
            merged.update(parse_mime_types(text))
    return merged


def content_type_for(filename: str, extra: dict[str, str] | None = None) -> str | None:
    """The Content-Type for a file name, or None when its extension is unknown."""
    if extra is None:
        return _host_type_of(filename)
    return _type_for(filename, extra)


@lru_cache(maxsize=1024)
def _host_type_of(filename: str) -> str | None:
    """Per file name against the host database, remembered: it never changes while
    the server runs, and every file answer asks."""
    return _type_for(filename, None)


def _type_for(filename: str, extra: dict[str, str] | None) -> str | None:
    name = os.path.basename(filename)
    dot = name.rfind(".")
    if dot == -1:
        return None
    ext = name[dot:].lower()  # Go's filepath.Ext: ".json" is the extension of ".json"
    if ext == ".":
        return None
    media_type = _TABLE.get(ext)
    if media_type is None:
        media_type = (system_types() if extra is None else extra).get(ext)
    return with_charset(media_type) if media_type else None
