"""Caddy's ``/config/[path]`` semantics on plain JSON data, with no IO.

The path is walked from a root object ``{"config": <config>}`` (so paths start with
``config``), object keys by name and arrays by index. At the end of the path:

- GET returns the value (``null`` for a missing object key);
- POST appends to an existing array (``.../...`` appends each element of an array
  body), otherwise sets or creates the key;
- PUT creates a key that must not exist yet, or inserts into an array at an index
  (which may equal its length); missing objects along the path are created;
- PATCH replaces a key or an array element that must exist;
- DELETE removes a key (a missing one is not an error) or an array element.

Mutations work on a copy and return the new config, so a rejected change leaves the
running one untouched. Messages are Caddy's own.
"""

from __future__ import annotations

import copy
import re
from typing import Any

_INTEGER = re.compile(r"[+-]?[0-9]+")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class ConfigPathError(ValueError):
    """A path or method that cannot be applied to the config."""


def _index(part: str, length: int, where: str, *, insert: bool = False) -> int:
    if not _INTEGER.fullmatch(part):
        raise ConfigPathError(
            f'[{where}] invalid array index {part!r}: strconv.Atoi: parsing "{part}": '
            "invalid syntax"
        )
    index = int(part)
    if index < 0 or index > length or (index == length and not insert):
        raise ConfigPathError(f"[{where}] array index out of bounds: {part}")
    return index


def split_path(path: str) -> tuple[list[str], bool]:
    """The parts of ``/config/a/b`` and whether it ends with ``...`` (append each)."""
    clean = path.strip("/")
    if not clean:
        raise ConfigPathError("no traversable path")
    parts = clean.split("/")
    ellipses = parts[-1] == "..."
    if ellipses:
        parts = parts[:-1]
    return parts, ellipses


def access(config: Any, method: str, path: str, value: Any = None) -> tuple[Any, Any]:
    """Apply ``method`` at ``path``; returns ``(new_config, value_read)``.

    For GET, ``new_config`` is ``config`` itself; for mutations it is a modified copy.
    """
    if method not in METHODS:
        raise ConfigPathError(f"unrecognized method {method}")
    parts, ellipses = split_path(path)
    root: dict[str, Any] = {"config": config if method == "GET" else copy.deepcopy(config)}
    shown = "/" + path.strip("/")
    node: Any = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            child = node.get(part)
            if isinstance(child, list) and i == len(parts) - 2:
                read = _at_array(node, part, child, method, parts[-1], value, ellipses, shown)
                return root["config"], read
            if last:
                read = _at_key(node, part, method, value, ellipses, shown)
                return root["config"], read
            if child is None and method == "PUT":
                child = node[part] = {}
            node = child
        elif isinstance(node, list):
            where = "/" + "/".join(parts[: i + 1])
            node = node[_index(part, len(node), where)]
            if last:  # only reached for GET through a nested array element
                if method != "GET":
                    raise ConfigPathError(f"invalid traversal path at: {'/'.join(parts)}")
                return root["config"], node
        else:
            raise ConfigPathError(f"invalid traversal path at: {'/'.join(parts[: i + 1])}")
    return root["config"], node


def _at_array(
    parent: dict[str, Any],
    key: str,
    array: list[Any],
    method: str,
    last: str,
    value: Any,
    ellipses: bool,
    shown: str,
) -> Any:
    if method == "POST":
        _append(parent, key, array, value, ellipses)
        return None
    index = _index(last, len(array), shown, insert=method == "PUT")
    if method == "GET":
        return array[index]
    if method == "PUT":
        array.insert(index, value)
    elif method == "PATCH":
        array[index] = value
    else:
        del array[index]
    return None


def _append(parent: dict[str, Any], key: str, array: list[Any], value: Any, ellipses: bool) -> None:
    if ellipses:
        if not isinstance(value, list):
            raise ConfigPathError("final element is not an array")
        array.extend(value)
    else:
        array.append(value)
    parent[key] = array


def _at_key(
    parent: dict[str, Any], key: str, method: str, value: Any, ellipses: bool, shown: str
) -> Any:
    if method == "GET":
        return parent.get(key)
    if method == "POST":
        existing = parent.get(key)
        if isinstance(existing, list):
            _append(parent, key, existing, value, ellipses)
        else:
            parent[key] = value
    elif method == "PUT":
        if key in parent:
            raise ConfigPathError(f"[{shown}] key already exists: {key}")
        parent[key] = value
    elif method == "PATCH":
        if key not in parent:
            raise ConfigPathError(f"[{shown}] key does not exist: {key}")
        parent[key] = value
    else:
        parent.pop(key, None)
    return None


def index_ids(config: Any, base: str = "/config") -> dict[str, str]:
    """Every ``@id`` in the config mapped to its path (Caddy's ``/id/`` index)."""
    index: dict[str, str] = {}
    _index_ids(config, base, index)
    return index


def _index_ids(node: Any, path: str, index: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, child in node.items():
            if key == "@id":
                if isinstance(child, bool) or not isinstance(child, (str, int, float)):
                    raise ConfigPathError(f"{path}: @id field must be a string or number")
                index[_id_text(child)] = path
                continue
            _index_ids(child, f"{path}/{key}", index)
    elif isinstance(node, list):
        for position, child in enumerate(node):
            _index_ids(child, f"{path}/{position}", index)


def _id_text(value: str | int | float) -> str:
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)
