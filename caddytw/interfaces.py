"""The extension points: what a handler plugin provides and what it gets to build with."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IHandlerFactory(Interface):
    """Builds the resource for one ``{"handler": NAME, ...}`` object of a route.

    Providers are found with ``twisted.plugin.getPlugins(IHandlerFactory)`` (drop a module
    into any ``twisted/plugins/`` folder on ``sys.path``), keyed by :attr:`name`.
    """

    name = Attribute("The JSON handler name, e.g. 'static_response'.")

    def build(config, context, next):  # type: ignore[no-untyped-def]
        """Validate ``config`` and return an ``IResource`` for it.

        :param config: a :class:`caddytw.config.ObjectReader` over the handler's JSON
            (``handler`` already consumed). Call ``config.done()`` after reading every field
            so unknown fields are rejected; raise :class:`caddytw.config.ConfigError` for
            bad values (the reader's ``at(key)`` gives the JSON path).
        :param context: a :class:`caddytw.http.build.BuildContext`.
        :param next: the ``IResource`` to delegate to for middleware-style handlers
            (``headers``, ``encode``, ...). Handlers that answer themselves ignore it.

        The returned resource's ``render(request)`` gets a
        :class:`caddytw.http.request.CaddyRequest`; it may return ``bytes`` or
        ``NOT_DONE_YET``, raise :class:`caddytw.http.errors.HandlerError`, or later call
        ``request.fail(error)``.
        """
