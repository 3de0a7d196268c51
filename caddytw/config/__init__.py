"""Caddy v2 JSON configuration: strict parsing into frozen objects.

Everything in this package is pure: JSON in, objects or :class:`ConfigError` out, no
reactor and no sockets, so a config can be validated before anything starts.
"""

from caddytw.config.errors import ConfigError, ConfigErrors
from caddytw.config.reader import ObjectReader, join_path

__all__ = ["ConfigError", "ConfigErrors", "ObjectReader", "join_path"]
