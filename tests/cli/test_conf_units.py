"""conf/caddytw.service and conf/Containerfile run commands our CLI accepts."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from caddytw.cli.main import make_parser

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_systemd_unit_commands_parse() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONF / "caddytw.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    for key, command in (("ExecStart", "run"), ("ExecReload", "reload")):
        argv = shlex.split(service[key])
        assert argv[0] == "/usr/bin/caddytw"
        args = make_parser().parse_args(argv[1:])
        assert args.command == command and args.config == "/etc/caddytw/Caddyfile"


def test_containerfile_command_parses() -> None:
    import json

    text = (CONF / "Containerfile").read_text()
    command = json.loads(next(ln for ln in text.splitlines() if ln.startswith("CMD "))[4:])
    assert command[0] == "caddytw"
    assert make_parser().parse_args(command[1:]).command == "run"
