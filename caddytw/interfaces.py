"""Old home of the plugin points, now :mod:`caddytw.http.interfaces`; kept as an alias.

Not for new code. Twisted's plugin cache (``twisted/plugins/dropin.cache``) pickles the
interfaces each plugin provides by module path; a cache written by an earlier caddytw
names ``caddytw.interfaces``. Without this alias it fails to load, and every process
then imports every plugin module on ``sys.path`` (Twisted's own ``conch``, autobahn...)
to rebuild it, for good where site-packages is read-only.
"""

from caddytw.http.interfaces import (
    IEncoderFactory,
    IHandlerFactory,
    IMatcherFactory,
    ISelectionPolicyFactory,
)

__all__ = ["IEncoderFactory", "IHandlerFactory", "IMatcherFactory", "ISelectionPolicyFactory"]
