"""HTTP/2 throughput of caddytw: large-file MB/s (h2c and TLS h2, curl and h2load) and
1 KiB req/s (h2load), with HTTP/1.1 rows for comparison.

    PYTHONPATH=. python bench/h2_throughput.py [--size-mib 256] [--rounds 3] [--caddy]

One caddytw process serves a ``file_server`` root on two listeners: cleartext with
``h2c`` and TLS (ALPN h2/http1.1, certificate from the test CA). Each row is the median
of ``--rounds`` runs. ``--caddy`` adds the same rows for Debian's Caddy. Prints Markdown;
not run in CI. Used to measure ``caddytw.wire.h2`` before and after its tuning.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.configs import plain_and_tls  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.server import start_server  # noqa: E402
from tests.tls.pki import TestCA  # noqa: E402


def make_config(root: Path, cert: Path, key: Path, plain: int, tls: int) -> dict[str, Any]:
    routes = [{"handle": [{"handler": "file_server", "root": str(root)}]}]
    return plain_and_tls(
        plain, tls, routes, cert, key, root.parent / "storage", tls_protocols=["h1", "h2"]
    )


def curl_mbps(url: str, *flags: str) -> float:
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download}", *flags, url],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return float(out) / 1e6


def h2load(url: str, *flags: str) -> str:
    return subprocess.run(
        ["h2load", *flags, url], capture_output=True, text=True, timeout=300, check=True
    ).stdout


def h2load_mbps(url: str, *flags: str) -> float:
    out = h2load(url, "-n1", "-c1", *flags)
    match = re.search(r"finished in ([\d.]+)(m?s), [\d.]+ req/s, ([\d.]+)(\w+)/s", out)
    assert match, out
    seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    done = re.search(r"traffic: ([\d.]+)(\w+) \((\d+)\) total", out)
    assert done, out
    return int(done.group(3)) / seconds / 1e6


def h2load_rps(url: str, *flags: str) -> float:
    out = h2load(url, "-n20000", "-c4", "-m10", *flags)
    match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    failed = re.search(r"(\d+) failed", out)
    assert match and failed and failed.group(1) == "0", out
    return float(match.group(1))


def cases(plain: int, tls: int, cafile: str, big: str) -> dict[str, Callable[[], float]]:
    h = f"http://127.0.0.1:{plain}"
    s = f"https://site.test:{tls}"
    resolve = ["--resolve", f"site.test:{tls}:127.0.0.1", "--cacert", cafile]
    window = ["-w", "30", "-W", "30"]  # h2load's windows: 2**30, as curl's
    return {
        f"{big} h1 curl MB/s": lambda: curl_mbps(f"{h}/{big}", "--http1.1"),
        f"{big} h2c curl MB/s": lambda: curl_mbps(f"{h}/{big}", "--http2-prior-knowledge"),
        f"{big} h2c h2load MB/s": lambda: h2load_mbps(f"{h}/{big}", *window),
        f"{big} tls h1 curl MB/s": lambda: curl_mbps(f"{s}/{big}", "--http1.1", *resolve),
        f"{big} tls h2 curl MB/s": lambda: curl_mbps(f"{s}/{big}", "--http2", *resolve),
        f"{big} tls h2 h2load MB/s": lambda: h2load_mbps(f"https://127.0.0.1:{tls}/{big}", *window),
        "1 KiB h2c h2load req/s": lambda: h2load_rps(f"{h}/small.txt"),
        "1 KiB tls h2 h2load req/s": lambda: h2load_rps(f"https://127.0.0.1:{tls}/small.txt"),
    }


def measure(plain: int, tls: int, cafile: str, big: str, rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    table = cases(plain, tls, cafile, big)
    for _ in range(rounds):
        for label, case in table.items():
            results.setdefault(label, []).append(case())
    return {label: statistics.median(values) for label, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--caddy", action="store_true", help="also measure Debian's Caddy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        big = f"big-{args.size_mib}m.bin"
        with open(root / big, "wb") as f:
            chunk = bytes(range(256)) * 4096
            for _ in range(args.size_mib):
                f.write(chunk)
        (root / "small.txt").write_bytes(b"x" * 1024)
        ca = TestCA()
        cert, key, _ = ca.write_leaf(work, "site", ["site.test", "127.0.0.1"])
        cafile = str(ca.write(work / "ca.pem"))
        columns: dict[str, dict[str, float]] = {}
        plain, tls = free_port(), free_port()
        config = make_config(root, cert, key, plain, tls)
        server = start_server(config, work, [plain, tls])
        try:
            columns["caddytw"] = measure(plain, tls, cafile, big, args.rounds)
        finally:
            server.stop()
        if args.caddy and shutil.which("caddy"):
            plain, tls = free_port(), free_port()
            config = make_config(root, cert, key, plain, tls)
            path = work / "caddy.json"
            path.write_text(json.dumps(config))
            caddy = subprocess.Popen(
                ["caddy", "run", "--config", str(path)],
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={"HOME": str(work), "PATH": "/usr/bin:/bin", "XDG_DATA_HOME": str(work)},
            )
            try:
                wait_for_port(plain, timeout=15)
                wait_for_port(tls, timeout=15)
                columns["caddy"] = measure(plain, tls, cafile, big, args.rounds)
            finally:
                caddy.terminate()
                caddy.wait(timeout=15)
        names = list(columns)
        print("| case | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for label in columns[names[0]]:
            cells = " | ".join(f"{columns[n][label]:.1f}" for n in names)
            print(f"| {label} | {cells} |")


if __name__ == "__main__":
    main()
