"""Caddy's admin API: live config access, reloads, stop, upstreams and metrics."""
