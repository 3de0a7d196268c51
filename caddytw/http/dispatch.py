"""The one place a handler is run, its answer delivered and its errors routed.

Every entry into the handler tree goes through :func:`dispatch`: the server root, a
handler that carries its chain on from a callback (``authentication`` after a password
check, ``reverse_proxy``'s ``handle_response`` routes), and the error routes. A handler
answers in one way, the :class:`Handler` protocol's: it writes its answer through the
request (a whole body with :func:`respond`, or a stream, an upstream response, a body
that comes later) and ``render`` returns :data:`NOT_DONE_YET`. Every built-in handler
answers so. A ``render`` that returns ``bytes`` (the ``twisted.web`` ``IResource``
convention) is still delivered, by the same :func:`respond`, so third-party
``IResource`` plugins keep working; it is the compatible form, not a second way for
handlers of this package. Whatever goes wrong, sooner
(an exception out of ``render``) or later (a callback's failure), is handed to
:func:`fail`, which runs the error routes in scope by calling :func:`dispatch` on them
directly, as Caddy's server does with the error its handler chain returned.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure

from caddytw.http.body import BodyAborted, BodyTooLarge
from caddytw.http.errors import HandlerError
from caddytw.http.request import NOT_DONE_YET, Answer, CaddyRequest, ErrorInfo, Handler

__all__ = ["NOT_DONE_YET", "Answer", "Handler", "dispatch", "fail", "respond"]

log = Logger()


def dispatch(request: CaddyRequest, handler: Handler) -> None:
    """Render ``handler``; an exception goes to :func:`fail`, and ``bytes`` returned by
    an ``IResource`` plugin (the compatible form) are delivered by :func:`respond`."""
    try:
        body = handler.render(request)
    except Exception as exc:
        fail(request, exc)
        return
    if not isinstance(body, bytes):
        if body is not NOT_DONE_YET:  # a handler's bug: a 500, never a hung request
            fail(request, TypeError(f"{handler!r} answered {body!r}, not bytes"))
        return  # NOT_DONE_YET: the handler answered (or will)
    respond(request, body)


def respond(request: CaddyRequest, body: bytes) -> int:
    """Answer with the whole ``body`` and its Content-Length; returns :data:`NOT_DONE_YET`
    so that a handler ends ``return respond(request, body)``.

    The one place a whole body is delivered: handlers call it, and :func:`dispatch`
    calls it for a plugin that returned ``bytes``, so both answer alike.
    """
    if request.client_gone:
        return NOT_DONE_YET
    if not request.startedWriting:
        request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()
    return NOT_DONE_YET


def fail(request: CaddyRequest, error: BaseException | Failure) -> None:
    """Answer with an error: the nearest ``errors.routes`` run, or an empty ``status``.

    Safe to call from any callback: once the client left or the response started, all
    that is left to do is to log and drop the connection.
    """
    exc = error.value if isinstance(error, Failure) else error
    if isinstance(exc, BodyTooLarge):
        exc = HandlerError(413, "http: request body too large")
    elif isinstance(exc, BodyAborted):
        exc = HandlerError(400, str(exc))
    if isinstance(exc, HandlerError):
        status, message, error_id = exc.status, exc.message, exc.error_id
        trace = ""
    else:
        status, message, error_id = 500, str(exc), ""
        failure = error if isinstance(error, Failure) else Failure(exc)
        trace = failure.getTraceback()
        log.failure("handler failed", failure=failure)
    if request.client_gone or request.startedWriting:
        request.end_with_status(status)  # too late for an error answer
        return
    if request.caddy_error is not None:
        # The error routes themselves failed: answer the first error's status, empty.
        request.end_with_status(request.caddy_error.status)
        return
    request.caddy_error = ErrorInfo(status, message, error_id, trace)
    scope = request.error_scopes[-1] if request.error_scopes else _server_error_routes(request)
    if scope is None:
        request.end_with_status(status)
        return
    request.error_scopes = []
    dispatch(request, scope)


def _server_error_routes(request: CaddyRequest) -> Handler | None:
    """The server's ``errors.routes`` (none when the request came through a Site of the
    embedding program's own rather than :class:`caddytw.http.site.CaddySite`)."""
    server = getattr(request.site, "caddy_server", None)
    routes: Handler | None = getattr(server, "error_routes", None)
    return routes
