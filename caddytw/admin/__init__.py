"""Caddy's admin API: live config access, reloads, stop, upstreams and metrics; and the
process-wide registries handlers feed (``metrics``, ``upstreams``, ``peers``: events
between ``--workers`` processes)."""
