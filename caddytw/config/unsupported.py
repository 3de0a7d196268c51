"""Caddy's standard modules that caddytw does not run, so that rejecting a
config a Caddy user brings says *that* ("... is not supported by caddytw")
rather than calling a module everyone knows unknown."""

from __future__ import annotations

#: Apps of a standard Caddy build, by JSON name, with what they are for.
CADDY_APPS = {
    "pki": "the pki app (acme_server and local certificate authorities)",
    "events": "the events app",
    "layer4": "the layer4 app",
}

#: HTTP handlers of a standard Caddy build.
CADDY_HANDLERS = {
    "acme_server": "acme_server (a built-in ACME certificate authority)",
    "templates": "templates",
    "tracing": "tracing (OpenTelemetry)",
    "invoke": "invoke",
    "intercept": "intercept",
}


def app_message(name: str) -> str:
    known = CADDY_APPS.get(name)
    if known:
        return f"{known} is not supported by caddytw"
    return f"unknown app module {name!r}"


def handler_message(name: str) -> str:
    known = CADDY_HANDLERS.get(name)
    if known:
        return f"{known} is not supported by caddytw"
    return f"unknown handler module {name!r} (no plugin provides it)"
