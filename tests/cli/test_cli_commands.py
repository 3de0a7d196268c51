"""``caddytw`` commands that exit at once, run in process (and fmt against Caddy's)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from caddytw.cli import main
from caddytw.cli.config_commands import line_diff
from caddytw.cli.environ import EnvfileError, parse_envfile
from caddytw.cli.logs import caddy_entry
from caddytw.cli.quick import FlagError, reverse_proxy_config, upstream_dial

CADDY = shutil.which("caddy")
UNFORMATTED = ':80 {\nrespond "hi"\n  @a path /x\n\theader  X-A   b\n}\n'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "bogus")
    assert status == 2 and "invalid choice" in err


def test_version_and_list_modules(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "version")[0] == 0
    status, out, _ = run(capsys, "list-modules", "--versions")
    assert status == 0
    assert "http.handlers.reverse_proxy" in out and "http.matchers.path" in out


@pytest.mark.skipif(CADDY is None, reason="Debian's caddy not installed")
@pytest.mark.parametrize("flags", [[], ["--diff"]])
def test_fmt_prints_what_caddy_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], monkeypatch: Any
) -> None:
    (tmp_path / "Caddyfile").write_text(UNFORMATTED)
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "fmt", *flags)
    assert CADDY
    reference = subprocess.run(
        [CADDY, "fmt", *flags], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert (status, out) == (0, reference.stdout)


def test_fmt_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Caddyfile"
    path.write_text(UNFORMATTED)
    assert run(capsys, "fmt", "--overwrite", str(path)) == (0, "", "")
    assert '\trespond "hi"\n' in path.read_text()
    assert run(capsys, "fmt", str(tmp_path / "nope"))[0] == 1


def test_line_diff_marks_every_line() -> None:
    assert line_diff("a\nb\n", "a\nc\n") == "  a\n- b\n+ c\n  \n"


def test_hash_password_is_a_bcrypt_hash_caddy_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "hash-password", "--plaintext", "hunter2")
    hashed = out.strip().encode()
    assert status == 0 and hashed.startswith(b"$2a$14$")
    assert bcrypt.checkpw(b"hunter2", hashed)
    assert run(capsys, "hash-password", "--plaintext", "x", "--algorithm", "md5")[0] == 1


def test_adapt_uses_the_adjacent_caddyfile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    (tmp_path / "Caddyfile").write_text(':8080 {\n\trespond "hi"\n}\n')
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(capsys, "adapt")
    assert status == 0
    assert json.loads(out)["apps"]["http"]["servers"]["srv0"]["listen"] == [":8080"]
    status, out, _ = run(capsys, "validate")
    assert (status, out) == (0, "Valid configuration\n")


def test_validate_names_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "caddy.json"
    bad.write_text('{"apps": {"http": {"servers": {"s": {"listen": [":1"], "bogus": 1}}}}}')
    status, _, err = run(capsys, "validate", "--config", str(bad))
    assert status == 1 and "apps.http.servers.s" in err and "bogus" in err


def test_storage_export_import_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    (source / "certificates" / "local").mkdir(parents=True)
    (source / "certificates" / "local" / "x.crt").write_text("CERT")
    for root, name in ((source, "a.json"), (target, "b.json")):
        (tmp_path / name).write_text(
            json.dumps({"storage": {"module": "file_system", "root": str(root)}})
        )
    archive = str(tmp_path / "s.tar")
    assert run(capsys, "storage", "export", "-c", str(tmp_path / "a.json"), "-o", archive)[0] == 0
    assert run(capsys, "storage", "import", "-c", str(tmp_path / "b.json"), "-i", archive)[0] == 0
    assert (target / "certificates" / "local" / "x.crt").read_text() == "CERT"


def test_envfile_parsing() -> None:
    text = "# c\nA=1\nexport B = 'two words'\nC=\"q\"\nD=x # note\n\n"
    assert parse_envfile(text) == {"A": "1", "B": "two words", "C": "q", "D": "x"}
    with pytest.raises(EnvfileError, match="envfile:1"):
        parse_envfile("no equals sign")


def _proxy_args(**overrides: Any) -> argparse.Namespace:
    values = dict(
        from_="localhost",
        to=["127.0.0.1:9000"],
        change_host_header=False,
        insecure=False,
        internal_certs=False,
        access_log=False,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def test_reverse_proxy_config_follows_caddys_address_rules() -> None:
    config, url = reverse_proxy_config(_proxy_args(from_=":8080", change_host_header=True))
    server = config["apps"]["http"]["servers"]["proxy"]
    assert url == "http://:8080" and server["listen"] == [":8080"]
    assert server["automatic_https"] == {"disable": True} and "match" not in server["routes"][0]
    handler = server["routes"][0]["handle"][0]
    assert handler["headers"]["request"]["set"]["Host"] == [
        "{http.reverse_proxy.upstream.hostport}"
    ]
    config, url = reverse_proxy_config(_proxy_args(from_="example.com", to=["https://up"]))
    server = config["apps"]["http"]["servers"]["proxy"]
    assert url == "https://example.com:443" and "automatic_https" not in server
    assert server["routes"][0]["match"] == [{"host": ["example.com"]}]
    assert server["routes"][0]["handle"][0]["transport"] == {"protocol": "http", "tls": {}}
    assert upstream_dial("http://up") == ("http", "up:80")
    assert upstream_dial(":9000") == ("", ":9000")
    with pytest.raises(FlagError):
        reverse_proxy_config(_proxy_args(to=[]))
    with pytest.raises(FlagError):
        reverse_proxy_config(_proxy_args(from_="example.com/path"))


def test_log_entries_have_caddys_shape() -> None:
    event = {
        "log_level": LogLevel.warn,
        "log_time": 1.5,
        "log_namespace": "caddytw.tls.runtime",
        "log_format": "renewing {name}",
        "name": "example.com",
    }
    assert caddy_entry(event) == {
        "level": "warn",
        "ts": 1.5,
        "logger": "tls.runtime",
        "msg": "renewing example.com",
    }
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    entry = caddy_entry({**event, "log_level": LogLevel.error, "log_failure": failure})
    assert entry["level"] == "error" and "ValueError: boom" in entry["error"]


def test_respond_positional_argument_is_status_or_body() -> None:
    from caddytw.cli.quick import respond_config

    def handler(**values: Any) -> dict[str, Any]:
        # body "" rather than None: None means "read the body from stdin" (Caddy's too)
        base = dict(body="", body_arg=None, status=200, header=[], listen="", access_log=False)
        base.update(values)
        config = respond_config(argparse.Namespace(**base))
        route = config["apps"]["http"]["servers"]["static"]["routes"][0]
        return dict(route["handle"][0])

    assert handler(body_arg="404")["status_code"] == 404
    assert handler(body=None, body_arg="hello")["body"] == "hello"
    assert handler(header=["X-A: b", "X-A: c"])["headers"] == {"X-A": ["b", "c"]}
    with pytest.raises(FlagError):
        handler(header=["no colon"])


def test_help_names_a_commands_flags(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "help", "reverse-proxy")
    assert status == 0 and "--change-host-header" in out and "--from" in out
    assert run(capsys, "help", "nope")[0] == 1


def test_storage_import_refuses_members_outside_the_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import tarfile

    root = tmp_path / "storage"
    (tmp_path / "c.json").write_text(
        json.dumps({"storage": {"module": "file_system", "root": str(root)}})
    )
    for member in ("../escape.key", "/abs/path.key", "certificates/link"):
        archive = tmp_path / "evil.tar"
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(member)
            if member.endswith("link"):
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 3
                tar.addfile(info, io.BytesIO(b"bad"))
        status, _, err = run(
            capsys, "storage", "import", "-c", str(tmp_path / "c.json"), "-i", str(archive)
        )
        assert status == 1 and "importing storage" in err, member
    assert not (tmp_path / "escape.key").exists()
    assert not root.exists() or not any(root.rglob("*"))
