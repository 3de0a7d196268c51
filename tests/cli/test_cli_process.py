"""``caddytw`` commands as real processes, against Debian's ``caddy`` where cheap."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_for_port
from tests.support.server import server_env

CADDY = shutil.which("caddy")


def caddytw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command to completion.  Output goes through files: `start` leaves a
    server behind that inherits them, as Caddy's does, so pipes would never close."""
    with open(cwd / "out.log", "w+") as out, open(cwd / "err.log", "w+") as err:
        process = subprocess.run(
            [sys.executable, "-m", "caddytw", *args],
            cwd=cwd,
            env=server_env(),
            stdout=out,
            stderr=err,
            text=True,
            timeout=60,
        )
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read())


@contextmanager
def running(command: list[str], port: int, cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=server_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        assert wait_for_port(port, timeout=20), log.read_text()
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def get(url: str, accept: str = "") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def loopback_site(port: int, directive: str) -> str:
    """A Caddyfile: no admin endpoint, one site bound to loopback only."""
    return f"{{\n\tadmin off\n}}\nhttp://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n\t{directive}\n}}\n"


def make_site(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "sub" / "index.html").write_text("<p>sub</p>\n")
    (root / "data.json").write_text('{"a": 1}\n')


def test_file_server_browse_serves_what_caddy_serves(tmp_path: Path) -> None:
    """`file-server --browse` from Caddy's docs: files, index files, JSON listings."""
    site = tmp_path / "site"
    make_site(site)
    port = free_port()
    ours = [sys.executable, "-m", "caddytw", "file-server", "--browse"]
    ours += ["--listen", f"127.0.0.1:{port}", "--access-log"]
    paths = ["/hello.txt", "/sub/", "/data.json", "/missing"]
    with running(ours, port, site, tmp_path / "ours.log") as process:
        answers = {p: get(f"http://127.0.0.1:{port}{p}") for p in paths}
        listing = get(f"http://127.0.0.1:{port}/", accept="application/json")
        html = get(f"http://127.0.0.1:{port}/")
    assert answers["/hello.txt"][0] == 200 and answers["/hello.txt"][2] == b"hello\n"
    assert answers["/sub/"][2] == b"<p>sub</p>\n"
    assert answers["/missing"][0] == 404
    assert html[0] == 200 and b"hello.txt" in html[2]
    names = sorted(item["name"] for item in json.loads(listing[2]))
    assert names == ["data.json", "hello.txt", "sub/"]
    assert process.returncode == 0  # SIGTERM is a clean stop
    entries = [json.loads(line) for line in (tmp_path / "ours.log").read_text().splitlines()]
    access = [e for e in entries if str(e.get("logger")).startswith("http.log.access")]
    assert {"level", "ts", "logger", "msg", "request", "status"} <= set(access[0])
    if CADDY is None:
        return
    port = free_port()
    theirs = [CADDY, "file-server", "--browse", "--listen", f"127.0.0.1:{port}"]
    with running(theirs, port, site, tmp_path / "caddy.log"):
        reference = {p: get(f"http://127.0.0.1:{port}{p}") for p in paths}
        reference_listing = get(f"http://127.0.0.1:{port}/", accept="application/json")
    for path in paths:
        assert answers[path][0] == reference[path][0], path
        assert answers[path][2] == reference[path][2], path
        assert answers[path][1].get("Content-Type") == reference[path][1].get("Content-Type")
    assert names == sorted(item["name"] for item in json.loads(reference_listing[2]))


def test_reverse_proxy_and_respond(tmp_path: Path) -> None:
    """`respond` as the upstream, `reverse-proxy --from --to` in front of it."""
    upstream, front = free_port(), free_port()
    respond = [sys.executable, "-m", "caddytw", "respond", "--listen", f"127.0.0.1:{upstream}"]
    respond += ["--status", "201", "--header", "X-Up: yes", "--body", "from upstream"]
    proxy = [sys.executable, "-m", "caddytw", "reverse-proxy"]
    proxy += ["--from", f"http://127.0.0.1:{front}", "--to", f"127.0.0.1:{upstream}"]
    with (
        running(respond, upstream, tmp_path, tmp_path / "up.log"),
        running(proxy, front, tmp_path, tmp_path / "proxy.log"),
    ):
        status, headers, body = get(f"http://127.0.0.1:{front}/anything")
    assert (status, headers.get("X-Up"), body) == (201, "yes", b"from upstream")
    assert "Caddy proxying http://127.0.0.1:" in (tmp_path / "proxy.log").read_text()


def test_reverse_proxy_without_to_fails_like_caddy(tmp_path: Path) -> None:
    result = caddytw("reverse-proxy", "--from", ":0", cwd=tmp_path)
    assert result.returncode == 1 and "--to is required" in result.stderr


def test_start_reload_stop(tmp_path: Path) -> None:
    """`start` returns once serving; `reload` swaps the config; `stop` ends it."""
    port, admin = free_port(), free_port()
    caddyfile = tmp_path / "Caddyfile"

    def write(body: str) -> None:
        caddyfile.write_text(
            f"{{\n\tadmin 127.0.0.1:{admin}\n}}\nhttp://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n"
            f'\trespond "{body}"\n}}\n'
        )

    write("one")
    pidfile = tmp_path / "pid"
    started = caddytw("start", "--pidfile", str(pidfile), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        assert "Successfully started" in started.stdout
        assert get(f"http://127.0.0.1:{port}/")[2] == b"one"
        write("two")
        reloaded = caddytw("reload", cwd=tmp_path)
        assert reloaded.returncode == 0, reloaded.stderr
        assert get(f"http://127.0.0.1:{port}/")[2] == b"two"
        assert caddytw("stop", cwd=tmp_path).returncode == 0
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("server still running after stop")
    finally:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_start_with_a_bad_config_fails(tmp_path: Path) -> None:
    (tmp_path / "Caddyfile").write_text(":0 {\n\tbogus_directive\n}\n")
    result = caddytw("start", cwd=tmp_path)
    assert result.returncode == 1
    assert "bogus_directive" in result.stderr


def test_run_watch_reloads_the_changed_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "Caddyfile"
    config.write_text(
        f'{{\n\tadmin off\n}}\nhttp://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n\trespond "a"\n}}\n'
    )
    command = [sys.executable, "-m", "caddytw", "run", "--watch", "--config", str(config)]
    with running(command, port, tmp_path, tmp_path / "run.log"):
        assert get(f"http://127.0.0.1:{port}/")[2] == b"a"
        config.write_text(loopback_site(port, 'respond "bb"'))
        for _ in range(100):
            if get(f"http://127.0.0.1:{port}/")[2] == b"bb":
                break
            time.sleep(0.1)
        else:
            pytest.fail("config change not picked up")


def test_run_tells_systemd_it_is_ready(tmp_path: Path) -> None:
    """conf/caddytw.service is Type=notify: `run` must send READY=1 once listening."""
    import socket

    port = free_port()
    (tmp_path / "Caddyfile").write_text(
        f"{{\n\tadmin off\n}}\nhttp://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n}}\n"
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(30)
        env = server_env({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        process = subprocess.Popen(
            [sys.executable, "-m", "caddytw", "run", "--environ"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert sock.recv(100) == b"READY=1"
            assert wait_for_port(port, timeout=1)
            process.send_signal(signal.SIGTERM)
            assert sock.recv(100) == b"STOPPING=1"
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_twistd_logs_caddy_json_with_the_logger_option(tmp_path: Path) -> None:
    """`twistd -n --logger caddytw.cli.logs.caddy_log_observer caddy` logs Caddy's shape."""
    from tests.support.server import TWISTD

    port = free_port()
    (tmp_path / "Caddyfile").write_text(loopback_site(port, 'respond "x"'))
    command = [*TWISTD, "-n", "--pidfile=", "--logger", "caddytw.cli.logs.caddy_log_observer"]
    command += ["caddy", "-c", "Caddyfile", "--adapter", "caddyfile"]
    with running(command, port, tmp_path, tmp_path / "twistd.log"):
        pass
    lines = (tmp_path / "twistd.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert all({"level", "ts", "msg"} <= set(entry) for entry in entries)
    assert any(
        entry.get("logger") == "server.listeners" and "listening" in entry["msg"]
        for entry in entries
    )


def test_run_with_workers_serves_and_logs_json(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "Caddyfile").write_text(loopback_site(port, 'respond "w"'))
    command = [sys.executable, "-m", "caddytw", "run", "--workers", "2"]
    with running(command, port, tmp_path, tmp_path / "run.log") as process:
        assert get(f"http://127.0.0.1:{port}/")[2] == b"w"
    assert process.returncode == 0
    entries = [json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines()]
    messages = [entry["msg"] for entry in entries]
    assert any("worker 1 started" in m for m in messages)
    assert any("listening on" in m for m in messages)


def test_run_resume_starts_from_the_autosaved_config(tmp_path: Path) -> None:
    """Each config that runs goes to autosave.json (an admin API change too), and
    ``run --resume`` starts from it instead of ``--config``, as ``caddy run --resume``."""
    port, admin = free_port(), free_port()
    env = server_env({"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    config = tmp_path / "Caddyfile"
    config.write_text(
        f"{{\n\tadmin 127.0.0.1:{admin}\n}}\nhttp://127.0.0.1:{port} {{\n"
        f'\tbind 127.0.0.1\n\trespond "from file"\n}}\n'
    )
    saved = tmp_path / "xdg" / "caddytw" / "autosave.json"
    command = [sys.executable, "-m", "caddytw", "run", "--config", str(config)]

    def serve(extra: list[str]) -> subprocess.Popen[bytes]:
        with open(tmp_path / "run.log", "ab") as out:
            process = subprocess.Popen(
                command + extra, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        assert wait_for_port(port, timeout=20), (tmp_path / "run.log").read_text()
        return process

    def stop(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)

    def saved_config(unlike: object = None) -> object:
        """The autosaved config once written (in a thread of the server) and not
        ``unlike``."""
        for _ in range(200):
            with suppress(FileNotFoundError, ValueError):
                data = json.loads(saved.read_text())
                if data != unlike:
                    return data
            time.sleep(0.05)
        pytest.fail("autosave.json not written")

    process = serve([])
    try:
        assert get(f"http://127.0.0.1:{port}/")[2] == b"from file"
        first = saved_config()
        assert isinstance(first, dict)
        changed = json.loads(json.dumps(first))
        route = changed["apps"]["http"]["servers"]["srv0"]["routes"][0]
        route["handle"] = [{"handler": "static_response", "body": "from the API"}]
        request = urllib.request.Request(
            f"http://127.0.0.1:{admin}/load",
            data=json.dumps(changed).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert get(f"http://127.0.0.1:{port}/")[2] == b"from the API"
        assert saved_config(unlike=first) == changed
    finally:
        stop(process)
    assert saved.stat().st_mode & 0o077 == 0
    process = serve(["--resume"])
    try:
        assert get(f"http://127.0.0.1:{port}/")[2] == b"from the API"
    finally:
        stop(process)
    assert "ignoring --config" in (tmp_path / "run.log").read_text()
