"""The proxy's ``headers.request`` / ``headers.response`` operations.

They are the ``headers`` handler's own operations (:mod:`caddytw.http.headerops`), so both
places share one implementation of Caddy's add/set/delete/replace rules.
"""

from __future__ import annotations

from caddytw.config.reader import ObjectReader
from caddytw.http.headerops import HeaderOps

__all__ = ["HeaderOps", "compile_header_ops"]


def compile_header_ops(reader: ObjectReader) -> HeaderOps | None:
    """The operations in ``reader`` (None when there are none); the caller calls ``done``."""
    ops = HeaderOps.from_reader(reader)
    return ops or None
