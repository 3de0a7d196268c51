"""Subcommand table and argument parsing for ``caddytw``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import config_commands, process, quick, tools

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that answers usage errors like Caddy: message on stderr, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"Error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _common_config(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--config", "-c", default=None, required=required)
    parser.add_argument("--adapter", "-a", default=None, help="name of config adapter")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="caddytw", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    commands.required = True

    def add(name: str, run: Command, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(run=run)
        return sub

    sub = add("run", process.cmd_run, "Starts the server and blocks indefinitely")
    _common_config(sub)
    sub.add_argument("--envfile", action="append", default=[], help="environment file to load")
    sub.add_argument("--environ", action="store_true", help="print the environment first")
    sub.add_argument("--resume", action="store_true", help="use the last saved config if any")
    sub.add_argument("--watch", action="store_true", help="reload the config file on change")
    sub.add_argument("--pidfile", default="", help="write the process ID to this file")
    sub.add_argument("--workers", "-w", type=int, default=1, help="serving processes (caddytw)")
    sub.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)

    sub = add("start", process.cmd_start, "Starts the server in the background and returns")
    _common_config(sub)
    sub.add_argument("--envfile", action="append", default=[])
    sub.add_argument("--watch", action="store_true")
    sub.add_argument("--pidfile", default="")

    sub = add("stop", process.cmd_stop, "Gracefully stops a running server")
    _common_config(sub)
    sub.add_argument("--address", default=None, help="admin API address")

    sub = add("reload", process.cmd_reload, "Changes the config of the running server")
    sub.add_argument("config_arg", nargs="?", default=None, help=argparse.SUPPRESS)
    _common_config(sub)
    sub.add_argument("--address", default=None, help="admin API address")
    sub.add_argument("--force", action="store_true", help="reload even if unchanged")

    sub = add("adapt", config_commands.cmd_adapt, "Adapts a configuration to Caddy's JSON")
    sub.add_argument("--config", "-c", default=None)
    sub.add_argument("--adapter", "-a", default="caddyfile")
    sub.add_argument("--pretty", "-p", action="store_true", help="indent the output")
    sub.add_argument("--validate", action="store_true", help="also validate the output")

    sub = add("validate", config_commands.cmd_validate, "Tests whether a config is valid")
    sub.add_argument("config_arg", nargs="?", default=None, help=argparse.SUPPRESS)
    _common_config(sub)
    sub.add_argument("--envfile", action="append", default=[])

    sub = add("fmt", config_commands.cmd_fmt, "Formats a Caddyfile")
    sub.add_argument("path", nargs="?", default="Caddyfile")
    sub.add_argument("--overwrite", "-w", action="store_true", help="rewrite the file")
    sub.add_argument("--diff", "-d", action="store_true", help="print a diff, exit 1 if any")

    sub = add("file-server", quick.cmd_file_server, "Spins up a file server")
    sub.add_argument("--root", "-r", default="", help="the site root (default: current dir)")
    sub.add_argument("--listen", "-l", default="", help="address to bind")
    sub.add_argument("--domain", "-d", default="", help="domain name to serve")
    sub.add_argument("--browse", "-b", action="store_true", help="directory listings")
    sub.add_argument("--templates", "-t", action="store_true", help="render templates")
    sub.add_argument("--access-log", "-a", action="store_true", help="enable the access log")
    sub.add_argument("--debug", "-v", action="store_true", help="verbose logs")

    sub = add("reverse-proxy", quick.cmd_reverse_proxy, "A quick reverse proxy")
    sub.add_argument("--from", "-f", dest="from_", default="localhost")
    sub.add_argument("--to", "-t", action="append", default=[], help="upstream address(es)")
    sub.add_argument("--change-host-header", "-c", action="store_true")
    sub.add_argument("--insecure", action="store_true", help="skip upstream TLS verification")
    sub.add_argument("--internal-certs", "-i", action="store_true")
    sub.add_argument("--access-log", action="store_true")
    sub.add_argument("--debug", "-v", action="store_true")

    sub = add("respond", quick.cmd_respond, "Simple, hard-coded HTTP responses")
    sub.add_argument("body_arg", nargs="?", default=None, help=argparse.SUPPRESS)
    sub.add_argument("--status", "-s", type=int, default=200)
    sub.add_argument("--header", "-H", action="append", default=[], help='"Field: value"')
    sub.add_argument("--body", "-b", default=None)
    sub.add_argument("--listen", "-l", default=":0")
    sub.add_argument("--access-log", action="store_true")
    sub.add_argument("--debug", "-v", action="store_true")

    sub = add("hash-password", tools.cmd_hash_password, "Hashes a password for basic_auth")
    sub.add_argument("--plaintext", "-p", default=None)
    sub.add_argument("--algorithm", "-a", default="bcrypt")
    sub.add_argument("--salt", "-s", default="")

    sub = add("list-modules", tools.cmd_list_modules, "Lists the installed modules")
    sub.add_argument("--versions", action="store_true")
    sub.add_argument("--packages", action="store_true")
    sub.add_argument("--skip-standard", "-s", action="store_true")

    add("version", tools.cmd_version, "Prints the version")
    sub = add("environ", tools.cmd_environ, "Prints the environment")
    sub.add_argument("--envfile", action="append", default=[])

    sub = add("help", _help, "Shows help for caddytw or one of its commands")
    sub.add_argument("topic", nargs="?", default=None)

    storage = add("storage", tools.cmd_storage_usage, "Commands for the storage (certificates)")
    actions = storage.add_subparsers(dest="action", metavar="<action>", parser_class=_Parser)
    sub = actions.add_parser("export", help="Exports the storage as a tar archive")
    _common_config(sub, required=True)
    sub.add_argument("--output", "-o", required=True, help="tar file, or - for stdout")
    sub.set_defaults(run=tools.cmd_storage_export)
    sub = actions.add_parser("import", help="Imports a tar archive into the storage")
    _common_config(sub, required=True)
    sub.add_argument("--input", "-i", required=True, help="tar file, or - for stdin")
    sub.set_defaults(run=tools.cmd_storage_import)
    return parser


def _help(args: argparse.Namespace) -> int:
    """``caddytw help [command]`` as ``caddy help``: 0, or 1 for an unknown command."""
    parser = make_parser()
    if args.topic is None:
        parser.print_help()
        return 0
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices.get(args.topic)
    if sub is None:
        print(f"Error: unknown command: {args.topic}", file=sys.stderr)
        return 1
    sub.print_help()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run one command, return its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = make_parser().parse_args(arguments)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        result: int = args.run(args)
    except BrokenPipeError:  # `caddytw environ | head`
        return 1
    except KeyboardInterrupt:
        return 1
    return result
