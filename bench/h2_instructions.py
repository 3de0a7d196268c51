"""Instructions per HTTP/2 request (valgrind callgrind's ``Ir``): caddytw's ``file_server``
answering a 1 KiB file over TLS + h2 and over h2c (``h2load -c10 -m10``), optionally
next to another checkout.

    PYTHONPATH=. python bench/h2_instructions.py [--requests 3000] [--compare /other/tree]

Why: on a machine shared with other work, CPU time per request moves by 10-20% from run
to run, which hides the few-percent steps HTTP/2 work is made of. Instructions retired
by the server do not depend on what else runs (only on how requests batch into reads,
which ``-m10`` keeps similar). The server runs under callgrind (about 50x slower, so
the load is small); its counters are zeroed after a warm-up and dumped after the
measured ``h2load`` run, so start-up, TLS handshakes of the warm-up and shutdown are
left out (the measured run's 10 TLS handshakes are in: about 13k per request at the
default count, 40k at 1000 requests). Needs ``valgrind`` and ``h2load``; not run in CI.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from h2_floor import h2load  # (pinned to the client CPUs, all requests must succeed)

REPO = common.REPO
sys.path.insert(0, str(REPO))

from tests.support.configs import plain_and_tls  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.tls.pki import TestCA  # noqa: E402

WARM_UP = 300
#: Seconds the server may take to listen under callgrind.
START_TIMEOUT = 300


def warm_up(url: str) -> None:
    """A first ``h2load`` run, not measured; tried again once: a run against a server
    that had just started under callgrind once failed every connection (seen once in
    a dozen runs, cause unknown), which is no reason to lose the measurement."""
    try:
        h2load(url, WARM_UP)
    except RuntimeError as failed:
        print(f"warm-up failed, trying again: {failed}"[:500], file=sys.stderr)
        time.sleep(5)
        h2load(url, WARM_UP)


def measure(tree: Path, requests: int) -> dict[str, float]:
    """Ir per request for ``tree``'s caddytw, TLS then h2c, in one server process."""
    work = Path(tempfile.mkdtemp(prefix="h2-instructions-"))
    root = work / "root"
    root.mkdir()
    (root / "1k.bin").write_bytes(b"x" * 1024)
    cert, key, _ = TestCA().write_leaf(work, "site", ["127.0.0.1"])
    plain, tls = free_port(), free_port()
    routes = [{"handle": [{"handler": "file_server", "root": str(root)}]}]
    config = plain_and_tls(plain, tls, routes, cert, key, work / "storage")
    (work / "caddy.json").write_text(json.dumps(config))
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={work}/callgrind.%p",
        sys.executable,
        "-c",
        "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()",
        "-n",
        "--pidfile=",
        "caddy",
        "-c",
        str(work / "caddy.json"),
    ]
    env = dict(os.environ, PYTHONPATH=str(tree), XDG_CONFIG_HOME=str(work / "config"))
    with open(work / "server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    results: dict[str, float] = {}
    try:
        if not (wait_for_port(tls, START_TIMEOUT) and wait_for_port(plain, 60)):
            raise RuntimeError((work / "server.log").read_text()[-2000:])
        for name, url in (
            ("TLS + h2", f"https://127.0.0.1:{tls}/1k.bin"),
            ("h2c", f"http://127.0.0.1:{plain}/1k.bin"),
        ):
            warm_up(url)
            control = ["callgrind_control"]
            subprocess.run([*control, "-z", str(server.pid)], check=True, capture_output=True)
            done = h2load(url, requests)
            subprocess.run([*control, "-d", str(server.pid)], check=True, capture_output=True)
            time.sleep(1)
            dumps = sorted(glob.glob(f"{work}/callgrind.{server.pid}.*"), key=os.path.getmtime)
            summary = re.search(r"^summary:\s+(\d+)", Path(dumps[-1]).read_text(), re.M)
            if summary is None:
                raise RuntimeError(f"no summary in {dumps[-1]}")
            results[name] = int(summary.group(1)) / done
    finally:
        server.terminate()
        server.wait(120)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--compare", type=Path, help="another caddytw checkout, measured too")
    args = parser.parse_args()
    missing = [
        tool for tool in ("valgrind", "callgrind_control", "h2load") if not common.have(tool)
    ]
    if missing:
        print(f"(not measured: {', '.join(missing)} not installed)")
        return
    trees = {"caddytw": REPO}
    if args.compare is not None:
        trees[f"caddytw at {args.compare}"] = args.compare.resolve()
    measured = {label: measure(tree, args.requests) for label, tree in trees.items()}
    print(f"1 KiB file, h2load -c10 -m10 -n{args.requests}; server under callgrind.\n")
    rows = [
        [label, *(f"{values[case]:,.0f}" for case in ("TLS + h2", "h2c"))]
        for label, values in measured.items()
    ]
    print(common.markdown_table(["server", "TLS + h2 Ir/req", "h2c Ir/req"], rows))


if __name__ == "__main__":
    main()
