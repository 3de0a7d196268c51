"""Work that waits until a response's headers are about to be sent.

Caddy's middlewares wrap the ``ResponseWriter`` to act at ``WriteHeader`` time; here
they push a hook onto ``request.header_hooks`` (run innermost first, like nested
wrappers). Such wrappers vanish when a later handler fails, because Caddy answers the
error through the original writer: :func:`before_headers` gives hooks the same fate,
so a deferred header op or an encoder never touches an ``errors.routes`` answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from caddytw.http.request import CaddyRequest


def before_headers(request: CaddyRequest, hook: Callable[[CaddyRequest], None]) -> None:
    """Run ``hook`` just before the headers go out, unless the answer became an error
    answer after the hook was registered."""
    registered_during = request.caddy_error

    def guarded(req: CaddyRequest) -> None:
        if req.caddy_error is registered_during:
            hook(req)

    request.header_hooks.append(guarded)
