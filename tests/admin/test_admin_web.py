"""The admin API's twisted.web face (:mod:`caddytw.admin.web`), in memory.

A failure inside the API that escapes it (a bug) still answers in the API's JSON error
shape, whether the answer was synchronous or deferred, and a HEAD gets the head only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from caddytw.admin.api import AdminAPI
from caddytw.admin.web import AdminResource, AdminSite
from tests.support.memory import Response, parse_response


class CrashingAPI(AdminAPI):
    """The real API whose request handling fails with an unexpected error, at once or
    later (the fault a bug would cause)."""

    def __init__(self, deferred: bool) -> None:
        super().__init__(live=None, stop=lambda: None)
        self.deferred = deferred

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Any:
        error = RuntimeError("boom")
        if self.deferred:
            return fail(error)
        raise error


def _exchange(api: AdminAPI, request: bytes) -> Response:
    reactor = MemoryReactorClock()
    site = AdminSite(AdminResource(api, reactor), reactor)
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    protocol.connectionLost(Failure(ConnectionDone()))
    return parse_response(transport.value())


@pytest.mark.parametrize("deferred", [False, True])
def test_an_escaped_failure_answers_500_in_the_apis_error_shape(deferred: bool) -> None:
    response = _exchange(CrashingAPI(deferred), b"GET /config/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 500
    assert response.header("content-type") == "application/json"
    assert json.loads(response.body) == {"error": "boom"}
    assert response.header("date")


def test_a_head_request_gets_the_head_only() -> None:
    api = AdminAPI(live=None, stop=lambda: None)
    response = _exchange(api, b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.status == 404
    assert response.header("content-length") == str(len(b"404 page not found\n"))
    assert response.body == b""
