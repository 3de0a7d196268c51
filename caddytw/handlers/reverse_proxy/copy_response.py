"""Plugin entry for ``copy_response`` (see :mod:`.handle_response`)."""

from caddytw.handlers.reverse_proxy.handle_response import build_copy_response as build

__all__ = ["build"]
