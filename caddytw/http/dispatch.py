"""The one place a handler is run, its answer delivered and its errors routed.

Every entry into the handler tree goes through :func:`dispatch`: the server root, a
handler that carries its chain on from a callback (``authentication`` after a password
check, ``reverse_proxy``'s ``handle_response`` routes), and the error routes. A handler
answers in one way, the :class:`Handler` protocol's: ``render`` returns the whole body
(dispatch delivers it with its Content-Length) or :data:`NOT_DONE_YET` when the handler
has taken the answer over (a stream, an upstream response). Whatever goes wrong, sooner
(an exception out of ``render``) or later (a callback's failure), is handed to
:func:`fail`, which runs the error routes in scope by calling :func:`dispatch` on them
directly, as Caddy's server does with the error its handler chain returned.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from caddytw.http.body import BodyAborted, BodyTooLarge
from caddytw.http.errors import HandlerError
from caddytw.http.request import Answer, CaddyRequest, ErrorInfo, Handler

__all__ = ["NOT_DONE_YET", "Answer", "Handler", "dispatch", "fail"]

log = Logger()


def dispatch(request: CaddyRequest, handler: Handler) -> None:
    """Render ``handler`` and deliver what it returns; an exception goes to :func:`fail`."""
    try:
        body = handler.render(request)
    except Exception as exc:
        fail(request, exc)
        return
    if not isinstance(body, bytes):
        if body is not NOT_DONE_YET:  # a handler's bug: a 500, never a hung request
            fail(request, TypeError(f"{handler!r} answered {body!r}, not bytes"))
        return  # NOT_DONE_YET: the handler took the answer over
    if request.client_gone:
        return
    if not request.startedWriting:
        request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


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
