"""One headless Chromium shared by the browser tests (starting one costs a second or two).

Tests are skipped only when Chromium or chromedriver is not installed; selenium and
Pillow come with the project's ``test`` extra, so a missing one is an error, not a skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.chromium import Browser, console_errors, find_chromium, start_chromium


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    paths = find_chromium()
    if paths is None:
        pytest.skip("chromium and chromium-driver are not installed")
    return paths


@pytest.fixture(scope="session")
def shared_browser(
    chromium_paths: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    base = tmp_path_factory.mktemp("chromium")
    downloads = base / "downloads"
    downloads.mkdir()
    driver = start_chromium(chromium_paths, base / "profile", downloads)
    try:
        yield Browser(driver, downloads)
    finally:
        driver.quit()


@pytest.fixture
def browser(shared_browser: Browser) -> Browser:
    """The shared browser on a blank page with its console log drained, so each test
    sees only its own errors."""
    shared_browser.driver.get("about:blank")
    console_errors(shared_browser.driver)
    return shared_browser
