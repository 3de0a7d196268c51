"""The ``reverse_proxy`` handler: a streaming HTTP/1.1 reverse proxy on Twisted's Agent.

Modules, one job each: :mod:`~caddytw.proxy.config` (strict JSON parsing),
:mod:`~caddytw.proxy.selection` (load-balancing policies, pure),
:mod:`~caddytw.proxy.upstreams` (shared per-address state, admin view),
:mod:`~caddytw.proxy.health` (active and passive checks),
:mod:`~caddytw.proxy.headers` and :mod:`~caddytw.proxy.headerops` (header rules),
:mod:`~caddytw.proxy.transport` (endpoints, TLS, pool), :mod:`~caddytw.proxy.streaming`
(bodies with backpressure), :mod:`~caddytw.proxy.websocket` (Upgrade tunnels) and
:mod:`~caddytw.proxy.handler` (the resource and its retry loop).

The admin API's ``GET /reverse_proxy/upstreams`` is
``upstreams_view(registry_of(shared))`` for the ``shared`` dict handlers were built with.
"""

from caddytw.proxy.upstreams import HostRegistry, registry_of, upstreams_view

__all__ = ["HostRegistry", "registry_of", "upstreams_view"]
