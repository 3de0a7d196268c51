"""``file_server``'s HTML directory listing (``browse``) as a person sees and uses it in
Chromium: rendered rows, folder and parent links, sort headers, file links, the JSON form."""

from __future__ import annotations

import calendar
import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.chromium import Browser, console_errors, screenshot
from tests.support.ports import free_port
from tests.support.server import ServerProcess, running_server, simple_config

HELLO = "Hello from caddytw!\nSecond line.\n"
UNICODE_DIR = "photos 2024 & ü"


def _stamp(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("inside.txt", "zipped " * 400)
    return buffer.getvalue()


#: name -> (content or None for a directory, modification time UTC); sizes and times
#: are all different so that each sort order is a different permutation.
TREE: dict[str, tuple[bytes | None, str]] = {
    "docs": (None, "2020-05-01 08:00:00"),
    UNICODE_DIR: (None, "2024-02-29 23:59:59"),
    "hello.txt": (HELLO.encode(), "2021-01-02 03:04:05"),
    "Notes.md": (b"# notes\n" + b"n" * 1528, "2023-07-14 12:00:00"),
    "archive.zip": (_archive(), "2022-11-30 18:30:00"),
}


def _build_tree(root: Path) -> None:
    (root / "docs" / "guide").mkdir(parents=True)
    (root / "docs" / "guide.txt").write_text("the guide\n")
    (root / UNICODE_DIR).mkdir()
    (root / UNICODE_DIR / "beach.txt").write_text("sand and sea\n")
    for name, (content, _) in TREE.items():
        if content is not None:
            (root / name).write_bytes(content)
    for name, (_, when) in TREE.items():
        os.utime(root / name, (_stamp(when), _stamp(when)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("listing")
    root = base / "root"
    root.mkdir()
    _build_tree(root)
    port = free_port()
    routes = [{"handle": [{"handler": "file_server", "root": str(root), "browse": {}}]}]
    with running_server(simple_config(port, routes), base, [port]) as server:
        yield server


def rows(driver: WebDriver) -> list[list[str]]:
    """The listing's rows as shown: [name, size, modified] per row, ``..`` included."""
    return [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")[1:]]
        for row in driver.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def names(driver: WebDriver) -> list[str]:
    return [row[0] for row in rows(driver)]


def click(driver: WebDriver, text: str) -> None:
    """Click the link showing ``text`` and wait for the next page to replace this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.LINK_TEXT, text).click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "html") != old)


def path_of(driver: WebDriver) -> str:
    parts = urlsplit(driver.current_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_listing_shows_what_is_in_the_folder(
    browser: Browser, site: ServerProcess, tmp_path: Path
) -> None:
    driver = browser.driver
    driver.get(site.url + "/")
    assert driver.title == "/"
    assert driver.find_element(By.CSS_SELECTOR, ".summary").text == "2 directories, 3 files"
    assert [h.text for h in driver.find_elements(By.CSS_SELECTOR, "thead th a")] == [
        "Name \u2191",
        "Size",
        "Modified",
    ]
    assert rows(driver) == [
        ["docs/", "\u2014", "2020-05-01 08:00:00 UTC"],
        [f"{UNICODE_DIR}/", "\u2014", "2024-02-29 23:59:59 UTC"],
        ["archive.zip", "2.8 KiB", "2022-11-30 18:30:00 UTC"],
        ["hello.txt", "33 B", "2021-01-02 03:04:05 UTC"],
        ["Notes.md", "1.5 KiB", "2023-07-14 12:00:00 UTC"],
    ]
    shot = screenshot(driver, tmp_path / "listing.png")
    assert console_errors(driver) == []
    assert shot["colours"] > 10, shot
    assert shot["inked"] > 0.005, shot


def test_folder_links_go_down_and_parent_links_go_up(browser: Browser, site: ServerProcess) -> None:
    driver = browser.driver
    driver.get(site.url + "/")
    click(driver, "docs/")
    assert path_of(driver) == "/docs/"
    assert driver.title == "/docs/"
    assert driver.find_element(By.TAG_NAME, "h1").text == "~/docs"
    assert names(driver) == ["..", "guide/", "guide.txt"]

    click(driver, "guide/")
    assert path_of(driver) == "/docs/guide/"
    assert names(driver) == [".."]
    assert driver.find_element(By.CSS_SELECTOR, ".summary").text == "0 directories, 0 files"

    click(driver, "..")
    assert path_of(driver) == "/docs/"
    click(driver, "~")  # the breadcrumb back to the top
    assert path_of(driver) == "/"
    assert ".." not in names(driver)

    # A name needing escapes: the link works and the page shows it decoded.
    click(driver, f"{UNICODE_DIR}/")
    assert path_of(driver) == "/photos%202024%20&%20%C3%BC/"
    assert driver.find_element(By.TAG_NAME, "h1").text == f"~/{UNICODE_DIR}"
    assert names(driver) == ["..", "beach.txt"]
    assert console_errors(driver) == []
    # (Not checked past here: for a plain text file Chromium asks for /favicon.ico.)
    click(driver, "beach.txt")
    assert driver.find_element(By.TAG_NAME, "body").text == "sand and sea"


def test_sort_headers_reorder_the_rows(browser: Browser, site: ServerProcess) -> None:
    driver = browser.driver
    driver.get(site.url + "/")
    dirs = ["docs/", f"{UNICODE_DIR}/"]

    click(driver, "Size")
    assert path_of(driver) == "/?sort=size&order=asc"
    assert names(driver) == [*dirs, "hello.txt", "Notes.md", "archive.zip"]
    click(driver, "Size \u2191")
    assert path_of(driver) == "/?sort=size&order=desc"
    assert names(driver) == ["archive.zip", "Notes.md", "hello.txt", *reversed(dirs)]

    click(driver, "Modified")
    assert names(driver) == ["docs/", "hello.txt", "archive.zip", "Notes.md", f"{UNICODE_DIR}/"]
    click(driver, "Modified \u2191")
    assert (
        names(driver) == ["docs/", "hello.txt", "archive.zip", "Notes.md", f"{UNICODE_DIR}/"][::-1]
    )

    click(driver, "Name")
    assert path_of(driver) == "/?sort=name&order=asc"
    assert names(driver) == ["archive.zip", "docs/", "hello.txt", "Notes.md", f"{UNICODE_DIR}/"]
    click(driver, "Name \u2191")
    assert path_of(driver) == "/?sort=name&order=desc"
    assert names(driver) == [f"{UNICODE_DIR}/", "Notes.md", "hello.txt", "docs/", "archive.zip"]
    assert console_errors(driver) == []


def test_file_links_open_text_and_download_archives(browser: Browser, site: ServerProcess) -> None:
    driver = browser.driver
    driver.get(site.url + "/")
    assert console_errors(driver) == []
    click(driver, "hello.txt")
    assert path_of(driver) == "/hello.txt"
    assert driver.find_element(By.TAG_NAME, "pre").text + "\n" == HELLO

    driver.back()
    console_errors(driver)  # drop the text page's /favicon.ico 404
    driver.find_element(By.LINK_TEXT, "archive.zip").click()
    saved = browser.downloads / "archive.zip"
    WebDriverWait(driver, 10).until(lambda _: saved.exists())
    assert saved.read_bytes() == TREE["archive.zip"][0]
    assert path_of(driver) == "/"  # a download leaves the listing in place
    assert console_errors(driver) == []


def test_json_listing_from_the_page(browser: Browser, site: ServerProcess) -> None:
    """A script on the listing asks the same URL for JSON, as Caddy's ``Accept`` switch."""
    driver = browser.driver
    driver.get(site.url + "/docs/")
    listing = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('./?sort=name&order=desc', {headers: {Accept: 'application/json'}})"
        ".then(r => r.json().then(body => done([r.headers.get('content-type'), body])))"
        ".catch(e => done(String(e)));"
    )
    content_type, entries = listing
    assert content_type == "application/json; charset=utf-8"
    assert [(e["name"], e["url"], e["is_dir"]) for e in entries] == [
        ("guide/", "./guide/", True),
        ("guide.txt", "./guide.txt", False),
    ]
    assert entries[1]["size"] == len("the guide\n")
    assert console_errors(driver) == []
