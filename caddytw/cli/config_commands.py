"""``adapt``, ``validate`` and ``fmt``: commands that read a config and exit."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from caddytw.config.errors import ConfigError, ConfigErrors

ADJACENT = "Caddyfile"


def resolve_config(config: str | None, adapter: str | None) -> tuple[str | None, str | None]:
    """Caddy's rule: no ``--config`` means an adjacent ``Caddyfile`` if there is one."""
    if config:
        return config, adapter
    if os.path.exists(ADJACENT) and adapter in (None, "", "caddyfile"):
        return ADJACENT, "caddyfile"
    return None, adapter


def load(config: str, adapter: str | None) -> dict[str, Any]:
    """The config as a dict; raises ConfigError with a message fit for the user."""
    from caddytw.server.configfile import load_config_file

    if adapter in (None, "") and config.endswith(".caddyfile"):
        adapter = "caddyfile"
    return load_config_file(config, adapter)


def cmd_adapt(args: argparse.Namespace) -> int:
    from caddytw.caddyfile.cli import main as adapt_main
    from caddytw.server.build import validate

    config = args.config or ADJACENT
    argv = ["--config", config, "--adapter", args.adapter]
    argv += ["--pretty"] * args.pretty + ["--validate"] * args.validate
    return adapt_main(argv, validate=validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from caddytw.server.build import validate

    from .environ import load_envfiles

    load_envfiles(args.envfile)
    config, adapter = resolve_config(args.config or args.config_arg, args.adapter)
    if config is None:
        print("Error: no config file to load", file=sys.stderr)
        return 1
    try:
        data = load(config, adapter)
        problems = validate(data)
    except (ConfigError, ConfigErrors) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"Error: {len(problems)} error(s) in {config}", file=sys.stderr)
        return 1
    print("Valid configuration")
    return 0


def cmd_fmt(args: argparse.Namespace) -> int:
    """Caddy's ``fmt``: formatted text on stdout, ``--overwrite`` in place, ``--diff``."""
    from caddytw.caddyfile.formatter import format_caddyfile

    try:
        if args.path == "-":
            text = sys.stdin.read()
        else:
            with open(args.path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as error:
        print(f"Error: reading input file: {error.strerror}", file=sys.stderr)
        return 1
    formatted = format_caddyfile(text)
    if args.overwrite and args.path != "-":
        if formatted != text:
            with open(args.path, "w", encoding="utf-8") as handle:
                handle.write(formatted)
        return 0
    if args.diff:
        sys.stdout.write(line_diff(text, formatted))
        return 0
    sys.stdout.write(formatted)
    return 0


def line_diff(old: str, new: str) -> str:
    """The diff ``caddy fmt --diff`` prints: every line, prefixed ``- ``, ``+ `` or two
    spaces (not unified-diff hunks, so it is compared with Caddy's verbatim)."""
    import difflib

    a, b = old.split("\n"), new.split("\n")
    out = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += ["  " + line for line in a[i1:i2]]
            continue
        out += ["- " + line for line in a[i1:i2]]
        out += ["+ " + line for line in b[j1:j2]]
    return "".join(line + "\n" for line in out)
