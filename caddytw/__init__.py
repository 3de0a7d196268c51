"""caddytw: a Caddy-v2-compatible web server on Twisted.

The library face: build the same resource tree or service ``twistd -n caddy`` runs from a
config dict, and mount it in your own Twisted program::

    from caddytw import build_resource, build_service
    site_root = build_resource(config)           # IResource of the first server
    service = build_service(config)              # an IService that listens as configured

Where each concept lives (a request goes down this list and its answer comes back up;
docs/architecture.md follows one hop by hop):

- ``config/``, ``caddyfile/``: JSON (or a Caddyfile) in, validated frozen objects out.
- ``server/``: ``build.py`` (one automatic-HTTPS plan, kept), ``service.py``,
  ``reload.py`` (the live config: servers, TLS runtime, listeners), ``listeners.py``,
  ``workers/`` (``--workers N``; the events between workers are ``admin/peers.py``,
  beside ``metrics``, as handlers publish on them and never import ``server/``).
- ``wire/``: bytes <-> requests: ``channel.py`` (what a request sees of its connection),
  ``negotiate.py`` (ALPN, h2c, acme-tls/1), ``h1.py``, ``h2.py``, ``h3/``, ``drain.py``.
- ``http/``: the request (``request.py``), ``dispatch.py`` (runs a handler, answers,
  routes errors), routing, matchers, placeholders, ``site.py`` (one server's Site,
  assembled in one place), ``interfaces.py`` (the plugin points).
- ``handlers/``: one module or package per JSON ``"handler"``, found as plugins.
- ``tls/`` certificates and ACME; ``admin/`` the admin API and ``metrics``; ``sync/``
  the file store behind the ``file_sync`` handler; ``postgres/`` the database driver
  that several nodes share (sync index, certificate storage); ``syncui/`` the sync web
  page; ``cli/`` the ``caddytw`` command (``__main__.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caddytw.config.errors import ConfigError, ConfigErrors
    from caddytw.http.site import CaddySite, ServerRoot
    from caddytw.server.build import validate
    from caddytw.server.service import CaddyService

#: Names of the library face, imported on first use (PEP 562): ``synclient`` imports
#: ``caddytw.sync.protocol``, and loading the whole server with it cost the client
#: about a second of start-up under load (a tenth of an rsync-sized initial sync).
_LAZY = {
    "ConfigError": "caddytw.config.errors",
    "ConfigErrors": "caddytw.config.errors",
    "validate": "caddytw.server.build",
    "CaddyService": "caddytw.server.service",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'caddytw' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CaddyService",
    "ConfigError",
    "ConfigErrors",
    "build_resource",
    "build_service",
    "build_site",
    "load_config_file",
    "validate",
]


def build_service(config: dict[str, Any], reactor: Any = None) -> CaddyService:
    """A startable service that listens on every server's addresses."""
    from caddytw.server.service import CaddyService

    return CaddyService(config, reactor=reactor)


def build_site(config: dict[str, Any], server: str | None = None, reactor: Any = None) -> CaddySite:
    """The ``twisted.web`` Site of one server (the first when ``server`` is None)."""
    from caddytw.server.build import build_app

    for built in build_app(config, reactor).servers:
        if server is None or built.config.name == server:
            return built.site
    raise KeyError(f"no server named {server!r}")


def build_resource(
    config: dict[str, Any], server: str | None = None, reactor: Any = None
) -> ServerRoot:
    """The root ``IResource`` of one server, to mount in a Site of your own.

    Requests must be :class:`caddytw.http.request.CaddyRequest` (use
    ``Site(resource, requestFactory=CaddyRequest)``) or come through :func:`build_site`.
    """
    from caddytw.http.site import ServerRoot

    resource = build_site(config, server, reactor).resource
    assert isinstance(resource, ServerRoot)
    return resource


def load_config_file(path: str) -> dict[str, Any]:
    """Read a JSON config file (a ``Caddyfile`` is adapted to JSON first)."""
    from caddytw.server.configfile import load_config_file as load

    return load(path)
