"""The extension points: what a handler plugin provides and what it gets to build with."""

from __future__ import annotations

from typing import Any

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
        :class:`caddytw.http.request.CaddyRequest`. It answers in one way, as every
        built-in handler does: it writes the answer through the request (a whole body
        with ``caddytw.http.dispatch.respond(request, body)``, or a stream) and returns
        ``NOT_DONE_YET``; or it raises :class:`caddytw.http.errors.HandlerError`, or
        later calls ``caddytw.http.dispatch.fail(request, error)``. Returning ``bytes``,
        the ``twisted.web`` ``IResource`` convention, is still accepted so existing
        ``IResource`` plugins keep working (dispatch delivers them with ``respond``),
        but it is the compatible form, not a second way for new handlers.

        The request's stable API (what plugins may rely on across releases):
        twisted.web's ``IRequest`` in full (which the class declares and implements),
        plus ``clientproto``, ``code``, ``code_message``, ``startedWriting``,
        ``finished``, ``sentLength``, ``notifyFinish()``, ``when_lost()`` (a callback
        for an exchange lost before its answer completed), ``registerProducer()`` /
        ``unregisterProducer()``, ``content`` (an empty file: bodies stream), and
        Caddy's own ``body`` (:class:`caddytw.http.body.RequestBody`), ``caddy_vars``,
        ``decoded_path``, ``set_uri()``, ``header_hooks``, ``client_gone`` and
        ``original_uri``. Header values are ``bytes`` in twisted's ``Headers``. The
        class is not twisted.web's ``Request`` (``isinstance`` checks against it fail);
        anything else on it (``_`` names, ``channel``, ``transport``) is internal.
        """


class IMatcherFactory(Interface):
    """A request matcher for route ``match`` sets, beside the built-in ones
    (:data:`caddytw.http.matchers.MATCHERS`), found like handlers with ``getPlugins``."""

    name = Attribute("The JSON matcher name, e.g. 'path'.")

    def build(argument, path):  # type: ignore[no-untyped-def]
        """Validate ``argument`` (the JSON value under ``name``; ``path`` is its JSON path
        for :class:`caddytw.config.ConfigError`) and return ``matcher(request) -> bool``."""


class IEncoderFactory(Interface):
    """A content encoding for the ``encode`` handler's ``encodings`` object, beside the
    built-in ones (:data:`caddytw.handlers.encode.encoders.ENCODINGS`)."""

    name = Attribute("The encoding's name, as in Accept-Encoding, e.g. 'gzip'.")

    def parse(data, path):  # type: ignore[no-untyped-def]
        """Validate ``data`` (the JSON under ``encodings.NAME``) and return an encoder
        with ``new_stream()`` (a :class:`StreamEncoder`) and ``compress(data)``."""


class ISelectionPolicyFactory(Interface):
    """A load-balancing policy for ``reverse_proxy``'s ``load_balancing.selection_policy``,
    beside the built-in ones (:data:`caddytw.handlers.reverse_proxy.selection.POLICIES`)."""

    name = Attribute("The JSON policy name, e.g. 'round_robin'.")

    def build(reader, rng):  # type: ignore[no-untyped-def]
        """Read the policy's options from ``reader`` (an ``ObjectReader``; unknown
        fields are refused after it returns) and return a policy with
        ``select(pool, request) -> Choice``."""


def find_plugins(interface: type[Interface]) -> dict[str, Any]:
    """Every provider of ``interface`` on ``sys.path``'s ``twisted/plugins/``, by name
    (first one found wins). Only consulted for names the built-ins do not know."""
    from twisted.plugin import getPlugins

    import twisted.plugins

    found: dict[str, Any] = {}
    provider: Any
    for provider in getPlugins(interface, twisted.plugins):
        found.setdefault(provider.name, provider)
    return found
