"""HTTP/2 over TLS (ALPN) and cleartext h2c with prior knowledge, with curl and h2load."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.server import running_server
from tests.tls.conftest import echo_routes, tls_config
from tests.tls.pki import TestCA

BIG = 3 * 1024 * 1024 + 17  # above every HTTP/2 flow-control window


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30
    )


def h2load(*args: str) -> str:
    result = subprocess.run(["h2load", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def h2load_counts(output: str) -> tuple[int, int, int]:
    """(succeeded requests, failed, 2xx responses) from h2load's summary."""
    requests = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", output
    )
    codes = re.search(r"status codes: (\d+) 2xx", output)
    assert requests and codes, output
    return int(requests.group(1)), int(requests.group(2)), int(codes.group(1))


def file_routes(root: Path) -> list[dict]:
    """A body of BIG bytes at /big, the echo answer elsewhere (no file_server needed)."""
    big = "x" * BIG
    return [
        {"match": [{"path": ["/big"]}], "handle": [{"handler": "static_response", "body": big}]},
        *echo_routes(),
    ]


@pytest.fixture
def tls_server(tmp_path: Path, ca: TestCA):
    cert, key, _ = ca.write_leaf(tmp_path, "site", ["site.test"])
    port = free_port()
    config = tls_config(
        port,
        free_port(),
        tmp_path / "storage",
        load_files=[{"certificate": str(cert), "key": str(key)}],
        routes=file_routes(tmp_path),
    )
    cafile = str(ca.write(tmp_path / "ca.pem"))
    with running_server(config, tmp_path, [port]) as server:
        yield server, port, cafile


def test_curl_http2_over_tls(tls_server):
    _, port, cafile = tls_server
    url = f"https://site.test:{port}/x"
    resolve = f"site.test:{port}:127.0.0.1"
    result = curl("--http2", "--cacert", cafile, "--resolve", resolve, "-D", "-", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/2 200")
    assert result.stdout.endswith("site.test HTTP/2.0 https")
    # HTTP/1.1 clients still work on the same listener.
    result = curl("--http1.1", "--cacert", cafile, "--resolve", resolve, url)
    assert result.stdout == "site.test HTTP/1.1 https"


def test_large_body_flow_control(tls_server, tmp_path: Path):
    _, port, cafile = tls_server
    out = tmp_path / "big.out"
    resolve = f"site.test:{port}:127.0.0.1"
    result = curl(
        "--http2",
        "--cacert",
        cafile,
        "--resolve",
        resolve,
        "-o",
        str(out),
        "-w",
        "%{http_version} %{size_download}",
        f"https://site.test:{port}/big",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"2 {BIG}"
    assert out.read_bytes() == b"x" * BIG


def test_h2load_many_concurrent_streams(tls_server):
    _, port, _ = tls_server
    output = h2load("-n", "400", "-c", "4", "-m", "50", f"https://127.0.0.1:{port}/x")
    assert "h2" in output  # ALPN picked HTTP/2
    assert h2load_counts(output) == (400, 0, 400)
    big = h2load("-n", "8", "-c", "2", "-m", "4", f"https://127.0.0.1:{port}/big")
    assert h2load_counts(big) == (8, 0, 8)


def h2c_config(port: int, protocols: list[str]) -> dict:
    return {
        "apps": {
            "http": {
                "servers": {
                    "plain": {
                        "listen": [f"127.0.0.1:{port}"],
                        "routes": file_routes(Path(".")),
                        "protocols": protocols,
                    }
                }
            }
        }
    }


def test_h2c_prior_knowledge_and_http1_on_one_port(tmp_path: Path):
    port = free_port()
    with running_server(h2c_config(port, ["h1", "h2", "h2c"]), tmp_path, [port]):
        url = f"http://127.0.0.1:{port}/x"
        result = curl("--http2-prior-knowledge", "-D", "-", url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("HTTP/2 200")
        assert result.stdout.endswith("127.0.0.1 HTTP/2.0 http")
        assert curl("--http1.1", url).stdout == "127.0.0.1 HTTP/1.1 http"
        # A request line that starts like the preface ("P...") is still HTTP/1.1.
        assert curl("--http1.1", "-X", "PRI", url).stdout == "127.0.0.1 HTTP/1.1 http"
        output = h2load("-n", "300", "-c", "3", "-m", "20", url)
        assert h2load_counts(output) == (300, 0, 300)
        big = curl(
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            f"http://127.0.0.1:{port}/big",
        )
        assert big.stdout == str(BIG)


def test_no_h2c_unless_configured(tmp_path: Path):
    port = free_port()
    with running_server(h2c_config(port, ["h1", "h2"]), tmp_path, [port]):
        result = curl("--http2-prior-knowledge", f"http://127.0.0.1:{port}/x")
        assert result.returncode != 0 or "HTTP/2" not in result.stdout
