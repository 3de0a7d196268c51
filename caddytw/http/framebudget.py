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

import h2.events

#: Control frames allowed in one read.
READ_BUDGET = 500
#: Control frames a connection may send at once (the bucket's size).
BURST = 1000
#: Control frames per second a connection may send for as long as it lives.
RATE = 100.0
#: Budget returned for each DATA frame sent (the WINDOW_UPDATEs it causes).
CREDIT_PER_DATA_FRAME = 2

_CONTROL = (
    h2.events.RemoteSettingsChanged,
    h2.events.SettingsAcknowledged,
    h2.events.PingReceived,
    h2.events.PingAckReceived,
    h2.events.PriorityUpdated,
    h2.events.WindowUpdated,
    h2.events.StreamReset,
    h2.events.UnknownFrameReceived,
)


def control_frames(events: list[h2.events.Event]) -> int:
    """How many of ``events`` come from frames that carry no request or body byte."""
    count = 0
    for event in events:
        if isinstance(event, _CONTROL) or (
            isinstance(event, h2.events.DataReceived)
            and not event.flow_controlled_length
            and event.stream_ended is None
        ):
            count += 1
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
