"""Graceful closing of connections, with a fake clock and fake connections."""

from twisted.internet.task import Clock

from caddytw.wire.drain import drain


class Transport:
    def __init__(self):
        self.disconnected = False
        self.closing = False
        self.aborted = False

    def loseConnection(self):
        self.closing = True

    def abortConnection(self):
        self.aborted = True
        self.disconnected = True


class Request:
    long_lived = False


class Channel:
    persistent = True

    def __init__(self, busy=False, long_lived=False):
        self.transport = Transport()
        self.requests = []
        if busy:
            request = Request()
            request.long_lived = long_lived
            self.requests.append(request)


def fired(deferred):
    results = []
    deferred.addBoth(results.append)
    return bool(results)


def test_idle_connections_close_at_once_and_busy_ones_after_their_request():
    clock = Clock()
    idle, busy = Channel(), Channel(busy=True)
    done = drain([idle, busy], None, clock)
    assert idle.transport.closing and not busy.transport.closing
    assert busy.persistent is False
    idle.transport.disconnected = True
    clock.advance(1)
    assert not fired(done)
    busy.requests.clear()  # the response ended
    clock.advance(0.05)
    assert busy.transport.closing
    busy.transport.disconnected = True
    clock.advance(0.05)
    assert fired(done)
    assert not busy.transport.aborted


def test_grace_period_aborts_what_is_left():
    clock = Clock()
    busy = Channel(busy=True)
    done = drain([busy], 2.0, clock)
    clock.advance(1.0)
    assert not fired(done) and not busy.transport.aborted
    clock.advance(1.1)
    assert busy.transport.aborted and fired(done)


def test_long_lived_streams_do_not_hold_shutdown():
    clock = Clock()
    stream = Channel(busy=True, long_lived=True)
    drain([stream], None, clock)
    assert stream.transport.closing


def test_idle_connections_that_do_not_close_are_aborted():
    """TLS closing waits for the peer's close_notify, which an idle browser never sends:
    without this an eternal grace period would mean a server that never stops."""
    clock = Clock()
    idle, busy = Channel(), Channel(busy=True)
    done = drain([idle, busy], None, clock)
    assert idle.transport.closing and not idle.transport.aborted
    clock.advance(0.5)
    assert not idle.transport.aborted
    clock.advance(0.55)
    assert idle.transport.aborted
    assert not fired(done) and not busy.transport.aborted
    busy.requests.clear()  # its response ended: now it is idle, with its own wait
    clock.advance(0.05)
    assert busy.transport.closing and not busy.transport.aborted
    clock.advance(0.9)
    assert not busy.transport.aborted
    clock.advance(0.2)
    assert busy.transport.aborted and fired(done)
