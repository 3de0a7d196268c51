"""The ``file_server`` handler's JSON, decoded strictly into one frozen settings object.

Fields are Caddy 2.6's (``root``, ``hide``, ``index_names``, ``browse``,
``canonical_uris``, ``status_code``, ``pass_thru``, ``precompressed``,
``precompressed_order``, ``file_system``) plus one caddytw extension,
``allow_symlink_escape``.
"""

from __future__ import annotations

from dataclasses import dataclass

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader, join_path
from caddytw.handlers.file_server.encodings import SIDECAR_SUFFIXES
from caddytw.handlers.static_response import parse_status
from caddytw.http.placeholders import Template

DEFAULT_INDEX_NAMES = ("index.html", "index.txt")
#: Fields each precompressed module accepts (Caddy's gzip module embeds the encoder's
#: ``level``, which precompressed files ignore).
_PRECOMPRESSED_FIELDS = {"gzip": ("level",), "br": (), "zstd": ()}


@dataclass(frozen=True)
class BrowseSettings:
    """``browse``: list directories that have no index file."""

    #: A Go-template file to render listings with instead of the built-in page.
    template_file: str = ""


@dataclass(frozen=True)
class FileServerSettings:
    #: Site root; placeholders allowed; empty placeholders become ``.`` (the cwd).
    root: Template
    #: Globs or paths never served nor listed.
    hide: tuple[Template, ...]
    #: Files served for a directory, first existing one wins.
    index_names: tuple[Template, ...]
    #: Directory listings; None disables them (404 for a directory without index).
    browse: BrowseSettings | None
    #: Redirect ``/dir`` to ``/dir/`` (and ``/file/`` to ``/file``) with 308.
    canonical_uris: bool
    #: Status for a successful answer instead of 200 (e.g. a 404 page); placeholders.
    status_code: Template | None
    #: Call the next handler instead of answering 404.
    pass_thru: bool
    #: Content codings with sidecar files (``.br``, ``.gz``, ``.zst``), by coding name.
    precompressed: tuple[str, ...]
    #: Server preference among equally acceptable codings.
    precompressed_order: tuple[str, ...]
    #: Serve files whose real location (symlinks resolved) is outside ``root``. Caddy
    #: follows every symlink; caddytw refuses escaping ones unless this is set.
    allow_symlink_escape: bool


def _precompressed(reader: ObjectReader) -> tuple[str, ...]:
    names = []
    for name, value in reader.mapping("precompressed").items():
        path = join_path(reader.at("precompressed"), name)
        if name not in SIDECAR_SUFFIXES:
            raise ConfigError(
                path, f"unknown precompressed module {name!r} (expected one of br, gzip, zstd)"
            )
        module = ObjectReader(value if value is not None else {}, path)
        level = module.raw("level") if "level" in _PRECOMPRESSED_FIELDS[name] else None
        if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
            raise ConfigError(module.at("level"), "expected an integer")
        module.done()
        names.append(name)
    return tuple(names)


def _browse(reader: ObjectReader) -> BrowseSettings | None:
    if reader.raw("browse") is None:
        return None
    browse = reader.reader("browse")
    settings = BrowseSettings(template_file=browse.text("template_file"))
    browse.done()
    return settings


def parse(reader: ObjectReader) -> FileServerSettings:
    """Decode and validate; unknown fields are an error naming their JSON path."""
    if reader.raw("file_system") is not None:
        raise ConfigError(
            reader.at("file_system"),
            "no file system modules are available; files come from the local disk "
            "(remove this field)",
        )
    root = reader.text("root") or "{http.vars.root}"
    index_names = (
        tuple(Template(n) for n in reader.strings("index_names"))
        if reader.data.get("index_names") is not None
        else tuple(Template(n) for n in DEFAULT_INDEX_NAMES)
    )
    canonical = reader.flag("canonical_uris", True)
    settings = FileServerSettings(
        root=Template(root),
        hide=tuple(Template(h) for h in reader.strings("hide")),
        index_names=index_names,
        browse=_browse(reader),
        canonical_uris=canonical,
        status_code=parse_status(reader.raw("status_code"), reader.at("status_code")),
        pass_thru=reader.flag("pass_thru"),
        precompressed=_precompressed(reader),
        precompressed_order=tuple(reader.strings("precompressed_order")),
        allow_symlink_escape=reader.flag("allow_symlink_escape"),
    )
    reader.done()
    return settings
