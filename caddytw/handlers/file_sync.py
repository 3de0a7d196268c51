"""``file_sync``: the file-sync server of the project's original design brief (its
endpoints and JSON shapes are a compatibility contract),
``{"handler": "file_sync", "root": ..., "enable_upload": true}``.

Fields: ``root`` (required; relative to the working directory, as Caddy resolves
paths), ``enable_upload`` (default false: every write endpoint answers 403), and the
additive ``clients`` (``[{"id", "token", "read_only"}]``, bearer tokens),
``rescan_interval`` (Caddy duration, default ``1m``; ``0`` turns the periodic rescan
off), ``watch`` (default true: watch the folder for changes by other programs),
``portable_names`` (default true: refuse, 422, to create names Windows or macOS cannot
store, such as ``CON``, ``aux.txt``, ``a.`` or ``a:b``; clients there would see them as
missing), ``create_root`` (default false: a missing root is never created, it answers 503
until it appears, as an unmounted disk must not look like an empty folder; true for a
new folder: created when no index exists for it yet) and ``max_upload_size`` (bytes,
default 10 GiB, ``0`` for no limit: a larger upload gets 413 and leaves nothing on
disk), ``index`` (where the index lives: ``{"module": "sqlite"}``, the default, in
Caddy's data directory; or ``{"module": "postgres", "connection_string":
"postgres://...", "name": "..."}`` for several nodes serving one shared folder, see
:mod:`caddytw.sync.pgindex`; ``name`` defaults to ``default`` and tells folders in one
database apart).

The SQLite index lives in Caddy's data directory, not in the served folder; the folder
carries a marker, ``.caddytw-folder`` (see :mod:`caddytw.sync.home`).

Handlers that name the same root in one config share one store, event hub and
background service (kept in ``context.shared``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

from twisted.logger import Logger

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.postgres import check_connection_string, shared_database
from caddytw.sync.access import AccessPolicy, all_loopback, parse_clients
from caddytw.sync.events import EventHub
from caddytw.sync.index import IndexLocation
from caddytw.sync.pgindex import PgLocation, schema_name
from caddytw.sync.resource import DEFAULT_MAX_UPLOAD, FileSyncResource
from caddytw.sync.scanner import SyncService
from caddytw.sync.store import LocalSyncStore

log = Logger()


def index_location(config: ObjectReader) -> Callable[[], IndexLocation] | None:
    """The ``index`` field: ``None`` for the default (SQLite), else a factory of the
    location (called only when the folder gets a new store, so a reload that keeps the
    folder opens no second pool)."""
    module = config.text("module", "sqlite")
    if module == "sqlite":
        config.done()
        return None
    if module != "postgres":
        raise ConfigError(
            config.at("module"), f'unknown index module "{module}" (sqlite, postgres)'
        )
    url = check_connection_string(config.raw("connection_string"), config.at("connection_string"))
    name = config.text("name", "default")
    try:
        schema_name(name)
    except ValueError as error:
        raise ConfigError(config.at("name"), str(error)) from None
    config.done()
    return lambda: PgLocation(shared_database(url), name)


class _Folder(NamedTuple):
    """What every handler serving one root shares, across reloads too."""

    store: LocalSyncStore
    hub: EventHub
    service: SyncService


def build(config: ObjectReader, context: BuildContext, next: Handler) -> FileSyncResource:
    root = config.text("root")
    enable_upload = config.flag("enable_upload")
    clients = parse_clients(config.array("clients"), config.at("clients"))
    interval = config.duration("rescan_interval", 60.0)
    watch = config.flag("watch", True)
    portable_names = config.flag("portable_names", True)
    create_root = config.flag("create_root")
    max_upload = config.integer("max_upload_size", DEFAULT_MAX_UPLOAD, minimum=0)
    index = index_location(config.reader("index"))
    config.done()
    if not root:
        raise ConfigError(config.at("root"), "file_sync needs a root folder")
    if interval is not None and interval < 0:
        raise ConfigError(config.at("rescan_interval"), "must not be negative")
    root_path = os.path.realpath(root)
    if os.path.exists(root_path) and not os.path.isdir(root_path):
        raise ConfigError(config.at("root"), f"{root_path} is not a folder")

    key = f"caddytw.file_sync:{root_path}"
    shared = context.shared.get(key)
    if not isinstance(shared, _Folder):
        store = LocalSyncStore(
            root_path, context.reactor, portable_names, create_root, index() if index else None
        )
        hub = EventHub(root_path)
        service = SyncService(store, hub, context.reactor, interval or None, watch)
        shared = context.shared[key] = _Folder(store, hub, service)
    store, hub, service = shared
    # The same folder keeps one store and watcher across reloads: it runs on untouched.
    if all(existing is not service for existing in context.services):
        context.services.append(service)

    where = ", ".join(context.listen) or "no listeners"
    if clients:
        log.info(
            "file_sync: {root}: {count} client(s) with bearer tokens; uploads {state}",
            root=root_path,
            count=len(clients),
            state="enabled" if enable_upload else "disabled",
        )
    elif all_loopback(context.listen):
        log.info(
            "file_sync: {root}: no clients configured; the API is open, without "
            "authentication, on the loopback listeners ({where}); uploads {state}",
            root=root_path,
            where=where,
            state="enabled" if enable_upload else "disabled",
        )
    else:
        log.warn(
            "file_sync: {root}: no clients configured and the server listens beyond "
            "loopback ({where}): only loopback connections are served, others get 403. "
            'Add "clients" with bearer tokens to open it up.',
            root=root_path,
            where=where,
        )
    return FileSyncResource(
        store, AccessPolicy(clients), hub, enable_upload, max_upload, context.reactor
    )
