"""The ``file_server`` resource: from a request path to a file, a listing, or an error.

The order of decisions is Caddy's ``FileServer.ServeHTTP``: join the path to the root,
stat, try index files, fall back to a listing, refuse hidden files, canonicalise the
URI, pick a precompressed sidecar, then answer conditionally and by ranges (Go's
``ServeContent``). Deliberate differences from Caddy 2.6.2, each marked where it
happens: 405 (``Allow: GET, HEAD``) for other methods, symlinks leading out of the root
refused unless ``allow_symlink_escape``, ``Vary: Accept-Encoding`` on every answer when
sidecars are configured, and no 304/206 for answers whose status is overridden (error
pages and ``status_code``), where Caddy would send e.g. a 404 with a partial body.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from caddytw.handlers.file_server import hide as hiding
from caddytw.handlers.file_server.cache import FileCache, Validators, header_value
from caddytw.handlers.file_server.conditional import (
    Conditions,
    Verdict,
    evaluate,
    range_allowed,
)
from caddytw.handlers.file_server.config import FileServerSettings
from caddytw.handlers.file_server.content_types import content_type_for
from caddytw.handlers.file_server.encodings import SIDECAR_SUFFIXES, accepted_encodings
from caddytw.handlers.file_server.paths import (
    direct_child,
    go_base,
    go_clean,
    is_within,
    lookup_refused,
    real_path,
    real_path_of_fd,
    sanitized_join,
)
from caddytw.handlers.file_server.producer import (
    CHUNK_SIZE,
    FileBodyProducer,
    Segment,
    Span,
    body_length,
)
from caddytw.handlers.file_server.ranges import (
    InvalidRange,
    UnsatisfiableRange,
    multipart_layout,
    parse_range,
    worth_honouring,
)
from caddytw.handlers.file_server.responses import (
    ALLOWED_METHODS,
    finish_with,
    original_path,
    redirect,
)
from caddytw.http.build import Handler
from caddytw.http.dispatch import Answer
from caddytw.http.errors import HandlerError
from caddytw.http.placeholders import Template, resolve
from caddytw.http.request import NOT_DONE_YET, CaddyRequest
from caddytw.http.routing import LeafResource

if TYPE_CHECKING:  # listings (browse, Go templates) are imported by the first one served
    from caddytw.handlers.file_server.listing import ListingResponder

_NOT_FOUND_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL}
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def render_root(template: Template, request: CaddyRequest) -> str:
    """The root for this request; an unknown or empty placeholder becomes ``.`` (Caddy's
    ``ReplaceAll(root, ".")``), so the default ``{http.vars.root}`` falls back to cwd."""
    if template.constant is not None:
        return template.constant or "."
    out = []
    for is_key, text in template.parts:
        out.append((resolve(request, text) or ".") if is_key else text)
    return "".join(out)


def stat_error(exc: BaseException) -> HandlerError | None:
    """How a failed lookup answers: None for "does not exist", else the HTTP error."""
    if isinstance(exc, ValueError):  # embedded NUL
        return None
    if isinstance(exc, PermissionError):
        return HandlerError(403, str(exc))
    if isinstance(exc, OSError) and exc.errno in _NOT_FOUND_ERRNOS:
        return None
    return HandlerError(500, str(exc))


@dataclass
class OpenFile:
    """A regular file opened for serving, with the stat taken from the descriptor; or
    a small one from the :class:`FileCache` (``fd`` -1, ``data`` its whole content)."""

    fd: int
    info: os.stat_result
    #: The whole content, when already in memory (no descriptor needed).
    data: bytes | None = None
    validators: Validators | None = None

    def close(self) -> None:
        """Idempotent: error paths may close what the normal path already closed."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class RootGuard:
    """Answers "may this real path be served?" for one request.

    A resolved path that starts with the root as written (made absolute) is inside it:
    a fully resolved path cannot pass through a symlink, so that prefix is itself the
    real root. Only otherwise (a root that is or goes through a symlink, as with a
    ``current -> releases/N`` deploy) is the root resolved, once per request.
    """

    def __init__(self, root: str, allow_escape: bool) -> None:
        self.root = root
        self.allow_escape = allow_escape
        self._real_root: str | None = None

    def _contains(self, resolved: str) -> bool:
        if is_within(resolved, lexical_root(self.root)):
            return True
        if self._real_root is None:
            self._real_root = real_path(self.root)
        return is_within(resolved, self._real_root)

    def allows_fd(self, fd: int, path: str) -> bool:
        return self.allow_escape or self._contains(real_path_of_fd(fd, path))

    def allows_path(self, path: str) -> bool:
        return self.allow_escape or self._contains(real_path(path))


@lru_cache(maxsize=256)
def lexical_root(root: str) -> str:
    """The root as written, made absolute and cleaned (the cwd does not change while
    serving, so this is remembered per root)."""
    return go_clean(root if root.startswith("/") else os.path.abspath(root))


def open_regular(path: str, guard: RootGuard) -> OpenFile:
    """Open ``path`` if it is a regular file inside the root; raises OSError
    (ENOENT for "not servable": not regular, or a symlink leading out of the root).

    A file directly in the root (the common ``/style.css``) is opened with
    ``O_NOFOLLOW``: then it is not a symlink and its directory is the root's, so it is
    inside without asking the kernel where it is. Anything else (a symlink there, a
    deeper path) is checked by its real location.
    """
    if _NOFOLLOW and not guard.allow_escape and direct_child(guard.root, path):
        try:
            fd = os.open(path, _OPEN_FLAGS | _NOFOLLOW)
        except (OSError, ValueError):
            pass  # e.g. ELOOP for a symlink: the general path below decides
        else:
            return _regular(fd, path, None)
    return _regular(os.open(path, _OPEN_FLAGS), path, guard)


def _regular(fd: int, path: str, guard: RootGuard | None) -> OpenFile:
    """``fd`` as an :class:`OpenFile` if it is a regular file (inside the root, when a
    ``guard`` must tell); closed and ENOENT otherwise."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (guard is not None and not guard.allows_fd(fd, path)):
            raise FileNotFoundError(errno.ENOENT, "not a servable file", path)
    except BaseException:
        os.close(fd)
        raise
    return OpenFile(fd, info)


def conditions_of(request: CaddyRequest) -> Conditions | None:
    """The preconditions, or None when the request has none (the usual case)."""
    present = raw_request(request)
    if not (
        present.get(b"If-Match")
        or present.get(b"If-Unmodified-Since")
        or present.get(b"If-None-Match")
        or present.get(b"If-Modified-Since")
    ):
        return None
    return Conditions(
        if_match=request.header_text("if-match"),
        if_unmodified_since=request.header_text("if-unmodified-since"),
        if_none_match=request.header_text("if-none-match"),
        if_modified_since=request.header_text("if-modified-since"),
        if_range=request.header_text("if-range"),
    )


class FileServer(LeafResource):
    """Serves files below a root; see the module docstring for the order of decisions."""

    def __init__(self, settings: FileServerSettings, next: Handler, reactor: Any = None) -> None:
        self.settings = settings
        self.next = next
        self.reactor = reactor
        #: Small files by path, checked by one stat per hit (see cache.py); only for
        #: the plain-file fast path without sidecars.
        self.files = FileCache()
        static_hide = [t.constant for t in settings.hide]
        self._static_hide = (
            hiding.prepare([h for h in static_hide if h is not None])
            if all(h is not None for h in static_hide)
            else None
        )

    @cached_property
    def listings(self) -> ListingResponder:
        """The directory listing responder, made (and its modules imported) by the
        first listing: a server of files only never loads them."""
        from caddytw.handlers.file_server.listing import ListingResponder

        return ListingResponder(self.settings, self.reactor)

    # -- lookup --------------------------------------------------------------------

    def _hide_patterns(self, request: CaddyRequest) -> tuple[str, ...]:
        if self._static_hide is not None:
            return self._static_hide
        return hiding.prepare([t.render(request) for t in self.settings.hide])

    def not_found(self, request: CaddyRequest) -> Answer:
        """404 (run through ``errors.routes``) or, with ``pass_thru``, the next handler."""
        if self.settings.pass_thru:
            return self.next.render(request)
        raise HandlerError(404)

    def _check_method(self, request: CaddyRequest) -> None:
        """Only GET and HEAD read files. (Caddy 2.6 serves the file to any method; later
        Caddy and the issue want 405.) An error page for any method is still served."""
        if request.method in ALLOWED_METHODS or request.caddy_error is not None:
            return
        request.setHeader(b"allow", b"GET, HEAD")
        raise HandlerError(405)

    def _locate(
        self, request: CaddyRequest, root: str, hide: tuple[str, ...]
    ) -> tuple[str, os.stat_result, bool] | None:
        """The path to serve, its stat, and whether it is a directory's index file;
        None when nothing is there. A permission problem raises 403."""
        request_path = request.decoded_path
        if lookup_refused(request_path):
            return None
        filename = sanitized_join(root, request_path)
        try:
            info = os.stat(filename)
        except (OSError, ValueError) as exc:
            error = stat_error(exc)
            if error is None:
                return None
            raise error from None
        if stat.S_ISDIR(info.st_mode):
            for template in self.settings.index_names:
                index_path = sanitized_join(filename, template.render(request))
                if hiding.is_hidden(index_path, hide):
                    continue
                try:
                    return index_path, os.stat(index_path), True
                except (OSError, ValueError):
                    continue
        return filename, info, False

    def _open_direct(
        self, request: CaddyRequest, root: str, hide: tuple[str, ...], guard: RootGuard
    ) -> tuple[str, OpenFile] | None:
        """The common case, a plain file asked for by its own name, in one ``open`` and
        one ``fstat``; None whenever anything else could happen (not there, a directory,
        hidden, a redirect, a method to refuse...): :meth:`render` then takes the full
        path, which answers every one of those exactly as if this had not been tried."""
        request_path = request.decoded_path
        if request_path.endswith("/") or lookup_refused(request_path):
            return None
        if request.method not in ALLOWED_METHODS and request.caddy_error is None:
            return None
        filename = sanitized_join(root, request_path)
        if hide and hiding.is_hidden(filename, hide):
            return None
        if self.settings.canonical_uris and self._canonical_target(request, False) is not None:
            return None
        if not self.settings.precompressed:
            entry = self.files.get(filename)
            if entry is not None:
                return filename, OpenFile(-1, entry.info, entry.data, entry.validators)
        try:
            plain = open_regular(filename, guard)
        except (OSError, ValueError):
            return None
        if not self.settings.precompressed:
            try:
                entry = self.files.fill(filename, plain.fd, plain.info)
            except OSError:
                entry = None
            if entry is not None:
                plain.data, plain.validators = entry.data, entry.validators
        return filename, plain

    def render(self, request: CaddyRequest) -> Answer:
        settings = self.settings
        root = render_root(settings.root, request)
        hide = self._hide_patterns(request)
        guard = RootGuard(root, settings.allow_symlink_escape)
        direct = self._open_direct(request, root, hide, guard)
        if direct is not None:
            return self._serve_plain(request, direct[0], direct[1], guard)
        found = self._locate(request, root, hide)
        if found is None:
            return self.not_found(request)
        filename, info, implicit_index = found
        if stat.S_ISDIR(info.st_mode):
            if settings.browse is None or hiding.is_hidden(filename, hide):
                return self.not_found(request)
            if not guard.allows_path(filename):
                return self.not_found(request)
            self._check_method(request)
            return self.listings.respond(request, filename, hide, guard.allows_path)
        if hiding.is_hidden(filename, hide):
            return self.not_found(request)
        self._check_method(request)
        if settings.canonical_uris:
            target = self._canonical_target(request, implicit_index)
            if target is not None:
                return redirect(request, target)
        try:
            plain = open_regular(filename, guard)
        except OSError as exc:
            error = stat_error(exc)
            if error is None:
                return self.not_found(request)
            raise error from None
        return self._serve_plain(request, filename, plain, guard)

    def _serve_plain(
        self, request: CaddyRequest, filename: str, plain: OpenFile, guard: RootGuard
    ) -> Answer:
        """Answer with the opened file or the sidecar the client prefers."""
        try:
            served, coding = self._choose_representation(request, filename, plain, guard)
        except BaseException:
            plain.close()
            raise
        if served is not plain:
            plain.close()
        return self._serve(request, filename, served, coding, plain.info)

    @staticmethod
    def _canonical_target(request: CaddyRequest, implicit_index: bool) -> str | None:
        """Caddy's trailing-slash rule, applied only when the last path element was not
        rewritten (so an admin's rewrite never causes a redirect loop)."""
        raw = request.original_uri.partition(b"?")[0]
        if not implicit_index and not raw.endswith(b"/") and raw[-3:].lower() != b"%2f":
            return None  # the common case: a file asked for without a slash
        original = original_path(request)
        if go_base(original) != go_base(request.decoded_path):
            return None
        if implicit_index and not original.endswith("/"):
            return original + "/"
        if not implicit_index and original.endswith("/"):
            return original[:-1]
        return None

    def _choose_representation(
        self, request: CaddyRequest, filename: str, plain: OpenFile, guard: RootGuard
    ) -> tuple[OpenFile, str | None]:
        """The precompressed sidecar the client prefers, if one exists (the plain file
        must exist too, which it does by now), else the plain file."""
        if not self.settings.precompressed:
            return plain, None
        # Caddy 2.6 adds Vary only when it sends a sidecar; the plain answer depends on
        # Accept-Encoding just as much, so caches must key it too.
        request.responseHeaders.addRawHeader(b"vary", b"Accept-Encoding")
        header = request.header_text("accept-encoding")
        for coding in accepted_encodings(header, self.settings.precompressed_order):
            if coding not in self.settings.precompressed:
                continue
            try:
                return open_regular(filename + SIDECAR_SUFFIXES[coding], guard), coding
            except (OSError, ValueError):
                continue
        return plain, None

    # -- answering -----------------------------------------------------------------

    def _status_override(self, request: CaddyRequest) -> int | None:
        template = self.settings.status_code
        if template is not None:
            text = template.render(request)
            if not (text.isascii() and text.isdigit() and 100 <= int(text) <= 999):
                raise HandlerError(500, f"invalid status code {text!r}")
            return int(text)
        if request.caddy_error is not None:
            return request.caddy_error.status
        return None

    def _serve(
        self,
        request: CaddyRequest,
        filename: str,
        served: OpenFile,
        coding: str | None,
        plain_info: os.stat_result,
    ) -> Answer:
        try:
            return self._answer(request, filename, served, coding, plain_info)
        except BaseException:
            served.close()
            raise

    def _answer(
        self,
        request: CaddyRequest,
        filename: str,
        served: OpenFile,
        coding: str | None,
        plain_info: os.stat_result,
    ) -> Answer:
        size = served.info.st_size
        validators = served.validators or Validators.of(filename, served.info, plain_info)
        etag, mtime = validators.etag, validators.mtime
        headers = request.responseHeaders
        # Straight into the Headers' dict, names in twisted's canonical spelling and
        # values made once per file version: setRawHeaders re-encodes every time.
        raw = headers._rawHeaders
        raw[b"ETag"] = [validators.etag_value]
        if validators.last_modified is not None:
            raw[b"Last-Modified"] = [validators.last_modified]
        if validators.content_type is not None and b"Content-Type" not in raw:
            raw[b"Content-Type"] = [validators.content_type]
        if coding is not None:
            raw[b"Content-Encoding"] = [header_value(coding)]
        override = (
            None
            if self.settings.status_code is None and request.caddy_error is None
            else self._status_override(request)
        )
        segments: list[Segment] | None = None  # None: the whole file, the usual answer
        status = 200
        if override is not None:
            status = override
        else:
            conditions = conditions_of(request)
            if conditions is not None:
                method = request.method.decode("latin-1")
                verdict = evaluate(method, conditions, etag, mtime)
                if verdict is not Verdict.PROCEED:
                    served.close()
                    return self._not_modified_or_failed(request, verdict)
            range_header = None
            if b"Range" in raw_request(request):
                range_header = request.header_text("range")
            if range_header and range_allowed(
                request.method.decode("latin-1"), request.header_text("if-range"), etag, mtime
            ):
                try:
                    ranges = parse_range(range_header, size)
                except InvalidRange as exc:
                    served.close()
                    return self._range_not_satisfiable(request, exc, size)
                if worth_honouring(ranges, size):
                    status = 206
                    if len(ranges) == 1:
                        headers.setRawHeaders(
                            b"content-range", [ranges[0].content_range(size).encode("ascii")]
                        )
                        segments = [Span(ranges[0].start, ranges[0].length)]
                    else:
                        layout = multipart_layout(
                            ranges, size, content_type_for(filename), secrets.token_hex(30)
                        )
                        headers.setRawHeaders(b"content-type", [layout.content_type.encode()])
                        segments = []
                        for head, byte_range in layout.parts:
                            segments += [head, Span(byte_range.start, byte_range.length)]
                        segments.append(layout.trailer)
            raw[b"Accept-Ranges"] = [b"bytes"]
        request.setResponseCode(status)
        return self._send_body(request, served, segments)

    @staticmethod
    def _not_modified_or_failed(request: CaddyRequest, verdict: Verdict) -> Answer:
        headers = request.responseHeaders
        if verdict is Verdict.NOT_MODIFIED:
            # RFC 9110 15.4.5: only validators and cache metadata on a 304.
            for name in (b"content-type", b"content-encoding"):
                headers.removeHeader(name)
            if headers.hasHeader(b"etag"):
                headers.removeHeader(b"last-modified")
            request.setResponseCode(304)
            return finish_with(request, b"")
        headers.removeHeader(b"content-encoding")
        request.setResponseCode(412)
        return finish_with(request, b"")

    @staticmethod
    def _range_not_satisfiable(request: CaddyRequest, exc: InvalidRange, size: int) -> Answer:
        """416 with Go's plain-text body; ``bytes */SIZE`` when nothing overlapped."""
        headers = request.responseHeaders
        if isinstance(exc, UnsatisfiableRange):
            headers.setRawHeaders(b"content-range", [b"bytes */%d" % size])
        headers.removeHeader(b"content-encoding")
        headers.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
        headers.setRawHeaders(b"x-content-type-options", [b"nosniff"])
        request.setResponseCode(416)
        body = f"{exc}\n".encode()
        if request.method == b"HEAD":
            return finish_with(request, b"", length=len(body))
        return finish_with(request, body)

    @staticmethod
    def _send_body(
        request: CaddyRequest, served: OpenFile, segments: list[Segment] | None
    ) -> Answer:
        """Headers with the exact Content-Length, then the body (``segments`` of the
        file, None for all of it): read at once when it is small, streamed by a producer
        otherwise; HEAD sends headers only."""
        if segments is None:
            length = served.info.st_size
            data = served.data
            if data is not None and length and request.method != b"HEAD":
                # A small file from the cache, whole: the usual answer, in one step.
                served.close()
                return finish_with(request, data if len(data) == length else data[:length])
            segments = [Span(0, length)]
        single = segments[0] if len(segments) == 1 else None
        length = single.length if isinstance(single, Span) else body_length(segments)
        if request.method == b"HEAD" or length == 0:
            served.close()
            return finish_with(request, b"", length=length)
        if served.data is not None:
            served.close()
            body = b"".join(_slice_segments(served.data, segments))
            return finish_with(request, body)
        if length > CHUNK_SIZE:
            request.setHeader(b"content-length", b"%d" % length)
            FileBodyProducer(request, served.fd, segments).start()
            return NOT_DONE_YET
        try:
            body = b"".join(_read_segments(served.fd, segments))
        finally:
            served.close()
        if len(body) != length:
            raise HandlerError(500, "file changed while being read")
        return finish_with(request, body)


def _slice_segments(data: bytes, segments: list[Segment]) -> list[bytes]:
    """The body from a file already in memory (see :func:`_read_segments`)."""
    if len(segments) == 1 and isinstance(segments[0], Span) and segments[0].length == len(data):
        return [data]
    return [s if isinstance(s, bytes) else data[s.offset : s.offset + s.length] for s in segments]


def _read_segments(fd: int, segments: list[Segment]) -> list[bytes]:
    if len(segments) == 1 and isinstance(segments[0], Span):
        return [os.pread(fd, segments[0].length, segments[0].offset)]  # the usual whole file
    return [s if isinstance(s, bytes) else os.pread(fd, s.length, s.offset) for s in segments]


def raw_request(request: CaddyRequest) -> dict[bytes, list[bytes]]:
    """The request headers' dict (names in twisted's canonical spelling)."""
    raw: dict[bytes, list[bytes]] = request.requestHeaders._rawHeaders
    return raw
