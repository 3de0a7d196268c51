"""``adapt --config FILE [--pretty] [--validate] [--adapter caddyfile]``.

Prints the JSON config on stdout and warnings on stderr; on an error prints
``file:line: message`` and returns 1.  ``validate`` is a hook the caller
passes in (the config loader's validator): it returns error strings naming
JSON paths, and any error makes the command fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TextIO

from .adapter import adapt
from .errors import CaddyfileError

__all__ = ["main"]

Validator = Callable[[dict[str, object]], list[str]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caddytw adapt", description="Adapt a Caddyfile to Caddy JSON config."
    )
    parser.add_argument("--config", required=True, help="path to the Caddyfile")
    parser.add_argument("--adapter", default="caddyfile", help="config adapter (caddyfile)")
    parser.add_argument("--pretty", action="store_true", help="indent the JSON output")
    parser.add_argument("--validate", action="store_true", help="also validate the result")
    return parser


def main(
    argv: list[str],
    validate: Validator | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the ``adapt`` command; ``argv`` may start with the word ``adapt``."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if argv and argv[0] == "adapt":
        argv = argv[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.adapter != "caddyfile":
        print(f"unrecognized config adapter '{args.adapter}'", file=err)
        return 1
    try:
        with open(args.config, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        print(f"{args.config}:0: reading input file: {exc.strerror}", file=err)
        return 1
    try:
        config, warnings = adapt(text, args.config)
    except CaddyfileError as exc:
        print(str(exc), file=err)
        return 1
    for warning in warnings:
        print(f"WARNING: {warning}", file=err)
    if args.validate:
        if validate is None:
            print("validation is not available in this build", file=err)
            return 1
        problems = validate(config)
        if problems:
            for problem in problems:
                print(f"{args.config}: invalid config: {problem}", file=err)
            return 1
    if args.pretty:
        out.write(json.dumps(config, indent="\t") + "\n")
    else:
        out.write(json.dumps(config, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
