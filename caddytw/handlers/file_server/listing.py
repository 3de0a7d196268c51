"""Answering a request for a directory with a listing (``browse``).

Reading the directory (and a custom template file) is blocking work, so it runs in the
reactor's thread pool; the answer is written back on the reactor thread, unless the
client left meanwhile. JSON is chosen when ``Accept`` mentions ``application/json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from caddytw.handlers.file_server import hide as hiding
from caddytw.handlers.file_server.browse import Listing, display_name, listing_json, scan
from caddytw.handlers.file_server.browse_html import render_listing
from caddytw.handlers.file_server.config import FileServerSettings
from caddytw.handlers.file_server.gotemplate import TemplateCache, TemplateError
from caddytw.handlers.file_server.paths import go_base
from caddytw.handlers.file_server.responses import finish_with, original_path, redirect
from caddytw.http.dispatch import Answer, fail
from caddytw.http.errors import HandlerError
from caddytw.http.request import NOT_DONE_YET, CaddyRequest


def run_blocking(reactor: Any, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
    """Run ``function`` in the reactor's thread pool; a reactor without threads (an
    in-memory test reactor) runs it inline."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    get_pool = getattr(reactor, "getThreadPool", None)
    if get_pool is None:
        return maybeDeferred(function, *args)
    return deferToThreadPool(reactor, get_pool(), function, *args)


def wants_json(request: CaddyRequest) -> bool:
    accept = request.header_text("accept") or ""
    return "application/json" in accept.lower()


class ListingResponder:
    """Builds and sends directory listings for one ``file_server``."""

    def __init__(self, settings: FileServerSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.templates = TemplateCache()

    def respond(
        self,
        request: CaddyRequest,
        directory: str,
        hide: tuple[str, ...],
        target_allowed: Callable[[str], bool],
    ) -> Answer:
        # Relative links in a listing only work from a URL ending in "/": redirect
        # (whatever canonical_uris says), unless the last element was rewritten.
        original = original_path(request)
        current = request.decoded_path
        if (not current or go_base(original) == go_base(current)) and not original.endswith("/"):
            return redirect(request, original + "/")
        query = {
            key: request.args.get(key.encode(), [b""])[0].decode("utf-8", "replace")
            for key in ("sort", "order", "limit", "offset")
        }
        as_json = wants_json(request)
        template_file = (
            "" if as_json or self.settings.browse is None else (self.settings.browse.template_file)
        )

        def build() -> tuple[bytes, bytes]:
            entries = scan(directory, lambda p: hiding.is_hidden(p, hide), target_allowed)
            path = display_name(current) or "/"
            listing = Listing(
                name=go_base(path), path=path, items=entries, can_go_up=path.strip("/") != ""
            )
            listing.apply_query(query["sort"], query["order"], query["limit"], query["offset"])
            if as_json:
                return b"application/json; charset=utf-8", listing_json(listing.items)
            if template_file:
                template = self.templates.load(template_file)
                return b"text/html; charset=utf-8", template.render_listing(listing)
            return b"text/html; charset=utf-8", render_listing(listing)

        done = run_blocking(self.reactor, build)
        done.addCallbacks(self._send, self._failed, callbackArgs=(request,), errbackArgs=(request,))
        return NOT_DONE_YET

    @staticmethod
    def _send(result: tuple[bytes, bytes], request: CaddyRequest) -> None:
        if request.client_gone:
            return
        content_type, body = result
        request.setHeader(b"content-type", content_type)
        request.responseHeaders.addRawHeader(b"vary", b"Accept")
        if request.method == b"HEAD":
            finish_with(request, b"", length=len(body))
        else:
            finish_with(request, body)

    @staticmethod
    def _failed(failure: Failure, request: CaddyRequest) -> None:
        error = failure.value
        if isinstance(error, PermissionError):
            fail(request, HandlerError(403, str(error)))
        elif isinstance(error, TemplateError):
            fail(request, HandlerError(500, f"browse template: {error}"))
        elif isinstance(error, FileNotFoundError | NotADirectoryError):
            fail(request, HandlerError(404))
        else:
            fail(request, failure)
