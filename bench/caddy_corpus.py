"""Measure caddytw's adapter and validator against Caddy's own adapt corpus.

Caddy's repository keeps its Caddyfile adapter tests as
``caddytest/integration/caddyfile_adapt/*.caddyfiletest`` (a Caddyfile, a
``----------`` line, the expected JSON of *current* Caddy).  We compare with
what the Caddy we can run produces, Debian's ``caddy adapt`` (2.6.2): newer
files use directives 2.6.2 lacks, and those do not count.  For every file
that 2.6.2 adapts, this reports

* ``adapt``: whether ``caddytw adapt`` gives the identical JSON (parsed,
  with Go map-order lists sorted, as tests/caddyfile/test_golden.py does),
* ``validate``: whether ``caddytw validate`` accepts Caddy's JSON,

and groups the failures by their first line of reason.  Nothing from Caddy's
repository is written anywhere but a temporary directory.

Usage::

    python bench/caddy_corpus.py [--repo GITDIR] [--rev HEAD] [-v] [--only SUBSTR]
        [--json OUT]

``GITDIR`` is a bare clone of github.com/caddyserver/caddy (the ``fetch``
tool puts one at /work/.mirror/caddyserver+caddy/repo).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CORPUS_DIR = "caddytest/integration/caddyfile_adapt"
DEFAULT_REPO = "/work/.mirror/caddyserver+caddy/repo"
SEPARATOR = "----------"


def corpus_files(repo: str, rev: str) -> dict[str, str]:
    """``{name: caddyfile text}`` for every ``.caddyfiletest`` at ``rev``."""
    listing = subprocess.run(
        ["git", "--git-dir", repo, "ls-tree", "--name-only", rev, CORPUS_DIR + "/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    files: dict[str, str] = {}
    for path in listing:
        if not path.endswith(".caddyfiletest"):
            continue
        blob = subprocess.run(
            ["git", "--git-dir", repo, "show", f"{rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        files[Path(path).stem] = blob.split("\n" + SEPARATOR, 1)[0] + "\n"
    return files


def caddy_adapt(path: Path) -> tuple[dict[str, Any] | None, str]:
    """Debian's caddy's JSON for ``path``, or ``None`` and its error."""
    proc = subprocess.run(
        ["caddy", "adapt", "--config", str(path), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
    )
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
    return json.loads(proc.stdout), ""


def normalise(node: Any, key: str = "") -> Any:
    """Lists whose order comes from Go map iteration, sorted."""
    if isinstance(node, dict):
        return {k: normalise(v, k) for k, v in node.items()}
    if isinstance(node, list):
        items = [normalise(v) for v in node]
        if key in ("hide", "sni"):
            items = sorted(items, key=json.dumps)
        return items
    return node


def first_difference(ours: Any, theirs: Any, path: str = "") -> str:
    """The JSON path of the first place two documents differ, and how."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs)):
            if key not in ours:
                return f"{path}/{key}: missing"
            if key not in theirs:
                return f"{path}/{key}: extra"
            if ours[key] != theirs[key]:
                return first_difference(ours[key], theirs[key], f"{path}/{key}")
        return path
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return f"{path}: {len(ours)} items, caddy has {len(theirs)}"
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if a != b:
                return first_difference(a, b, f"{path}/{index}")
        return path
    return f"{path}: {json.dumps(ours)[:80]} != caddy {json.dumps(theirs)[:80]}"


def ours_adapt(path: Path) -> tuple[dict[str, Any] | None, str]:
    from caddytw.caddyfile import CaddyfileError, adapt

    try:
        config, _warnings = adapt(path.read_text(encoding="utf-8"), str(path))
    except CaddyfileError as error:
        return None, str(error).replace(str(path.parent) + os.sep, "")
    except Exception as error:  # a crash is a finding, not the end of the run
        return None, f"CRASH {type(error).__name__}: {error}"
    return config, ""


def ours_validate(config: dict[str, Any]) -> list[str]:
    from caddytw.server.build import validate

    try:
        return validate(config)
    except Exception as error:
        return [f"CRASH {type(error).__name__}: {error}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=DEFAULT_REPO, help="git dir of caddyserver/caddy")
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--only", default="", help="only files whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per file")
    parser.add_argument("--json", default="", help="write per-file results here")
    args = parser.parse_args(argv)

    files = corpus_files(args.repo, args.rev)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in sorted(files.items()):
            if args.only and args.only not in name:
                continue
            # Caddy picks the adapter from the name; each file in its own dir
            # so that `import` globs and relative paths behave alike.
            folder = Path(tmp, name)
            folder.mkdir()
            path = folder / "Caddyfile"
            path.write_text(text, encoding="utf-8")
            reference, caddy_error = caddy_adapt(path)
            entry: dict[str, Any] = {"caddy": reference is not None}
            results[name] = entry
            if reference is None:
                entry["caddy_error"] = caddy_error
                continue
            config, error = ours_adapt(path)
            if config is None:
                entry["adapt"] = False
                entry["adapt_reason"] = "adapt error: " + error.splitlines()[0]
            elif normalise(config) == normalise(reference):
                entry["adapt"] = True
            else:
                entry["adapt"] = False
                entry["adapt_reason"] = "differs at " + first_difference(
                    normalise(config), normalise(reference)
                )
            problems = ours_validate(reference)
            entry["validate"] = not problems
            if problems:
                entry["validate_reason"] = problems[0]

    adaptable = {n: r for n, r in results.items() if r["caddy"]}
    same = sum(1 for r in adaptable.values() if r["adapt"])
    valid = sum(1 for r in adaptable.values() if r["validate"])
    if args.verbose:
        for name, entry in sorted(adaptable.items()):
            marks = ("A" if entry["adapt"] else "-") + ("V" if entry["validate"] else "-")
            text = "; ".join(entry[k] for k in ("adapt_reason", "validate_reason") if k in entry)
            print(f"{marks} {name}: {text}")
    print(f"corpus files: {len(results)}; adapted by caddy 2.6.2: {len(adaptable)}")
    print(f"caddytw adapt identical: {same}/{len(adaptable)}")
    print(f"caddytw validate accepts: {valid}/{len(adaptable)}")
    for label, key in (("adapt", "adapt_reason"), ("validate", "validate_reason")):
        reasons = collections.Counter(_reason_class(r[key]) for r in adaptable.values() if key in r)
        if reasons:
            print(f"{label} failures by reason:")
            for reason, count in reasons.most_common():
                print(f"  {count:3d}  {reason}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


def _reason_class(reason: str) -> str:
    """A failure reason with file-specific noise dropped, for grouping."""
    reason = reason.replace(os.sep + "Caddyfile", "")
    if reason.startswith("differs at "):
        return "differs at " + reason.split(" ", 2)[2].split(":", 1)[0]
    return reason[:120]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
