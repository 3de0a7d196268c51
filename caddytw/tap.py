"""``twistd caddy``: options and service maker for the twistd plugin."""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import usage

DEFAULT_CONFIG = "conf/caddy.json"


class Options(usage.Options):
    synopsis = "[-c CONFIG] [--adapter caddyfile]"
    longdesc = "Serve a Caddy v2 JSON config (or a Caddyfile) with caddytw."
    optParameters = [
        ["config", "c", DEFAULT_CONFIG, "Config file (Caddy v2 JSON, or a Caddyfile)."],
        ["adapter", None, None, "Config adapter: json (default) or caddyfile."],
    ]


def makeService(options: Any) -> Any:
    from caddytw.app import CaddyService
    from caddytw.config.errors import ConfigError, ConfigErrors
    from caddytw.configfile import load_config_file

    try:
        data = load_config_file(options["config"], options["adapter"])
        return CaddyService(data)
    except (ConfigError, ConfigErrors) as error:
        sys.stderr.write(f"caddytw: invalid config {options['config']}:\n{error}\n")
        raise SystemExit(1) from None
