"""Golden tests: our adapter against JSON produced by Debian's caddy 2.6.2.

Each ``golden/NAME.Caddyfile`` was adapted once with ``caddy adapt`` (see
``gen_golden.py``) and the output committed as ``NAME.json``.  Comparison is
structural (parsed JSON, key order ignored) after two normalisations for
output that is not deterministic or not location independent in Caddy:

* ``hide`` lists of ``file_server`` and ``sni`` lists of TLS connection
  policies come from Go map iteration, so their order is random: compared
  sorted.
* ``hide`` entries for imported files are absolute paths of the machine that
  generated the golden file: compared from the ``golden/`` component on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from caddytw.caddyfile import adapt

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_ENV = {"SITE_ADDR": "env.example.com", "UPSTREAM": "127.0.0.1:9100"}
CASES = sorted(p.stem for p in GOLDEN.glob("*.json"))


def normalise(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: normalise(v, k) for k, v in node.items()}
    if isinstance(node, list):
        items = [normalise(v) for v in node]
        if key == "hide":
            items = sorted(
                "golden/" + i.split("/golden/", 1)[1] if "/golden/" in i else i for i in items
            )
        elif key == "sni":
            items = sorted(items)
        return items
    return node


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    env = {k: v for k, v in os.environ.items() if k not in ("GREETING", "NOT_SET_ANYWHERE")}
    env.update(GOLDEN_ENV)
    text = (GOLDEN / f"{name}.Caddyfile").read_text()
    got, _warnings = adapt(text, f"{name}.Caddyfile", environ=env)
    want = json.loads((GOLDEN / f"{name}.json").read_text())
    assert normalise(json.loads(json.dumps(got))) == normalise(want)
