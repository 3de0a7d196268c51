"""Debian's php-fpm, started by the tests: one pool on TCP, one on a unix socket,
serving a small docroot of PHP apps (``$_SERVER`` as JSON, a POST echo, a pretty-URL
front controller, a large streamed response, a script that writes to stderr)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_for_port


def php_fpm_binary() -> str | None:
    found = shutil.which("php-fpm") or shutil.which("php-fpm8.2")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/sbin/php-fpm*"))
    return candidates[-1] if candidates else None


APPS = {
    "info.php": "<?php\nheader('Content-Type: application/json');\n"
    "$s = $_SERVER; ksort($s); echo json_encode($s);\n",
    "echo.php": "<?php\nheader('Content-Type: text/plain');\n"
    "header('X-Method: ' . $_SERVER['REQUEST_METHOD']);\n"
    "header('X-Content-Type: ' . ($_SERVER['CONTENT_TYPE'] ?? ''));\n"
    "header('X-Post: ' . json_encode($_POST));\n"
    "echo file_get_contents('php://input');\n",
    "index.php": "<?php\nheader('Content-Type: application/json');\n"
    "echo json_encode(['front' => true, 'uri' => $_SERVER['REQUEST_URI'],"
    " 'script' => $_SERVER['SCRIPT_NAME'], 'path_info' => $_SERVER['PATH_INFO'] ?? null,"
    " 'query' => $_GET]);\n",
    "status.php": "<?php\nhttp_response_code(418);\nheader('X-Teapot: yes');\n"
    "header('Location: /elsewhere', false);\necho 'short and stout';\n",
    "redirect.php": "<?php\nheader('Location: /index.php?from=redirect');\n",
    "big.php": "<?php\nheader('Content-Type: application/octet-stream');\n"
    "$n = intval($_GET['mb'] ?? 50); $chunk = str_repeat('x', 1 << 20);\n"
    "for ($i = 0; $i < $n; $i++) { echo $chunk; flush(); }\n",
    "stderr.php": "<?php\nerror_log('fastcgi-stderr-marker ' . ($_GET['tag'] ?? ''));\n"
    "echo 'logged';\n",
}


@dataclass
class PhpFpm:
    process: subprocess.Popen[bytes]
    port: int
    socket: Path
    docroot: Path
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_php_fpm(binary: str, workdir: Path) -> PhpFpm:
    docroot = workdir / "docroot"
    (docroot / "sub").mkdir(parents=True)
    for name, text in APPS.items():
        (docroot / name).write_text(text)
    (docroot / "sub" / "info.php").write_text(APPS["info.php"])
    (docroot / "hello.txt").write_text("static file\n")
    port = free_port()
    sock = workdir / "php-fpm.sock"
    log = workdir / "php-fpm.log"
    pools = []
    for name, listen in (("tcp", f"127.0.0.1:{port}"), ("unix", str(sock))):
        pools.append(
            f"[{name}]\nlisten = {listen}\nlisten.mode = 0666\npm = static\n"
            "pm.max_children = 2\ncatch_workers_output = yes\n"
            + ("user = root\ngroup = root\n" if os.geteuid() == 0 else "")
        )
    conf = workdir / "php-fpm.conf"
    conf.write_text(
        f"[global]\nerror_log = {log}\ndaemonize = no\npid = {workdir / 'php-fpm.pid'}\n\n"
        + "\n".join(pools)
    )
    command = [binary, "-F", "-y", str(conf), "-p", str(workdir), "-n"]
    command += ["-d", "fastcgi.logging=1", "-d", "output_buffering=0"]
    if os.geteuid() == 0:
        command.append("-R")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    fpm = PhpFpm(process, port, sock, docroot, log)
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not wait_for_port(port) or not sock.exists():
        fpm.stop()
        raise RuntimeError(f"php-fpm did not start:\n{log.read_text(errors='replace')}")
    return fpm
