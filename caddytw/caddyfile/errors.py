"""The one exception type the Caddyfile adapter raises.

Every error names where in the input it happened, so that ``str(err)`` is
``file:line: message`` -- the form editors and CI logs can jump to.
"""

from __future__ import annotations


class CaddyfileError(Exception):
    """A Caddyfile that cannot be adapted; ``str()`` is ``file:line: message``."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        super().__init__(f"{filename}:{line}: {message}")
        self.filename = filename
        self.line = line
        self.message = message


def unregistered(module_id: str) -> str:
    """Caddy's message for a module name it has no module for (``caddyfile.UnmarshalModule``)."""
    return f"getting module named '{module_id}': module not registered: {module_id}"
