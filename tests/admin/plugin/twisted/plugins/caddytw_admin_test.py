"""Test-only handler plugin (on PYTHONPATH only for the admin tests' server processes)."""

from caddytw.handlers.registry import LazyHandlerFactory

slow_test = LazyHandlerFactory("slow_test", "caddytw_admin_test_slow")
