"""Helpers for directives that wrap ``reverse_proxy`` (``php_fastcgi``,
``forward_auth``): they take their own subdirectives off the token stream
and leave the rest for the proxy's parser, as Caddy's ``Dispenser.Delete``."""

from __future__ import annotations

from ..dispenser import Dispenser


def take_args(d: Dispenser) -> list[str]:
    """The current subdirective's arguments, deleting it and them from the stream."""
    args = d.remaining_args()
    d.delete()
    for _ in args:
        d.delete()
    return args
