"""``file_sync_ui``: a file manager in the browser for a folder served by ``file_sync``.

``{"handler": "file_sync_ui", "api": "/api"}``: ``api`` is the path prefix of the
``file_sync`` route the page talks to (default ``/api``), an absolute path of plain
URL characters. Put it on a route that does not match the API, e.g. after
``/api/*``::

    {"match": [{"path": ["/api/*"]}], "handle": [{"handler": "file_sync", ...}]},
    {"handle": [{"handler": "file_sync_ui", "api": "/api"}]}
"""

from __future__ import annotations

import re

from caddytw.config.errors import ConfigError
from caddytw.config.reader import ObjectReader
from caddytw.http.build import BuildContext, Handler
from caddytw.syncui import SyncUiResource

#: ``/segment[/segment...]`` of unreserved URL characters (what the page puts in
#: ``fetch`` URLs and a ``<meta>`` tag without further escaping).
_API_RE = re.compile(r"(/[A-Za-z0-9._~-]+)+/?")


def build(config: ObjectReader, context: BuildContext, next: Handler) -> SyncUiResource:
    api = config.text("api", "/api")
    config.done()
    if not _API_RE.fullmatch(api):
        raise ConfigError(
            config.at("api"),
            f"expected the file_sync route's path prefix like /api, got {api!r}",
        )
    return SyncUiResource(api.rstrip("/"))
