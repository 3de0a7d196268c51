"""``file_sync``: caddytw's own directive for the file-sync handler.

Syntax::

    file_sync [matcher] {
        root DIR
        enable_upload
        create_root
        portable_names on|off
        max_upload_size SIZE
        client ID TOKEN [read_only]
    }

``create_root`` creates a missing root for a new folder; ``portable_names off`` lets
names Windows or macOS cannot store in; ``max_upload_size`` takes Caddy sizes
(``10GB``, ``512MiB``; ``0`` for no limit).

It is ordered like ``reverse_proxy`` (a terminal, content-producing handler).
"""

from __future__ import annotations

from typing import Any

from ..values import size_arg
from .registry import Handler, Helper, handler_directive


@handler_directive("file_sync")
def parse_file_sync(h: Helper) -> Handler:
    d = h.d
    out: Handler = {"handler": "file_sync"}
    clients: list[dict[str, Any]] = []
    while d.next():
        if d.next_arg():
            raise d.arg_err()
        while d.next_block(0):
            sub = d.val
            if sub == "root":
                args = d.all_args(1)
                if args is None:
                    raise d.arg_err()
                out["root"] = args[0]
            elif sub in ("enable_upload", "create_root"):
                if d.next_arg():
                    raise d.arg_err()
                out[sub] = True
            elif sub == "portable_names":
                args = d.all_args(1)
                if args is None or args[0] not in ("on", "off"):
                    d.fail("usage: portable_names on|off")
                out["portable_names"] = args[0] == "on"
            elif sub == "max_upload_size":
                out["max_upload_size"] = size_arg(d, sub)
            elif sub == "client":
                args = d.remaining_args()
                if len(args) not in (2, 3) or (len(args) == 3 and args[2] != "read_only"):
                    d.fail("usage: client ID TOKEN [read_only]")
                client: dict[str, Any] = {"id": args[0], "token": args[1]}
                if len(args) == 3:
                    client["read_only"] = True
                clients.append(client)
            else:
                d.fail(f"unrecognized subdirective '{sub}'")
    if "root" not in out:
        d.fail("file_sync requires a root")
    if clients:
        out["clients"] = clients
    return out
