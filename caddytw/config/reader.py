"""Strict, path-aware reading of JSON objects.

Caddy decodes module config with ``DisallowUnknownFields``; :class:`ObjectReader` gives
every parser here the same rule and makes each error name the exact JSON path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from caddytw.config.duration import parse_duration
from caddytw.config.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()


def join_path(base: str, key: str | int) -> str:
    """Extend a JSON path by an object key or an array index."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def type_name(value: object) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def expect_list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(path, f"expected an array, got {type_name(value)}")
    return value


def expect_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a string, got {type_name(value)}")
    return value


def expect_str_list(value: object, path: str) -> list[str]:
    items = expect_list(value, path)
    return [expect_str(item, join_path(path, index)) for index, item in enumerate(items)]


class ObjectReader:
    """Reads the fields of one JSON object; :meth:`done` rejects any field left unread.

    ``@id`` is always accepted, as Caddy strips it before decoding.
    """

    def __init__(self, data: object, path: str, *, what: str = "object") -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(path, f"expected an {what}, got {type_name(data)}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self._read: set[str] = {"@id"}

    def at(self, key: str | int) -> str:
        """The JSON path of a field of this object."""
        return join_path(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """The field as-is (marked read); for values another parser will check."""
        self._read.add(key)
        return self.data.get(key, default)

    def ignore(self, *keys: str) -> None:
        """Accept fields this build carries along without using."""
        self._read.update(keys)

    def _typed(self, key: str, default: Any, check: Callable[[Any], bool], kind: str) -> Any:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            return default
        value = self.data[key]
        if not check(value):
            raise ConfigError(self.at(key), f"expected {kind}, got {type_name(value)}")
        return value

    def text(self, key: str, default: Any = "") -> Any:
        return self._typed(key, default, lambda v: isinstance(v, str), "a string")

    def flag(self, key: str, default: bool = False) -> bool:
        result: bool = self._typed(key, default, lambda v: isinstance(v, bool), "a boolean")
        return result

    def integer(self, key: str, default: Any = 0, *, minimum: int | None = None) -> Any:
        value = self._typed(
            key,
            default,
            lambda v: isinstance(v, int) and not isinstance(v, bool),
            "an integer",
        )
        if minimum is not None and value is not None and value < minimum:
            raise ConfigError(self.at(key), f"must be at least {minimum}, got {value}")
        return value

    def number(self, key: str, default: Any = 0.0) -> Any:
        return self._typed(
            key,
            default,
            lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "a number",
        )

    def array(self, key: str) -> list[Any]:
        result: list[Any] = self._typed(key, [], lambda v: isinstance(v, list), "an array")
        return result

    def strings(self, key: str) -> list[str]:
        return [
            expect_str(item, join_path(self.at(key), index))
            for index, item in enumerate(self.array(key))
        ]

    def mapping(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._typed(key, {}, lambda v: isinstance(v, dict), "an object")
        return result

    def reader(self, key: str) -> ObjectReader:
        """A reader for a nested object (an empty one when the field is absent)."""
        return ObjectReader(self.mapping(key), self.at(key))

    def duration(self, key: str, default: float | None = None) -> float | None:
        """Seconds, from a Caddy duration string or integer nanoseconds."""
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            return default
        return parse_duration(self.data[key], self.at(key))

    def done(self) -> None:
        """Reject unknown fields, naming the first one as Caddy does."""
        for key in self.data:
            if key not in self._read:
                raise ConfigError(self.at(key), f'unknown field "{key}"')
