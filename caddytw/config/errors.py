"""Config errors that always carry the JSON path of the offending value."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class ConfigError(ValueError):
    """One problem in a config, located by its JSON path (``apps.http.servers.x.listen[0]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class ConfigErrors(ValueError):
    """Every problem found in one config: validation reports all of them, not just the first."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))

    def __iter__(self) -> Iterator[ConfigError]:
        return iter(self.errors)


class ErrorCollector:
    """Gathers errors from independent parts of a config so one run reports them all."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, error: ConfigError | ConfigErrors) -> None:
        if isinstance(error, ConfigErrors):
            self.errors.extend(error.errors)
        else:
            self.errors.append(error)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)
