"""caddytw.http.dispatch: the one place a handler is rendered, answered and its errors
routed (in memory, over the real channel and routes)."""

from __future__ import annotations

import pytest
from twisted.web.server import NOT_DONE_YET

from caddytw.http.dispatch import Answer, dispatch, fail
from caddytw.http.errors import HandlerError
from caddytw.http.request import CaddyRequest
from caddytw.http.routing import LeafResource
from tests.handlers.helpers import serve_resource
from tests.support.memory import memory_server

ERRORS = {
    "routes": [{"handle": [{"handler": "static_response", "body": "E {http.error.status_code}"}]}]
}


class FailsLater(LeafResource):
    """Takes the answer over, then reports an error from its 'callback' (run at once here)."""

    def __init__(self) -> None:
        self.pending: list[CaddyRequest] = []

    def render(self, request: CaddyRequest) -> Answer:
        self.pending.append(request)
        return NOT_DONE_YET


def test_a_later_failure_runs_the_error_routes():
    handler = FailsLater()
    server = memory_server([{"handle": [{"handler": "static_response"}]}], errors=ERRORS)
    server.site.caddy_server.routes.routes[0].chain = handler
    server.reactor.callLater(0, lambda: fail(handler.pending[0], HandlerError(409, "conflict")))
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 409 ")
    assert body == b"E 409"


class Resumes(LeafResource):
    """Carries its chain on from a 'callback' through dispatch, as authentication does."""

    def __init__(self, next: LeafResource) -> None:
        self.next = next
        self.pending: list[CaddyRequest] = []

    def render(self, request: CaddyRequest) -> Answer:
        self.pending.append(request)
        return NOT_DONE_YET


class Answers(LeafResource):
    def render(self, request: CaddyRequest) -> Answer:
        return b"resumed"


def test_a_resumed_chain_is_answered_by_dispatch():
    handler = Resumes(Answers())
    server = serve_resource(handler)
    server.reactor.callLater(0, lambda: dispatch(handler.pending[0], handler.next))
    raw = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: 7" in head
    assert body == b"resumed"


def test_failing_error_routes_answer_the_first_status_empty():
    server = memory_server(
        [{"handle": [{"handler": "error", "status_code": 403}]}],
        errors={"routes": [{"handle": [{"handler": "error", "status_code": 500}]}]},
    )
    response = server.request()
    assert (response.status, response.body) == (403, b"")


def test_errors_do_not_loop_back_through_the_request():
    """Error routes are run by dispatch itself: the request is state, not a dispatcher."""
    assert not hasattr(CaddyRequest, "fail")
    server = memory_server([{"handle": [{"handler": "error", "status_code": 418}]}], errors=ERRORS)
    response = server.request()
    assert (response.status, response.body) == (418, b"E 418")


class AnswersNothing(LeafResource):
    def render(self, request: CaddyRequest) -> Answer:
        return None  # type: ignore[return-value]  # the bug under test


def test_a_handler_answering_neither_bytes_nor_not_done_yet_gets_a_500():
    server = memory_server([{"handle": [{"handler": "static_response"}]}], errors=ERRORS)
    server.site.caddy_server.routes.routes[0].chain = AnswersNothing()
    response = server.request()
    assert (response.status, response.body) == (500, b"E 500")


class Records(LeafResource):
    """Passes the request on and keeps what the handler behind it returned."""

    def __init__(self, next: LeafResource) -> None:
        self.next = next
        self.answers: list[Answer] = []

    def render(self, request: CaddyRequest) -> Answer:
        answer = self.next.render(request)
        self.answers.append(answer)
        return answer


@pytest.mark.parametrize(
    "handle",
    [
        [{"handler": "static_response", "body": "hello"}],
        [{"handler": "static_response", "status_code": 204}],
        [{"handler": "metrics"}],
        [{"handler": "vars", "x": "1"}],  # no handler answers: the end of the routes does
        [{"handler": "subroute", "routes": [{"handle": [{"handler": "vars"}], "terminal": True}]}],
    ],
)
def test_built_in_handlers_answer_one_way(handle):
    """Every built-in handler writes its answer and returns NOT_DONE_YET; returning bytes
    is left to third-party IResource plugins (test_a_resumed_chain_is_answered_by_dispatch)."""
    server = memory_server([{"handle": handle}])
    route = server.site.caddy_server.routes.routes[0]
    recorder = route.chain = Records(route.chain)
    response = server.request()
    assert response.status in (200, 204)
    assert recorder.answers == [NOT_DONE_YET]
