"""Commands that need no server: ``version``, ``environ``, ``hash-password``,
``list-modules`` and ``storage export|import``."""

from __future__ import annotations

import argparse
import getpass
import io
import os
import sys
import tarfile
import time
from typing import TYPE_CHECKING

from caddytw.cli.environ import version_string
from caddytw.config.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from caddytw.tls.store import Storage

BCRYPT_COST = 14  # Caddy's hash-password cost


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
    names |= {"caddy.storage.postgres"}
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


def _open_storage(args: argparse.Namespace) -> Storage:
    from caddytw.tls.config import parse_storage
    from caddytw.tls.storages import open_storage

    from .config_commands import load

    data = load(args.config, args.adapter)
    storage = data.get("storage") or {}
    return open_storage(parse_storage(storage if isinstance(storage, dict) else {}))


def cmd_storage_export(args: argparse.Namespace) -> int:
    """A tar of every key in the storage (certificates, keys, ACME accounts), whichever
    module holds it: an export of ``postgres`` imports into ``file_system`` and back."""
    from caddytw.tls.store import FileStorage

    try:
        storage = _open_storage(args)
    except (ConfigError, ConfigErrors) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    try:
        if isinstance(storage, FileStorage) and not os.path.isdir(storage.root):
            print(f"Error: storage {storage.root} does not exist", file=sys.stderr)
            return 1
        target = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
        try:
            with tarfile.open(fileobj=target, mode="w|") as archive:
                for key in storage.list():
                    value = storage.load(key)
                    if value is None:
                        continue  # deleted since it was listed
                    info = tarfile.TarInfo(key)
                    info.size = len(value)
                    info.mode = 0o600 if key.endswith(".key") else 0o644
                    info.mtime = int(time.time())
                    archive.addfile(info, io.BytesIO(value))
        finally:
            if target is not sys.stdout.buffer:
                target.close()
    except Exception as error:
        from caddytw.postgres import is_unavailable  # only storage commands need it

        if not is_unavailable(error):
            raise
        print(f"Error: exporting storage {storage.describe()}: {error}", file=sys.stderr)
        return 1
    finally:
        storage.close()
    return 0


def cmd_storage_import(args: argparse.Namespace) -> int:
    """Write every file of an export into the storage; members that are not plain files
    under a relative path (``..``, absolute, links) are refused."""
    from caddytw.tls.store import check_key

    try:
        storage = _open_storage(args)
    except (ConfigError, ConfigErrors) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    source = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")  # noqa: SIM115
    try:
        with tarfile.open(fileobj=source, mode="r|") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if member.isdir() or name.startswith("locks/"):
                    continue  # folders come with their files; locks are per process
                if not member.isfile():
                    raise tarfile.TarError(f"{member.name}: not a regular file")
                try:
                    key = check_key(name)
                except ValueError as error:
                    raise tarfile.TarError(str(error)) from None
                data = archive.extractfile(member)
                assert data is not None
                storage.store(key, data.read(), private=not member.mode & 0o077)
    except (tarfile.TarError, OSError) as error:
        print(f"Error: importing storage: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        from caddytw.postgres import is_unavailable  # only storage commands need it

        if not is_unavailable(error):
            raise
        print(f"Error: importing storage into {storage.describe()}: {error}", file=sys.stderr)
        return 1
    finally:
        storage.close()
        if source is not sys.stdin.buffer:
            source.close()
    return 0
