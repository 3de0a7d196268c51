"""The ``reverse_proxy`` handler: a streaming HTTP/1.1 reverse proxy on Twisted's Agent.

Modules, one job each: :mod:`.config` (strict JSON parsing),
:mod:`.selection` (load-balancing policies, pure),
:mod:`.upstreams` (shared per-address state, admin view),
:mod:`.health` (active and passive checks),
:mod:`.headers` and :mod:`.headerops` (header rules),
:mod:`.transport` (endpoints, TLS, pool), :mod:`.streaming`
(bodies with backpressure), :mod:`.websocket` (Upgrade tunnels) and
:mod:`.handler` (the resource and its retry loop).

The admin API's ``GET /reverse_proxy/upstreams`` is
``upstreams_view(registry_of(shared))`` for the ``shared`` dict handlers were built with.
"""

from caddytw.handlers.reverse_proxy.upstreams import HostRegistry, registry_of, upstreams_view

__all__ = ["HostRegistry", "registry_of", "upstreams_view"]
