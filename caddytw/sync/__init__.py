"""File sync: the shared wire protocol, the server store and the ``file_sync`` handler.

``caddytw.sync.protocol`` is pure and shared with ``synclient``; the other modules are
the server side.
"""
