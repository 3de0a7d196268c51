"""bench/caddy_corpus.py against a small repository of our own fixtures.

The real corpus is Caddy's (fetched, never committed); this builds a git repo
laid out like Caddy's with inputs written here, and checks the counting:
identical adapt output, accepted by validate, rejected by Caddy itself.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    """bench/ is not a package (and holds names like ``h3``): load the file alone."""
    spec = importlib.util.spec_from_file_location("caddy_corpus", REPO / "bench/caddy_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


caddy_corpus = _load_script()

pytestmark = pytest.mark.skipif(shutil.which("caddy") is None, reason="needs Debian's caddy")

FIXTURES = {
    "respond": ':8080 {\n\trespond "hi"\n}\n',
    "php": ":8080 {\n\tphp_fastcgi 127.0.0.1:9000\n}\n",
    "not_caddy_262": ":8080 {\n\tnot_a_directive\n}\n",
}


def test_corpus_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    folder = work / caddy_corpus.CORPUS_DIR
    folder.mkdir(parents=True)
    for name, text in FIXTURES.items():
        (folder / f"{name}.caddyfiletest").write_text(text + "----------\n{}\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(work), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixtures")
    out = tmp_path / "results.json"
    assert caddy_corpus.main(["--repo", str(work / ".git"), "--json", str(out), "-v"]) == 0
    text = capsys.readouterr().out
    assert "adapted by caddy 2.6.2: 2" in text
    assert "caddytw adapt identical: 2/2" in text
    # php_fastcgi adapts identically but has no runtime here: named, with its path.
    assert "caddytw validate accepts: 1/2" in text
    assert "transport.protocol" in text and "fastcgi" in text


def test_first_difference_names_the_path() -> None:
    ours = {"a": [{"b": 1}, {"c": 2}]}
    theirs = {"a": [{"b": 1}, {"c": 3}]}
    assert caddy_corpus.first_difference(ours, theirs).startswith("/a/1/c: 2 != caddy 3")
    assert caddy_corpus.first_difference({"x": 1}, {}) == "/x: extra"
