"""Starting Debian's headless Chromium under chromedriver, and what tests ask of a page.

The machine has no network: the flags turn off every background fetch Chromium would
otherwise try (component updates, sync, safe browsing lists, QUIC probing), and each
browser gets its own throw-away profile.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver import Chrome as WebDriver

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,800",
]


# Debian's /usr/bin/chromium is a shell wrapper; chromedriver wants the binary itself.
@dataclass
class Browser:
    """A running Chromium and the folder its downloads land in."""

    driver: WebDriver
    downloads: Path


_BINARIES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def find_chromium() -> tuple[str, str] | None:
    """``(browser, driver)`` paths, or None when either is not installed."""
    browser = next((found for name in _BINARIES if (found := shutil.which(name)) is not None), None)
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver"
        if os.access("/usr/lib/chromium/chromedriver", os.X_OK)
        else None
    )
    if browser is None or driver is None:
        return None
    return browser, driver


def start_chromium(
    paths: tuple[str, str], profile: Path, downloads: Path, extra_flags: list[str] | None = None
) -> WebDriver:
    """A fresh headless Chromium with console logging on and downloads going to
    ``downloads`` without a prompt. The explicit driver path keeps selenium from looking
    for (and downloading) a driver of its own."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in [*FLAGS, f"--user-data-dir={profile}", *(extra_flags or [])]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(15)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    return driver


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """Console messages at error level since the last call (reading drains the log):
    script errors, ``console.error`` and failed resource loads."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: WebDriver, path: Path) -> dict[str, Any]:
    """Save the viewport as PNG at ``path``; return what tells a page from a blank one:
    the number of distinct colours and the share of pixels not of the commonest colour."""
    from PIL import Image

    data = driver.get_screenshot_as_png()
    path.write_bytes(data)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    background = max(count for count, _ in colours)
    total = image.width * image.height
    return {
        "size": image.size,
        "colours": len(colours),
        "inked": 1 - background / total,
    }
