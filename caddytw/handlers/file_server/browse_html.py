"""The built-in HTML directory listing page.

Self-contained (inline CSS, no script), readable on phones and in dark mode, every name
escaped. Column headers sort through the same query parameters the JSON form takes.
"""

from __future__ import annotations

import time
from html import escape
from urllib.parse import urlencode

from caddytw.handlers.file_server.browse import (
    SORT_NAME,
    SORT_NAME_DIR_FIRST,
    SORT_SIZE,
    SORT_TIME,
    Entry,
    Listing,
    human_size,
)

_STYLE = """
:root { color-scheme: light dark; --fg: #1d232b; --muted: #6b7480; --line: #e4e7eb;
  --accent: #0b63c4; --hover: #f3f6fa; --bg: #fff; }
@media (prefers-color-scheme: dark) { :root { --fg: #dde3ea; --muted: #8b95a1;
  --line: #2a3038; --accent: #6cb4ff; --hover: #1b2027; --bg: #111418; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 960px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 28px; }
h1 { font-size: 20px; font-weight: 600; margin: 0 0 4px; word-break: break-all; }
h1 a { color: var(--fg); text-decoration: none; }
h1 a:hover { color: var(--accent); }
h1 .sep { color: var(--muted); margin: 0 2px; }
.summary { color: var(--muted); font-size: 13px; margin-bottom: 16px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 13px; font-weight: 600; color: var(--muted);
  border-bottom: 2px solid var(--line); padding: 8px 6px; white-space: nowrap; }
th a { color: inherit; text-decoration: none; }
th a:hover { color: var(--accent); }
td { padding: 7px 6px; border-bottom: 1px solid var(--line); }
tr:hover td { background: var(--hover); }
td a { color: var(--accent); text-decoration: none; word-break: break-all; }
td a:hover { text-decoration: underline; }
.size, .time { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
.size { text-align: right; }
.time { padding-left: 28px; }
.kind { width: 1.6em; color: var(--muted); }
.dir .kind::before { content: "\\25B8"; }
.file .kind::before { content: "\\2022"; }
.link { color: var(--muted); font-size: 12px; margin-left: 6px; }
footer { color: var(--muted); font-size: 12px; padding: 24px 20px 32px; }
@media (max-width: 600px) { .time { display: none; } }
"""


# A folder as the tab icon, inline: without one the browser asks for /favicon.ico, which
# is usually a 404 (an error in the console) and a needless request for every listing.
_ICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Cpath fill='%230b63c4' d='M1 3.5A1.5 1.5 0 0 1 2.5 2h3.6l1.6 2h5.8A1.5 1.5 0 0 1 15 "
    "5.5v7a1.5 1.5 0 0 1-1.5 1.5h-11A1.5 1.5 0 0 1 1 12.5z'/%3E%3C/svg%3E"
)


def _sort_link(listing: Listing, column: str, label: str) -> str:
    """A header link: sorts by ``column``, flipping the order if it is the current key."""
    current = listing.sort == column or (
        column == SORT_NAME and listing.sort == SORT_NAME_DIR_FIRST
    )
    order = "desc" if current and listing.order != "desc" else "asc"
    key = listing.sort if column == SORT_NAME and current else column
    query = {"sort": key, "order": order}
    if listing.limit:
        query["limit"] = str(listing.limit)
    arrow = ""
    if current:
        arrow = " \u2193" if listing.order == "desc" else " \u2191"
    return f'<a href="?{escape(urlencode(query))}">{label}{arrow}</a>'


def _row(entry: Entry) -> str:
    kind = "dir" if entry.is_dir else "file"
    size = "&mdash;" if entry.is_dir else escape(human_size(entry.size))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.mod_time_ns // 1_000_000_000))
    link = '<span class="link">symlink</span>' if entry.is_symlink else ""
    return (
        f'<tr class="{kind}"><td class="kind"></td>'
        f'<td><a href="{escape(entry.url)}">{escape(entry.name)}</a>{link}</td>'
        f'<td class="size" data-bytes="{entry.size}">{size}</td>'
        f'<td class="time"><time datetime="{stamp.replace(" ", "T")}Z">{stamp} UTC</time></td>'
        "</tr>"
    )


def render_listing(listing: Listing) -> bytes:
    """The whole page for ``listing``."""
    crumbs = '<span class="sep">/</span>'.join(
        f'<a href="{escape(link)}">{escape(text) if text != "/" else "~"}</a>'
        for link, text in listing.breadcrumbs()
    )
    up = (
        '<tr class="dir"><td class="kind"></td><td><a href="../">..</a></td>'
        '<td class="size">&mdash;</td><td class="time"></td></tr>'
        if listing.can_go_up
        else ""
    )
    rows = "\n".join(_row(entry) for entry in listing.items)
    dirs = "directory" if listing.num_dirs == 1 else "directories"
    files = "file" if listing.num_files == 1 else "files"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(listing.path)}</title>
<link rel="icon" href="{_ICON}">
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{crumbs}</h1>
<div class="summary">{listing.num_dirs} {dirs}, {listing.num_files} {files}</div>
</header>
<main>
<table>
<thead><tr><th></th><th>{_sort_link(listing, SORT_NAME, "Name")}</th>
<th class="size">{_sort_link(listing, SORT_SIZE, "Size")}</th>
<th class="time">{_sort_link(listing, SORT_TIME, "Modified")}</th></tr></thead>
<tbody>
{up}
{rows}
</tbody>
</table>
</main>
<footer>Served by caddytw</footer>
</body>
</html>
"""
    return page.encode("utf-8", "surrogateescape")
