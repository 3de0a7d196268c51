"""The watchdog events that can change a sync folder's content.

Server (folder watcher) and client (local watcher) filter on the same list: without a
filter inotify also reports every open and read-only close (each download, each hash) and
a "folder modified" echo of every file event, all for the watcher thread to decode.
"""

from __future__ import annotations

from typing import Any


def content_events() -> list[Any]:
    """Event classes for ``Observer.schedule(..., event_filter=...)`` (watchdog imported
    only when a watcher starts)."""
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    return [
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    ]
