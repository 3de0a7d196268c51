"""A budget for HTTP/2 frames that cost the server work but carry no request.

SETTINGS, PING, PRIORITY, WINDOW_UPDATE, RST_STREAM and empty DATA frames are cheap to
send and not free to handle (parsing, an ACK to write, priority-tree updates): a client
sending nothing else held the reactor for seconds (issue 13, finding 7). Go's server
caps what such frames make it queue; here the frames themselves are budgeted:

* per read: more than :data:`READ_BUDGET` such frames in one ``dataReceived`` is a flood
  (a real client sends a handful with its requests);
* per connection: a token bucket of :data:`BURST` frames refilled at :data:`RATE` per
  second, credited with :data:`CREDIT_PER_DATA_FRAME` for every DATA frame we send (a
  client acknowledges received data with WINDOW_UPDATEs, so a long download must not
  spend the budget).

Over either budget the connection gets GOAWAY(ENHANCE_YOUR_CALM) and is closed, which
bounds the CPU one client can take from the others.
"""

from __future__ import annotations

#: Control frames allowed in one read.
READ_BUDGET = 500
#: Control frames a connection may send at once (the bucket's size).
BURST = 1000
#: Control frames per second a connection may send for as long as it lives.
RATE = 100.0
#: Budget returned for each DATA frame sent (the WINDOW_UPDATEs it causes).
CREDIT_PER_DATA_FRAME = 2

#: Frame types that never carry request bytes: PRIORITY, RST_STREAM, SETTINGS,
#: PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE (and every unknown type, > CONTINUATION).
_CONTROL_TYPES = frozenset((0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8))
_DATA, _CONTINUATION, _END_STREAM = 0x0, 0x9, 0x1
#: The client connection preface, which precedes the first frame.
PREFACE_LENGTH = 24


class FrameScanner:
    """Counts the frames of a connection's byte stream that carry no request, from the
    frame headers alone (9 bytes each, RFC 9113 section 4.1).

    Frames are counted as they arrive, before h2 parses them, not from h2's events: h2
    answers some frames itself without an event (DATA on a closed stream gets an
    RST_STREAM), and those cost as much as the others.
    """

    def __init__(self) -> None:
        self._skip = PREFACE_LENGTH  # bytes of a frame (or the preface) still to come
        self._partial = b""  # the start of a frame header split across reads

    def control_frames(self, data: bytes) -> int:
        """How many frames that carry no request (``_CONTROL_TYPES``, unknown types,
        and empty DATA frames that do not end a stream) start in ``data``."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        size = len(data)
        pos = self._skip
        count = 0
        while pos + 9 <= size:
            kind = data[pos + 3]
            length = int.from_bytes(data[pos : pos + 3], "big")
            if (
                kind in _CONTROL_TYPES
                or kind > _CONTINUATION
                or (kind == _DATA and not length and not data[pos + 4] & _END_STREAM)
            ):
                count += 1
            pos += 9 + length
        if pos >= size:
            self._skip = pos - size
        else:
            self._skip = 0
            self._partial = bytes(data[pos:])
        return count


class FrameBudget:
    """One connection's budget (see the module docstring)."""

    def __init__(
        self,
        now: float,
        *,
        burst: int = BURST,
        rate: float = RATE,
        read_budget: int = READ_BUDGET,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.read_budget = read_budget
        self.tokens = float(burst)
        self.stamp = now

    def spend(self, frames: int, now: float) -> bool:
        """Charge ``frames`` control frames of one read; False when over budget."""
        if frames > self.read_budget:
            return False
        if not frames:
            return True
        # reactor.seconds() is wall-clock time: a step back must not drain the bucket.
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate) - frames
        return self.tokens >= 0

    def credit(self, frames: int) -> None:
        """Return budget for DATA frames sent."""
        self.tokens = min(self.burst, self.tokens + frames)
