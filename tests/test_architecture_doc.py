"""docs/architecture.md's hops name real places: every ``file: function`` of the hop
table exists, so following a request by the document never leads to a stale name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACE = re.compile(r"`(caddytw/[\w/]+\.py): ([^`]+)`")


def places() -> list[tuple[str, list[str]]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    found = []
    for row in table:
        for path, names in PLACE.findall(row):
            found.append((path, [n.strip() for n in names.split("/") if n.strip()]))
    return found


def test_every_hop_names_an_existing_function() -> None:
    hops = places()
    assert len(hops) >= 12
    for path, names in hops:
        source = (ROOT / path).read_text()
        for name in names:
            leaf = name.split(".")[-1]
            assert re.search(rf"\b(def|class) {re.escape(leaf)}\b", source), (path, name)
            owner = name.split(".")[0]
            if owner != leaf:
                assert re.search(rf"\bclass {re.escape(owner)}\b", source), (path, name)
