"""Test-only handlers for the HTTP/3 tests (on sys.path only in their server process)."""

from caddytw.handlers.registry import LazyHandlerFactory

h3test_blob = LazyHandlerFactory("h3test_blob", "tests.h3.h3test_handlers")
h3test_echo = LazyHandlerFactory("h3test_echo", "tests.h3.h3test_echo")
