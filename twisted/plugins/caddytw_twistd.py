"""twistd plugin ``caddy``: ``twistd -n caddy -c conf/caddy.json``."""

from twisted.application.service import ServiceMaker

caddy = ServiceMaker(
    "caddytw", "caddytw.server.tap", "A Caddy-v2-compatible web server (JSON config).", "caddy"
)
