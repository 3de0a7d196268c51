"""``slow_test``: answers ``body`` after ``delay`` seconds (for graceful-shutdown tests)."""

from __future__ import annotations

from typing import Any

from twisted.web import server

from caddytw.http.routing import LeafResource


class SlowAnswer(LeafResource):
    def __init__(self, reactor: Any, delay: float, body: bytes) -> None:
        self.reactor = reactor
        self.delay = delay
        self.body = body

    def render(self, request: Any) -> Any:
        def answer() -> None:
            if request.client_gone:
                return
            request.setHeader(b"content-length", b"%d" % len(self.body))
            request.write(self.body)
            request.finish()

        call = self.reactor.callLater(self.delay, answer)
        request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
        return server.NOT_DONE_YET


def build(config: Any, context: Any, next: Any) -> Any:
    delay = config.duration("delay") or 1.0
    body = config.text("body", "slow").encode()
    config.done()
    return SlowAnswer(context.reactor, delay, body)
