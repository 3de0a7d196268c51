"""``caddytw``: the command line, shaped like Caddy's ``caddy`` command.

Same subcommands, flags and exit codes as Caddy where Caddy has them (exit 1
for a failed operation, 2 for a usage error), so that scripts, systemd units
and habits written for ``caddy`` keep working.  ``twistd -n caddy`` remains
the primary way to run; ``caddytw run`` starts the very same service.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
