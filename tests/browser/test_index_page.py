"""The project's own page (``conf/site/index.html``) as the default config serves it,
seen in a real Chromium."""

from __future__ import annotations

import json
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.browser.chromium import Browser, console_errors, screenshot
from tests.support.ports import free_port
from tests.support.server import REPO, running_server


def default_config(port: int) -> dict[str, object]:
    """``conf/caddy.json`` on a free port, admin off so runs never collide on :2019."""
    config = json.loads((REPO / "conf" / "caddy.json").read_text())
    config["apps"]["http"]["servers"]["srv0"]["listen"] = [f"127.0.0.1:{port}"]
    config["admin"] = {"disabled": True}
    return config


def test_index_page_renders(browser: Browser, tmp_path: Path) -> None:
    port = free_port()
    driver = browser.driver
    with running_server(default_config(port), tmp_path, [port], cwd=REPO):
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.title == "caddytw"
        assert driver.find_element(By.TAG_NAME, "h1").text == "caddytw"
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "A Caddy-compatible web server built on Twisted" in text
        assert "file_server is answering from conf/site/" in text
        shot = screenshot(driver, tmp_path / "index.png")
        errors = console_errors(driver)

        driver.get(f"http://127.0.0.1:{port}/health")
        assert driver.find_element(By.TAG_NAME, "body").text == "OK"

    assert errors == []
    assert shot["colours"] > 10, shot  # text is anti-aliased: many shades
    assert shot["inked"] > 0.001, shot
