"""``python -m caddytw``: the shell commands (see ``python -m caddytw --help``)."""

from __future__ import annotations

import argparse
import sys

from caddytw.config.errors import ConfigError


def cmd_validate(args: argparse.Namespace) -> int:
    from caddytw.server.build import validate
    from caddytw.server.configfile import load_config_file

    try:
        data = load_config_file(args.config, args.adapter)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    problems = validate(data)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} error(s) in {args.config}", file=sys.stderr)
        return 1
    print("Valid configuration")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    from caddytw.admin import client
    from caddytw.server.configfile import load_config_file

    try:
        data = load_config_file(args.config, args.adapter)
        client.reload(data, client.admin_address(data, args.address), force=args.force)
    except (ConfigError, client.AdminClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("Config reloaded")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from caddytw.admin import client

    try:
        client.stop(client.admin_address(None, args.address))
    except client.AdminClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caddytw", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a config; exit 1 listing every error")
    validate.add_argument("config", nargs="?", default=None)
    validate.add_argument("--config", "-c", dest="config_option", default=None)
    validate.add_argument("--adapter", default=None)
    validate.set_defaults(run=cmd_validate)
    reload = commands.add_parser("reload", help="load a config into a running server")
    reload.add_argument("config", nargs="?", default=None)
    reload.add_argument("--config", "-c", dest="config_option", default=None)
    reload.add_argument("--adapter", default=None)
    reload.add_argument("--address", default=None, help="admin API address")
    reload.add_argument("--force", action="store_true", help="reload even if unchanged")
    reload.set_defaults(run=cmd_reload)
    stop = commands.add_parser("stop", help="stop a running server gracefully")
    stop.add_argument("--address", default=None, help="admin API address (localhost:2019)")
    stop.set_defaults(run=cmd_stop, config="")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["adapt"]:
        from caddytw.caddyfile.cli import main as adapt_main
        from caddytw.server.build import validate as validate_config

        return adapt_main(arguments[1:], validate=validate_config)
    args = make_parser().parse_args(arguments)
    if getattr(args, "config_option", None):
        args.config = args.config_option
    if args.config is None:
        print("error: a config file is required", file=sys.stderr)
        return 2
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
