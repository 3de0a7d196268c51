"""``file_sync_ui``: caddytw's directive for the file manager page of a ``file_sync``.

Syntax::

    file_sync_ui [matcher] [API_PREFIX]

``API_PREFIX`` (default ``/api``) is where the ``file_sync`` API answers. Ordered
right after ``file_sync``, so ``file_sync /api/*`` and an unmatched ``file_sync_ui``
in one site do what they say.
"""

from __future__ import annotations

from .registry import Handler, Helper, handler_directive


@handler_directive("file_sync_ui")
def parse_file_sync_ui(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "file_sync_ui"}
    while d.next():
        args = d.remaining_args()
        if len(args) > 1:
            raise d.arg_err()
        if args:
            out["api"] = args[0]
        if d.next_block(0):
            d.fail("file_sync_ui takes no block")
    return out
