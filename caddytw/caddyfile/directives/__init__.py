"""Caddyfile directives: one module per directive family, one registry.

Importing this package registers every directive.
"""

from __future__ import annotations

from . import (  # noqa: F401  (imported for their registrations)
    builtins,
    file_sync,
    file_sync_ui,
    fileserver,
    forward_auth,
    headers,
    misc,
    php_fastcgi,
    push,
    reverse_proxy,
    rewrite,
    routing,
    site,
)
from .registry import (
    DEFAULT_ORDER,
    AdaptContext,
    ConfigValue,
    Helper,
    Subroute,
    build_subroute,
    lookup,
    run_directive,
)

__all__ = [
    "DEFAULT_ORDER",
    "AdaptContext",
    "ConfigValue",
    "Helper",
    "Subroute",
    "build_subroute",
    "lookup",
    "run_directive",
]
