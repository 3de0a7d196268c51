"""The ``file_sync_ui`` file manager in a real Chromium against a real ``twistd`` with a
``file_sync`` API: browsing, sorting, uploads through the file input, downloads, new
folder / rename / delete, conflict copies, search, live updates over the event
WebSocket, 10,000 entries, a phone-sized window, the token prompt and read-only tokens.

One server per access mode and one browser for the module (the session's); each test
leaves the folder as it found it or works on its own names.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.chromium import Browser, console_errors, screenshot
from tests.support.ports import free_port
from tests.support.server import REPO, ServerProcess, running_server, simple_config

WRITER = "writer-token-" + "w" * 20
VIEWER = "viewer-token-" + "v" * 20
CONFLICT = "notes.sync-conflict-20240101-120000-laptop1.txt"
#: The pair the "keep this version" test settles (in its own folder, so the top folder
#: every other test looks at stays as it is).
KEPT = "plan.sync-conflict-20240202-101010-phone12.md"
MANY = 10_000


@dataclass
class Site:
    server: ServerProcess
    root: Path

    @property
    def url(self) -> str:
        return self.server.url + "/"

    def api(
        self, method: str, target: str, body: bytes | None = None, token: str | None = None
    ) -> tuple[int, bytes]:
        """A request to the API as another program would make it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.ports[0], timeout=10)
        headers = {"X-Requested-With": "test", "Content-Type": "application/octet-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        connection.request(method, "/api/" + target, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data


LIMIT = 1_500_000


def routes(root: Path, **sync: Any) -> list[dict[str, Any]]:
    """The seed's config (the API at /api/*, the page everywhere else), with a body
    limit in front of the API."""
    return [
        {
            "match": [{"path": ["/api/*"]}],
            "handle": [
                {"handler": "request_body", "max_size": LIMIT},
                {"handler": "file_sync", "root": str(root), "enable_upload": True, **sync},
            ],
        },
        {"handle": [{"handler": "file_sync_ui", "api": "/api"}]},
    ]


def fill(root: Path) -> None:
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "guide.txt").write_text("the guide\n")
    (root / "empty").mkdir()
    (root / "inbox").mkdir()  # where the upload test puts what it uploads
    (root / "hello.txt").write_text("Hello from the server\n")
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "notes.txt").write_text("server version\n")
    (root / CONFLICT).write_text("the laptop's own version\n")
    (root / "versions").mkdir()
    (root / "versions" / "plan.md").write_text("# plan, as the server had it\n")
    (root / "versions" / KEPT).write_text("# plan, as the phone wrote it\n")
    many = root / "many"
    many.mkdir()
    for number in range(MANY):
        (many / f"item-{number:05d}.txt").write_bytes(b"")
    old = time.time() - 3 * 86400
    for name, age in (("docs", 0), ("hello.txt", 100), ("big.bin", 200), ("notes.txt", 300)):
        os.utime(root / name, (old - age, old - age))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("sync-ui")
    root = base / "data"
    fill(root)
    port = free_port()
    env = {"XDG_DATA_HOME": str(base / "data-home")}  # where the server keeps its index
    with running_server(simple_config(port, routes(root)), base, [port], env=env) as server:
        yield Site(server, root)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("sync-ui-tokens")
    root = base / "data"
    (root / "shared").mkdir(parents=True)
    (root / "shared" / "plan.txt").write_text("plan\n")
    clients = [
        {"id": "writer", "token": WRITER},
        {"id": "viewer", "token": VIEWER, "read_only": True},
    ]
    port = free_port()
    config = simple_config(port, routes(root, clients=clients))
    env = {"XDG_DATA_HOME": str(base / "data-home")}
    with running_server(config, base, [port], env=env) as srv:
        yield Site(srv, root)


# -- what the page shows ---------------------------------------------------------------


def wait(driver: WebDriver, until: Callable[[WebDriver], Any], timeout: float = 10) -> Any:
    return WebDriverWait(driver, timeout).until(until)


def names(driver: WebDriver) -> list[str]:
    """The names of the rows built, top to bottom (read in one go: rows come and go)."""
    return list(
        driver.execute_script(
            "return [...document.querySelectorAll('#list .row')]"
            ".sort((a, b) => a.dataset.index - b.dataset.index)"
            ".map((row) => row.querySelector('a.name').textContent)"
        )
    )


_ROW_JS = (
    "const row = [...document.querySelectorAll('#list .row')]"
    ".find((r) => r.querySelector('a.name').textContent === arguments[0]);"
)


def cell(driver: WebDriver, name: str, selector: str) -> str:
    """The text of ``selector`` in the row named ``name`` (read in one go)."""
    return str(
        driver.execute_script(
            _ROW_JS + "return row.querySelector(arguments[1]).textContent;", name, selector
        )
    )


def row_classes(driver: WebDriver, name: str) -> list[str]:
    return list(driver.execute_script(_ROW_JS + "return [...row.classList];", name))


def click_name(driver: WebDriver, name: str) -> None:
    """Click the name in a row, as a person opening it would."""
    driver.execute_script(_ROW_JS + "row.querySelector('a.name').click();", name)


def has_row(name: str) -> Callable[[WebDriver], bool]:
    return lambda d: name in names(d)


def lacks_row(name: str) -> Callable[[WebDriver], bool]:
    return lambda d: name not in names(d)


def message(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "message").text)


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def select(driver: WebDriver, name: str) -> None:
    """Click a row (not its name link): it becomes the active row the toolbar acts on."""
    driver.execute_script(
        _ROW_JS + "row.dispatchEvent(new MouseEvent('click', {bubbles: true}));", name
    )
    wait(driver, lambda d: {"active", "marked"} <= set(row_classes(d, name)))


def dialog_answer(driver: WebDriver, text: str | None = None, closes: bool = True) -> None:
    """Type ``text`` into the open dialog's field (if given) and press its OK button."""
    wait(driver, lambda d: d.find_element(By.ID, "dialog").get_attribute("open") is not None)
    if text is not None:
        field = driver.find_element(By.ID, "dialog-input")
        field.clear()
        field.send_keys(text)
    driver.find_element(By.ID, "dialog-ok").click()
    if closes:
        wait(driver, lambda d: d.find_element(By.ID, "dialog").get_attribute("open") is None)


def no_console_errors(driver: WebDriver, allowed: tuple[str, ...] = ()) -> None:
    errors = [
        entry
        for entry in console_errors(driver)
        if not any(part in entry["message"] for part in allowed)
    ]
    assert errors == []


# -- browsing --------------------------------------------------------------------------


def test_browse_sort_and_go_into_a_folder_and_back(browser: Browser, site: Site) -> None:
    driver = browser.driver
    open_page(driver, site.url)
    assert driver.title == "Files"
    top = [
        "docs",
        "empty",
        "inbox",
        "many",
        "versions",
        "big.bin",
        "hello.txt",
        CONFLICT,
        "notes.txt",
    ]
    assert names(driver) == top
    assert cell(driver, "big.bin", ".size") == "293 KB"
    assert cell(driver, "hello.txt", ".size") == "22 B"
    assert cell(driver, "docs", ".size") == "\u2014"
    assert "-" in cell(driver, "hello.txt", ".date")

    size = driver.find_element(By.CSS_SELECTOR, ".columns [data-sort=size]")
    size.click()  # folders first, then smallest first
    assert names(driver)[5:] == ["notes.txt", "hello.txt", CONFLICT, "big.bin"]
    size.click()
    assert names(driver)[5:] == ["big.bin", CONFLICT, "hello.txt", "notes.txt"]
    driver.find_element(By.CSS_SELECTOR, ".columns [data-sort=modified]").click()
    assert names(driver)[5:9] == ["notes.txt", "big.bin", "hello.txt", CONFLICT]
    driver.find_element(By.CSS_SELECTOR, ".columns [data-sort=name]").click()
    assert names(driver) == top

    click_name(driver, "docs")
    wait(driver, lambda d: names(d) == ["guide.txt"])
    assert driver.current_url.endswith("#/docs")
    crumbs = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#crumbs a")]
    assert crumbs == ["Files", "docs"]
    driver.back()
    wait(driver, lambda d: names(d) == top)
    driver.forward()
    wait(driver, lambda d: names(d) == ["guide.txt"])
    driver.find_element(By.LINK_TEXT, "Files").click()
    wait(driver, lambda d: names(d) == top)

    click_name(driver, "empty")
    wait(driver, lambda d: d.find_element(By.ID, "empty").is_displayed())
    assert driver.find_element(By.ID, "empty").text == "This folder is empty."
    no_console_errors(driver)


def test_keyboard_alone(browser: Browser, site: Site) -> None:
    """Tab into the list, arrows to move, Enter to open, Backspace to go up, / to search."""
    driver = browser.driver
    open_page(driver, site.url)
    listbox = driver.find_element(By.ID, "list")
    assert driver.switch_to.active_element == listbox  # focused on load
    listbox.send_keys(Keys.END)
    assert listbox.get_attribute("aria-activedescendant") == f"row-{len(names(driver)) - 1}"
    listbox.send_keys(Keys.HOME)
    listbox.send_keys(Keys.ENTER)  # docs
    wait(driver, lambda d: names(d) == ["guide.txt"])
    driver.switch_to.active_element.send_keys(Keys.BACKSPACE)
    wait(driver, lambda d: "hello.txt" in names(d))
    driver.switch_to.active_element.send_keys("/")
    assert driver.switch_to.active_element.get_attribute("id") == "search"
    driver.switch_to.active_element.send_keys("guide")
    wait(driver, lambda d: names(d) == ["guide.txt"])
    assert cell(driver, "guide.txt", ".where") == "in docs"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(driver, lambda d: "hello.txt" in names(d))
    listbox = driver.switch_to.active_element
    assert listbox.get_attribute("id") == "list"
    listbox.send_keys(Keys.HOME, *[Keys.DOWN] * names(driver).index("hello.txt"), Keys.F2)
    wait(driver, lambda d: d.find_element(By.ID, "dialog").get_attribute("open") is not None)
    assert driver.find_element(By.ID, "dialog-input").get_attribute("value") == "hello.txt"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(driver, lambda d: d.find_element(By.ID, "dialog").get_attribute("open") is None)
    assert driver.switch_to.active_element.get_attribute("id") == "list"  # focus comes back
    listbox.send_keys(Keys.SHIFT, Keys.DOWN)  # a range from the keyboard
    assert driver.find_element(By.ID, "act-delete").text == "Delete 2"
    listbox.send_keys(Keys.SPACE)  # Space takes the active row out again
    assert driver.find_element(By.ID, "act-delete").text == "Delete"
    assert (site.root / "hello.txt").exists()
    no_console_errors(driver)


def test_ten_thousand_entries_render_only_what_is_visible(browser: Browser, site: Site) -> None:
    driver = browser.driver
    open_page(driver, site.url + "#/many")
    built = names(driver)
    assert built[0] == "item-00000.txt"
    assert len(built) < 80, len(built)  # a screenful plus a few, not 10,000
    assert driver.find_element(By.ID, "count").text == f"0 folders, {MANY} files"
    driver.find_element(By.ID, "list").send_keys(Keys.END)
    wait(driver, lambda d: f"item-{MANY - 1:05d}.txt" in names(d))
    assert len(names(driver)) < 80
    no_console_errors(driver)


def test_narrow_window(browser: Browser, site: Site) -> None:
    driver = browser.driver
    driver.set_window_size(390, 800)
    try:
        open_page(driver, site.url)
        assert names(driver)[:2] == ["docs", "empty"]
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        assert driver.find_element(By.ID, "upload-files").is_displayed()
        hidden = "return getComputedStyle(row.querySelector('.date')).display;"
        assert driver.execute_script(_ROW_JS + hidden, "hello.txt") == "none"
    finally:
        driver.set_window_size(1100, 800)
    no_console_errors(driver)


def test_pure_helpers_in_the_page(browser: Browser, site: Site) -> None:
    """format.js and model.js as the page loads them: sizes, conflict names, the tree."""
    driver = browser.driver
    open_page(driver, site.url)
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        Promise.all([import('./format.js'), import('./model.js')]).then(([f, m]) => {
          const tree = new m.Tree();
          const meta = (path, dir = false, size = 0) => ({
            path, size, modified: '2024-01-01T00:00:00Z', hash: dir ? '' : 'h', is_directory: dir,
          });
          tree.load([
            meta('a', true), meta('a/b', true), meta('a/b/c.txt'), meta('z.txt', false, 9),
          ]);
          const below = tree.below('a').map((e) => e.path);
          tree.apply({seq: 9, path: 'a/b', op: 'delete', origin: null, metadata: null});
          const sorted = m.sortEntries([meta('b10'), meta('b9'), meta('d', true)], 'name', 1);
          done({
            sizes: [0, 1023, 1024, 1536, 10 * 1024 * 1024, 5e12].map(f.humanSize),
            conflicts: [
              'a.sync-conflict-20240101-120000-laptop1.txt',
              'a.tar.sync-conflict-20240101-120000-abc.gz',
              '.bashrc.sync-conflict-20240101-120000-pc',
              'a.sync-conflict-2024-x.txt',
            ].map(f.conflictOf),
            below,
            after: [...tree.entries.keys()],
            sorted: sorted.map((e) => e.path),
            times: [f.humanTime('2024-01-01T00:00:30Z', Date.parse('2024-01-01T00:00:00Z')),
                    f.humanTime('2024-01-01T00:00:00Z', Date.parse('2024-01-01T02:00:00Z'))],
          });
        }).catch((e) => done(String(e)));
        """
    )
    assert result["sizes"] == ["0 B", "1023 B", "1.0 KB", "1.5 KB", "10 MB", "4.5 TB"]
    assert result["conflicts"] == [
        {"original": "a.txt", "client": "laptop1", "when": "2024-01-01T12:00:00Z"},
        {"original": "a.tar.gz", "client": "abc", "when": "2024-01-01T12:00:00Z"},
        {"original": ".bashrc", "client": "pc", "when": "2024-01-01T12:00:00Z"},
        None,
    ]
    assert result["below"] == ["a/b/c.txt", "a/b"]
    assert result["after"] == ["a", "z.txt"]
    assert result["sorted"] == ["d", "b9", "b10"]
    assert result["times"] == ["just now", "2 h ago"]
    no_console_errors(driver)


# -- changing things -------------------------------------------------------------------


def test_screenshot_for_the_readme(browser: Browser, site: Site, tmp_path: Path) -> None:
    """docs/ui.png: refreshed when CADDYTW_UPDATE_SCREENSHOT=1, else only checked."""
    driver = browser.driver
    driver.set_window_size(1000, 720)
    try:
        open_page(driver, site.url)
        select(driver, CONFLICT)
        shot = screenshot(driver, tmp_path / "ui.png")
        assert shot["colours"] > 10, shot
        if os.environ.get("CADDYTW_UPDATE_SCREENSHOT") == "1":
            from PIL import Image

            image = Image.open(tmp_path / "ui.png").convert("P", palette=Image.ADAPTIVE)
            image.save(REPO / "docs" / "ui.png", optimize=True)
    finally:
        driver.set_window_size(1100, 800)
    assert (REPO / "docs" / "ui.png").stat().st_size < 100_000
    no_console_errors(driver)


def test_upload_through_the_file_input(browser: Browser, site: Site, tmp_path: Path) -> None:
    driver = browser.driver
    open_page(driver, site.url + "#/inbox")
    first = tmp_path / "report.txt"
    first.write_text("quarterly report\n")
    second = tmp_path / "data.bin"
    second.write_bytes(os.urandom(700_000))
    driver.find_element(By.ID, "file-input").send_keys(f"{first}\n{second}")
    wait(driver, lambda d: {"report.txt", "data.bin"} <= set(names(d)))
    wait(driver, lambda d: "Uploaded 2 files." in message(d))
    assert (site.root / "inbox" / "report.txt").read_bytes() == first.read_bytes()
    assert (site.root / "inbox" / "data.bin").read_bytes() == second.read_bytes()
    states = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#transfer-list .t-state")]
    assert states == ["done", "done"]
    assert driver.find_element(By.ID, "overall").get_attribute("value") == "1"

    # The same name again: the page asks before replacing, then sends If-Match.
    first.write_text("second draft\n")
    driver.find_element(By.ID, "file-input").send_keys(str(first))
    dialog_answer(driver)
    wait(driver, lambda d: "Uploaded 1 file." in message(d))
    assert (site.root / "inbox" / "report.txt").read_text() == "second draft\n"

    # A whole folder through the folder picker, empty-looking subfolders included.
    album = tmp_path / "album"
    (album / "day 2").mkdir(parents=True)
    (album / "cover.txt").write_text("cover\n")
    (album / "day 2" / "beach.txt").write_text("sand\n")
    driver.find_element(By.ID, "folder-input").send_keys(str(album))
    wait(driver, lambda d: "Uploaded 2 files." in message(d))
    assert (site.root / "inbox" / "album" / "day 2" / "beach.txt").read_text() == "sand\n"
    assert (site.root / "inbox" / "album" / "cover.txt").read_text() == "cover\n"

    # Dropped files (a synthetic drop: WebDriver cannot drag from the desktop).
    driver.execute_script(
        "const data = new DataTransfer();"
        "data.items.add(new File(['dropped bytes'], 'dropped.txt'));"
        "for (const type of ['dragenter', 'dragover', 'drop'])"
        "  document.body.dispatchEvent(new DragEvent(type,"
        "    {bubbles: true, cancelable: true, dataTransfer: data}));"
    )
    wait(driver, lambda d: "Uploaded 1 file." in message(d))
    assert (site.root / "inbox" / "dropped.txt").read_text() == "dropped bytes"
    assert not driver.find_element(By.ID, "drop").is_displayed()

    # Over the server's body limit: refused, and said so.
    huge = tmp_path / "huge.bin"
    huge.write_bytes(b"\0" * (LIMIT + 1))
    driver.find_element(By.ID, "file-input").send_keys(str(huge))
    wait(driver, lambda d: "too large for this server" in message(d))
    assert not (site.root / "inbox" / "huge.bin").exists()
    no_console_errors(
        driver, allowed=("api/upload?path=inbox%2Fhuge.bin - Failed to load resource",)
    )


def test_download(browser: Browser, site: Site) -> None:
    driver = browser.driver
    open_page(driver, site.url)
    select(driver, "big.bin")
    driver.find_element(By.ID, "act-download").click()
    target = browser.downloads / "big.bin"
    wait(driver, lambda d: target.exists() and target.stat().st_size == 300_000, 15)
    assert target.read_bytes() == (site.root / "big.bin").read_bytes()
    # a text file opens in a preview first
    click_name(driver, "hello.txt")
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#dialog-preview pre").is_displayed())
    assert driver.find_element(By.CSS_SELECTOR, "#dialog-preview pre").text == (
        "Hello from the server"
    )
    driver.find_element(By.ID, "dialog-cancel").click()
    no_console_errors(driver)


def test_new_folder_rename_and_delete(browser: Browser, site: Site) -> None:
    driver = browser.driver
    open_page(driver, site.url)
    driver.find_element(By.ID, "new-folder").click()
    dialog_answer(driver, "projects")
    wait(driver, has_row("projects"))
    assert (site.root / "projects").is_dir()

    driver.find_element(By.ID, "new-folder").click()
    dialog_answer(driver, ".caddytw-sync")  # the server's own folder: refused, and said so
    wait(driver, lambda d: "not allowed" in message(d))

    (site.root / "projects" / "a.txt").write_text("a\n")
    select(driver, "projects")
    driver.find_element(By.ID, "act-rename").click()
    dialog_answer(driver, "archive/projects-2024")
    wait(driver, has_row("archive"))
    wait(driver, lacks_row("projects"))
    assert (site.root / "archive" / "projects-2024" / "a.txt").read_text() == "a\n"

    select(driver, "archive")
    driver.find_element(By.ID, "act-delete").click()
    text = driver.find_element(By.ID, "dialog-text").text
    assert "the 2 items in it" in text
    dialog_answer(driver)
    wait(driver, lacks_row("archive"))
    assert not (site.root / "archive").exists()
    # Several at once: Ctrl-click adds to the selection, one confirmation deletes all.
    for name in ("one.txt", "two.txt", "three.txt"):
        (site.root / "inbox" / name).write_text(name)
    open_page(driver, site.url + "#/inbox")
    wait(driver, has_row("three.txt"))
    select(driver, "one.txt")
    driver.execute_script(
        _ROW_JS + "row.dispatchEvent(new MouseEvent('click', {bubbles: true, ctrlKey: true}));",
        "three.txt",
    )
    wait(driver, lambda d: "marked" in row_classes(d, "three.txt"))
    assert "marked" in row_classes(driver, "one.txt")
    assert "marked" not in row_classes(driver, "two.txt")
    assert driver.find_element(By.ID, "act-delete").text == "Delete 2"
    assert not driver.find_element(By.ID, "act-rename").is_enabled()
    driver.find_element(By.ID, "act-delete").click()
    assert driver.find_element(By.ID, "dialog-title").text == "Delete 2 items?"
    dialog_answer(driver)
    wait(driver, lacks_row("one.txt"))
    wait(driver, lacks_row("three.txt"))
    assert (site.root / "inbox" / "two.txt").exists()
    assert not (site.root / "inbox" / "one.txt").exists()
    (site.root / "inbox" / "two.txt").unlink()
    # Chromium logs every 4xx answer; the refused name is the only one expected here.
    no_console_errors(
        driver,
        allowed=("api/sync - Failed to load resource: the server responded with a status of 400",),
    )


def test_conflict_copy_is_marked_and_can_be_kept(browser: Browser, site: Site) -> None:
    driver = browser.driver
    open_page(driver, site.url)
    assert "conflict" in row_classes(driver, CONFLICT)
    assert cell(driver, CONFLICT, ".badge") == "conflict copy of notes.txt (from laptop1)"
    assert "conflict" not in row_classes(driver, "notes.txt")

    open_page(driver, site.url + "#/versions")
    assert cell(driver, KEPT, ".badge") == "conflict copy of plan.md (from phone12)"
    select(driver, "plan.md")
    assert not driver.find_element(By.ID, "act-keep").is_displayed()
    select(driver, KEPT)
    driver.find_element(By.ID, "act-keep").click()
    dialog_answer(driver)
    wait(driver, lacks_row(KEPT))
    assert names(driver) == ["plan.md"]
    assert (site.root / "versions" / "plan.md").read_text() == "# plan, as the phone wrote it\n"
    assert sorted(p.name for p in (site.root / "versions").iterdir()) == ["plan.md"]
    no_console_errors(driver)


def test_a_change_made_elsewhere_appears_live(browser: Browser, site: Site) -> None:
    driver = browser.driver
    open_page(driver, site.url)
    wait(driver, lambda d: d.find_element(By.ID, "live").text == "live")
    status, _ = site.api("POST", "upload?path=" + quote("from-elsewhere.txt"), b"hi")
    assert status == 201
    wait(driver, has_row("from-elsewhere.txt"))
    (site.root / "from-elsewhere.txt").unlink()  # another program, seen by the watcher
    wait(driver, lacks_row("from-elsewhere.txt"), 20)
    no_console_errors(driver)


# -- access ----------------------------------------------------------------------------


def page_headers(site: Site, path: str) -> dict[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", site.server.ports[0], timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    assert response.status == 200, path
    return {k.lower(): v for k, v in response.getheaders()}


def test_page_and_assets_carry_a_strict_policy(site: Site) -> None:
    port = site.server.ports[0]
    for path in ("/", "/app.js", "/style.css"):
        headers = page_headers(site, path)
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert f"connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port};" in policy
        assert "unsafe" not in policy
        assert headers["x-content-type-options"] == "nosniff"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def status(method: str, path: str, headers: dict[str, str] | None = None) -> int:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status

    etag = page_headers(site, "/app.js")["etag"]
    assert status("GET", "/app.js", {"If-None-Match": etag}) == 304
    assert status("GET", "/secret.js") == 404
    assert status("GET", "/docs") == 404  # only .../ is the page
    assert status("POST", "/") == 405
    assert page_headers(site, "/docs/")["content-type"] == "text/html; charset=utf-8"
    connection.close()
    page = (REPO / "caddytw" / "syncui" / "static" / "index.html").read_text()
    assert "<script>" not in page and "style=" not in page and "http" not in page


def test_token_prompt_and_read_only_token(browser: Browser, guarded: Site) -> None:
    driver = browser.driver
    driver.get(guarded.url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(guarded.url)
    wait(driver, lambda d: d.find_element(By.ID, "dialog").get_attribute("open") is not None)
    assert driver.find_element(By.ID, "dialog-input").get_attribute("type") == "password"
    dialog_answer(driver, "not-a-token-at-all-really", closes=False)
    wait(driver, lambda d: "not accepted" in d.find_element(By.ID, "dialog-text").text)
    dialog_answer(driver, VIEWER)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert names(driver) == ["shared"]
    assert driver.find_element(By.ID, "who").text == "viewer · read-only token"
    for button in ("upload-files", "upload-folder", "new-folder", "act-rename", "act-delete"):
        assert not driver.find_element(By.ID, button).is_displayed(), button
    listbox = driver.find_element(By.ID, "list")
    listbox.send_keys(Keys.DELETE)  # the keyboard cannot delete either
    listbox.send_keys(Keys.F2)
    assert driver.find_element(By.ID, "dialog").get_attribute("open") is None
    assert (guarded.root / "shared").is_dir()
    assert driver.execute_script("return sessionStorage.getItem('caddytw-sync-token')") == VIEWER
    assert VIEWER not in driver.current_url
    wait(driver, lambda d: d.find_element(By.ID, "live").text == "live")  # token subprotocol
    no_console_errors(driver, allowed=("whoami - Failed to load resource",))

    driver.find_element(By.ID, "sign-out").click()
    wait(driver, lambda d: d.find_element(By.ID, "dialog").get_attribute("open") is not None)
    dialog_answer(driver, WRITER)
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert driver.find_element(By.ID, "new-folder").is_displayed()
    wait(driver, lambda d: d.find_element(By.ID, "live").text == "live")
    status, _ = guarded.api("POST", "upload?path=pushed.txt", b"x", token=WRITER)
    assert status == 201
    wait(driver, has_row("pushed.txt"))
    driver.find_element(By.ID, "new-folder").click()  # a sync request names the token's client
    dialog_answer(driver, "by-writer")
    wait(driver, has_row("by-writer"))
    assert (guarded.root / "by-writer").is_dir()
    listing = json.loads(guarded.api("GET", "list", token=VIEWER)[1])
    assert hashlib.sha256(b"x").hexdigest() in {item["hash"] for item in listing}
    no_console_errors(driver, allowed=("whoami - Failed to load resource",))
