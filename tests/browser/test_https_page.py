"""A page over HTTPS with a certificate from caddytw's internal CA, in Chromium.

Chromium does not trust the local root (its trust store is not ours to change), so the
plain browser must refuse the page and one started with ``--ignore-certificate-errors``
must show it. Python's ``ssl`` checks the chain against the local root meanwhile, which
also tells when the certificate has been issued.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser.chromium import Browser, console_errors, start_chromium
from tests.support.ports import free_port
from tests.support.server import REPO, ServerProcess, running_server
from tests.tls.client import client_context, handshake


@pytest.fixture
def lenient_browser(chromium_paths: tuple[str, str], tmp_path: Path) -> Iterator[Browser]:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = start_chromium(
        chromium_paths, tmp_path / "profile", downloads, ["--ignore-certificate-errors"]
    )
    try:
        yield Browser(driver, downloads)
    finally:
        driver.quit()


def https_site_config(https_port: int, http_port: int, storage: Path) -> dict[str, Any]:
    """``localhost`` serving the project page; no TLS config, so the internal issuer."""
    return {
        "admin": {"disabled": True},
        "storage": {"module": "file_system", "root": str(storage)},
        "apps": {
            "http": {
                "http_port": http_port,
                "https_port": https_port,
                "servers": {
                    "site": {
                        "listen": [f"127.0.0.1:{https_port}"],
                        "routes": [
                            {
                                "match": [{"host": ["localhost"]}],
                                "handle": [
                                    {"handler": "file_server", "root": str(REPO / "conf/site")}
                                ],
                            }
                        ],
                    }
                },
            }
        },
    }


def wait_for_certificate(server: ServerProcess, port: int, root: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            handshake(port, "localhost", client_context(str(root)))
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"no certificate for localhost:\n{server.log()}")
            time.sleep(0.2)


def test_internal_ca_page_loads_over_https(
    browser: Browser, lenient_browser: Browser, tmp_path: Path
) -> None:
    https_port, http_port = free_port(), free_port()
    storage = tmp_path / "storage"
    root = storage / "pki" / "authorities" / "local" / "root.crt"
    config = https_site_config(https_port, http_port, storage)
    url = f"https://localhost:{https_port}/"
    with running_server(config, tmp_path, [https_port, http_port]) as server:
        wait_for_certificate(server, https_port, root)

        browser.driver.get(url)
        assert browser.driver.title == "Privacy error"
        console_errors(browser.driver)

        driver = lenient_browser.driver
        driver.get(url)
        assert driver.title == "caddytw"
        assert driver.find_element(By.TAG_NAME, "h1").text == "caddytw"
        assert driver.execute_script("return location.protocol") == "https:"
        assert console_errors(driver) == []
        # The browsers keep idle TLS connections open: stopping must not wait on them
        # (stop() kills the server, SIGKILL, if SIGTERM has not ended it in 10 s).
        assert server.stop() == -signal.SIGTERM, server.log()
