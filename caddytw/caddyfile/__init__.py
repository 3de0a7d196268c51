"""Caddyfile adapter: Caddyfile text -> the Caddy v2 JSON config Caddy produces.

Public API::

    config, warnings = adapt(text, filename="Caddyfile")

raising :class:`CaddyfileError` (``str()`` is ``file:line: message``).
"""

from __future__ import annotations

from .adapter import adapt
from .errors import CaddyfileError

__all__ = ["CaddyfileError", "adapt"]
