"""synclient: mirrors a local folder with a caddytw ``file_sync`` server, both ways.

Modules, one job each: ``planner`` (three-way decisions, no IO), ``state`` (the SQLite
merge base), ``scanner`` (hashing the local tree), ``watcher`` (watchdog into the
reactor), ``remote`` (the HTTP/WebSocket API), ``apply`` (atomic local/remote changes),
``engine`` (orchestration), ``folder`` (the folder marker), ``progress`` and ``cli``.
"""
