"""Commands that need no server: ``version``, ``environ``, ``hash-password``,
``list-modules`` and ``storage export|import``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tarfile
from importlib import metadata

from caddytw.config.errors import ConfigError, ConfigErrors

BCRYPT_COST = 14  # Caddy's hash-password cost


def version_string() -> str:
    try:
        return metadata.version("caddytw")
    except metadata.PackageNotFoundError:
        return "(devel)"


def cmd_version(args: argparse.Namespace) -> int:
    print(f"v{version_string()} caddytw")
    return 0


def cmd_environ(args: argparse.Namespace) -> int:
    from .environ import environ_lines, load_envfiles

    load_envfiles(args.envfile)
    print("\n".join(environ_lines()))
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Caddy's output: a bcrypt hash (``$2a$14$...``) for ``basic_auth``."""
    import bcrypt

    if args.algorithm != "bcrypt":
        print(f"Error: unrecognized hash algorithm: {args.algorithm}", file=sys.stderr)
        return 1
    plaintext = args.plaintext
    if plaintext is None:
        if sys.stdin.isatty():
            plaintext = getpass.getpass("Enter password: ")
            if getpass.getpass("Confirm password: ") != plaintext:
                print("Error: password does not match", file=sys.stderr)
                return 1
        else:
            plaintext = sys.stdin.readline().rstrip("\r\n")
    if not plaintext:
        print("Error: plaintext is required", file=sys.stderr)
        return 1
    hashed = bcrypt.hashpw(plaintext.encode(), bcrypt.gensalt(BCRYPT_COST, prefix=b"2a"))
    print(hashed.decode())
    return 0


def module_names() -> list[str]:
    """Module IDs in Caddy's naming, for what this build can run."""
    from caddytw.handlers.registry import handler_factories
    from caddytw.http.matchers import MATCHERS

    names = {"admin.api.load", "admin.api.metrics", "http", "tls", "caddy.storage.file_system"}
    names |= {"caddy.adapters.caddyfile", "tls.issuance.acme", "tls.issuance.internal"}
    names |= {"tls.certificates.load_files", "http.reverse_proxy.transport.http"}
    names |= {f"http.handlers.{name}" for name in handler_factories()}
    names |= {f"http.matchers.{name}" for name in MATCHERS}
    return sorted(names)


def cmd_list_modules(args: argparse.Namespace) -> int:
    names = module_names()
    version = version_string()
    for name in names:
        if args.skip_standard:
            continue
        suffix = f" v{version}" if args.versions else ""
        suffix += " caddytw" if args.packages else ""
        print(name + suffix)
    print(f"\n  Standard modules: {len(names)}")
    return 0


def cmd_storage_usage(args: argparse.Namespace) -> int:
    print("usage: caddytw storage export|import --config FILE ...", file=sys.stderr)
    return 2


def _storage_root(args: argparse.Namespace) -> str:
    from caddytw.tls.config import parse_storage

    from .config_commands import load

    data = load(args.config, args.adapter)
    storage = data.get("storage") or {}
    return parse_storage(storage if isinstance(storage, dict) else {})


def cmd_storage_export(args: argparse.Namespace) -> int:
    """A tar of the ``file_system`` storage (certificates, keys, ACME accounts)."""
    try:
        root = _storage_root(args)
    except (ConfigError, ConfigErrors) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    if not os.path.isdir(root):
        print(f"Error: storage {root} does not exist", file=sys.stderr)
        return 1
    target = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        with tarfile.open(fileobj=target, mode="w|") as archive:
            for name in sorted(os.listdir(root)):
                archive.add(os.path.join(root, name), arcname=name)
    finally:
        if target is not sys.stdout.buffer:
            target.close()
    return 0


def cmd_storage_import(args: argparse.Namespace) -> int:
    """Unpack an export into the storage; members that would leave it are refused."""
    try:
        root = _storage_root(args)
    except (ConfigError, ConfigErrors) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    source = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
    try:
        with tarfile.open(fileobj=source, mode="r|") as archive:
            os.makedirs(root, mode=0o700, exist_ok=True)
            archive.extractall(root, filter="data")
    except (tarfile.TarError, OSError) as error:
        print(f"Error: importing storage: {error}", file=sys.stderr)
        return 1
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    return 0
