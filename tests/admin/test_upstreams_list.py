"""``GET /reverse_proxy/upstreams`` lists the running config's upstreams only, as Caddy's:
a config that was only built (``caddytw validate``, a ``/load`` that failed, a config
replaced since) leaves nothing behind in the list."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock

from caddytw.admin.api import AdminAPI
from caddytw.admin.origins import parse_admin_listen
from caddytw.config.errors import ConfigErrors
from caddytw.server.build import validate
from caddytw.server.reload import LiveConfig


def proxy_config(*dials: str, bad: bool = False) -> dict[str, Any]:
    handle: list[dict[str, Any]] = [
        {"handler": "reverse_proxy", "upstreams": [{"dial": dial} for dial in dials]}
    ]
    if bad:
        handle.append({"handler": "no_such_handler"})
    route = {"handle": handle}
    server = {"listen": ["127.0.0.1:0"], "routes": [route]}
    return {"apps": {"http": {"servers": {"srv0": server}}}}


class Reactor(MemoryReactorClock):
    """The TLS runtime's storage closes in a thread and reports back with this."""

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        self.callLater(0, f, *args, **kwargs)


def listed(admin: AdminAPI) -> list[str]:
    answer = admin.handle("GET", "/reverse_proxy/upstreams", {"host": "localhost:2019"}, b"")
    return [row["address"] for row in json.loads(answer.body)]


def test_only_the_running_configs_upstreams_are_listed():
    parent = MultiService()
    parent.startService()
    live = LiveConfig(Reactor(), parent)
    admin = AdminAPI(live, lambda: None)
    admin.address = parse_admin_listen("localhost:2019")
    try:
        validate(proxy_config("127.0.0.1:7101"))  # built, never run
        live.load(proxy_config("127.0.0.1:7102", "127.0.0.1:7103"))
        assert listed(admin) == ["127.0.0.1:7102", "127.0.0.1:7103"]
        with pytest.raises(ConfigErrors):  # refused: the running config stays
            live.load(proxy_config("127.0.0.1:7104", bad=True))
        assert listed(admin) == ["127.0.0.1:7102", "127.0.0.1:7103"]
        live.load(proxy_config("127.0.0.1:7103", "127.0.0.1:7105"))  # replaced
        assert listed(admin) == ["127.0.0.1:7103", "127.0.0.1:7105"]
    finally:
        parent.stopService()
    assert listed(admin) == []
