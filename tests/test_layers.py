"""The import graph of the layers this test names: no cycles, nothing pointing up.

Every import counts (``TYPE_CHECKING`` blocks and function-level imports too): a cycle
that only type checking sees still means two modules that cannot be read one after
the other. Read from the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "caddytw"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The caddytw modules ``name`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.add(child if child in MODULES else base)
    return {target for target in targets if target in MODULES and target != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle_from(start: str, within: str) -> list[str] | None:
    """A path of imports inside ``within`` that leads from ``start`` back to it."""
    stack = [(start, [start])]
    seen = set()
    while stack:
        name, trail = stack.pop()
        for target in GRAPH[name]:
            if target == start:
                return [*trail, start]
            if target.startswith(within) and target not in seen:
                seen.add(target)
                stack.append((target, [*trail, target]))
    return None


def _cycles(within: str) -> list[list[str]]:
    return [
        cycle
        for name in sorted(GRAPH)
        if name.startswith(within) and (cycle := _cycle_from(name, within)) is not None
    ]


def test_http_has_no_import_cycle():
    assert _cycles("caddytw.http") == []


def test_handlers_have_no_import_cycle():
    assert _cycles("caddytw.handlers") == []


def test_caddyfile_has_no_import_cycle():
    assert _cycles("caddytw.caddyfile") == []


def _upward(layer: str, above: tuple[str, ...]) -> set[tuple[str, str]]:
    """The imports from ``layer``'s modules into any of the ``above`` packages."""
    return {
        (name, target)
        for name, targets in GRAPH.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if target.startswith(above)
    }


def test_http_never_imports_a_handler_or_the_server():
    assert _upward("caddytw.http", ("caddytw.handlers", "caddytw.server")) == set()


def test_handlers_never_import_the_server():
    assert _upward("caddytw.handlers", ("caddytw.server",)) == set()


def test_tls_never_imports_the_sync_store():
    assert _upward("caddytw.tls", ("caddytw.sync",)) == set()


def test_caddytw_has_no_import_cycle():
    """Not only the layers above: no module of the package reaches itself again."""
    assert _cycles("caddytw") == []
