"""Errors as values: a handler raises one and the server turns it into a response."""

from __future__ import annotations

from http import HTTPStatus

_GO_PHRASES = {414: "Request URI Too Long", 418: "I'm a teapot", 306: "Switch Proxy"}


def status_text(code: int) -> str:
    """The reason phrase Go's ``http.StatusText`` gives (empty for unknown codes)."""
    if code in _GO_PHRASES:
        return _GO_PHRASES[code]
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


class HandlerError(Exception):
    """An HTTP error raised by a handler; the server answers with ``status`` or runs
    ``errors.routes`` with ``{http.error.*}`` set from this object."""

    def __init__(self, status: int = 500, message: str = "", *, error_id: str = "") -> None:
        super().__init__(message or status_text(status))
        self.status = status
        self.message = message
        self.error_id = error_id
