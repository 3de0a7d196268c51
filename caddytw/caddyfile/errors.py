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
