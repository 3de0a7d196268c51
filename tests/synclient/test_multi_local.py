"""Several servers and folders, the parts without a network: the TOML config's checks,
the per-server state files and the shared progress line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from synclient.config import ConfigError, parse
from synclient.planner import Strategy, Version
from synclient.progress import Board, Progress
from synclient.state import StateDB, server_key

URL = "http://127.0.0.1:8080"


def folder(**extra: Any) -> dict[str, Any]:
    return {"path": "a", "servers": [URL], **extra}


def test_a_full_config(tmp_path: Path) -> None:
    data = {
        "interval": 7,
        "exclude": ["*.tmp"],
        "folders": [
            folder(name="docs"),
            {
                "path": "~/photos",
                "interval": 2.5,
                "conflict": "rename",
                "exclude": [],
                "allow_mass_delete": True,
                "servers": [
                    {"url": "https://one.example/", "token": "t1"},
                    {"url": "http://two.example:81/sync", "token_env": "TWO_TOKEN"},
                ],
            },
        ],
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TWO_TOKEN", "t2")
        docs, photos = parse(data, tmp_path)
    assert docs.local_path == tmp_path / "a" and docs.name == "docs"
    assert docs.interval == 7 and docs.excludes == ["*.tmp"]
    assert docs.strategy is Strategy.KEEP_CLIENT and [s.url for s in docs.servers] == [URL]
    assert photos.local_path == Path("~/photos").expanduser()
    assert photos.interval == 2.5 and photos.excludes == [] and photos.allow_mass_delete
    assert photos.strategy is Strategy.RENAME
    assert [(s.url, s.token) for s in photos.servers] == [
        ("https://one.example", "t1"),
        ("http://two.example:81/sync", "t2"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "folders: missing"),
        ({"folders": []}, "folders: must be a non-empty array"),
        ({"intervall": 3, "folders": [folder()]}, "intervall: unknown key"),
        ({"interval": 0, "folders": [folder()]}, "interval: must be a number of seconds"),
        ({"folders": ["a"]}, "folders[0]: must be a table"),
        ({"folders": [{"servers": [URL]}]}, "folders[0].path: missing"),
        ({"folders": [folder(path="")]}, "folders[0].path: must be a non-empty string"),
        ({"folders": [folder(servers=[])]}, "folders[0].servers: must be a non-empty list"),
        ({"folders": [folder(interval="1")]}, "folders[0].interval: must be a number"),
        ({"folders": [folder(interval=True)]}, "folders[0].interval: must be a number"),
        ({"folders": [folder(exclude="*.tmp")]}, "folders[0].exclude: must be a list"),
        ({"folders": [folder(exclude=[1])]}, "folders[0].exclude[0]: must be a non-empty"),
        ({"folders": [folder(allow_mass_delete=1)]}, "folders[0].allow_mass_delete: must be"),
        ({"folders": [folder(servers=[3])]}, "folders[0].servers[0]: must be a URL or a table"),
        ({"folders": [folder(servers=["localhost"])]}, "folders[0].servers[0]: 'localhost'"),
        (
            {"folders": [folder(servers=[{"token": "x"}])]},
            "folders[0].servers[0].url: missing",
        ),
        (
            {"folders": [folder(servers=[{"url": URL, "tokn": "x"}])]},
            "folders[0].servers[0].tokn: unknown key (known: token, token_env, url)",
        ),
        (
            {"folders": [folder(servers=[{"url": URL, "token": ""}])]},
            "folders[0].servers[0].token: must be a non-empty string",
        ),
        (
            {"folders": [folder(servers=[{"url": URL, "token_env": "SYNC_MULTI_UNSET"}])]},
            "folders[0].servers[0].token_env: the environment variable SYNC_MULTI_UNSET",
        ),
        (
            {"folders": [folder(servers=[URL, "HTTP://127.0.0.1:8080/"])]},
            "folders[0].servers[1].url: HTTP://127.0.0.1:8080 is already folders[0].servers[0]",
        ),
        (
            {"folders": [folder(servers=["http://h:99999"])]},
            "folders[0].servers[0]: 'http://h:99999' has an invalid port",
        ),
        ({"folders": [folder(), folder(path="a/b")]}, "folders[1].path: "),
        ({"folders": [folder(), folder(path="./a")]}, "overlaps folders[0].path"),
    ],
)
def test_config_mistakes_name_their_key(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(data, tmp_path)
    assert message in str(raised.value)


def test_each_server_has_its_own_state_and_the_folder_one_client_id(tmp_path: Path) -> None:
    one, two = "http://127.0.0.1:1/", "http://127.0.0.1:2"
    both = [one, two]
    legacy = StateDB(tmp_path)  # a folder synced before servers were recorded
    legacy.set_base("old.txt", Version("1" * 64))
    client = legacy.client_id
    legacy.close()
    first = StateDB(tmp_path, one, both)
    assert "old.txt" in first.base and first.path.name == "state.db"  # adopted
    second = StateDB(tmp_path, two, both)
    assert second.path.name.startswith("state-") and second.base == {}
    assert first.client_id == second.client_id == client
    second.set_base("two.txt", Version("2" * 64))
    second.set_cursor("index-2", 5)
    first.close()
    second.close()
    # In the other order, or alone, each server finds its own base and cursor.
    for servers in ([two, one], [two], [one]):
        states = {url: StateDB(tmp_path, url, servers) for url in servers}
        if two in states:
            assert set(states[two].base) == {"two.txt"}
            assert states[two].cursor == ("index-2", 5)
        if one in states:
            assert set(states[one].base) == {"old.txt"} and states[one].cursor is None
        for state in states.values():
            state.close()
    # One server reached under a new URL (a proxy) carries on with the folder's state.
    moved = StateDB(tmp_path, "http://proxy.example", ["http://proxy.example"])
    assert set(moved.base) == {"old.txt"} and moved.path.name == "state.db"
    moved.close()
    assert server_key("HTTP://Host:1/x/") == "http://host:1/x"


def test_one_progress_line_names_every_folder_and_server() -> None:
    now = [0.0]
    out = io.StringIO()
    board = Board(out, clock=lambda: now[0], enabled=True)
    docs = Progress(out, label="docs @ http://a", board=board)
    photos = Progress(out, label="photos @ http://b", board=board)
    docs.start(2, 2048)
    photos.start(1, 1024)
    now[0] = 1.0
    docs.add_bytes(1024)
    assert board.line().startswith("docs @ http://a: 0/2 files  1.0 KiB/2.0 KiB")
    assert "  |  photos @ http://b: 0/1 files" in board.line()
    docs.file_done("x", 1024)
    docs.finish()
    # The finished pass leaves its own line; the status line goes on with the other.
    finished, status = out.getvalue().split("\n")[-2:]
    assert finished.rpartition("\r\x1b[K")[2].startswith("docs @ http://a: 1/2 files")
    assert status.endswith(board.line())
    assert board.line().startswith("photos @ http://b: 0/1 files")
    photos.finish()
    assert board.active == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", URL, "--server", URL + "/", "--local-path", "x"], f"--server {URL}: given"),
        (["--server", "file:///x", "--local-path", "x"], "--server: 'file:///x' is not an http"),
        (["--local-path", "x"], "--server and --local-path are required (or --config FILE)"),
        (["--config", "c.toml", "--server", URL], "--config replaces --server and --local-path"),
        (["--config", "c.toml", "--exclude", "*.tmp"], "--exclude: set per folder in the config"),
    ],
)
def test_command_line_mistakes(argv: list[str], message: str) -> None:
    from synclient.cli import parser, settings_from

    with pytest.raises(ConfigError) as raised:
        settings_from(parser().parse_args(argv))
    assert message in str(raised.value)


def test_several_servers_on_the_command_line_share_the_token(tmp_path: Path) -> None:
    from synclient.cli import parser, settings_from

    argv = ["--server", URL, "--server", "https://b.example", "--local-path", str(tmp_path)]
    (only,) = settings_from(parser().parse_args([*argv, "--token", "t", "--interval", "5"]))
    assert [(s.url, s.token) for s in only.servers] == [(URL, "t"), ("https://b.example", "t")]
    assert only.local_path == tmp_path and only.interval == 5
