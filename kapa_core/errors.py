"""Every error kapa-core raises on purpose.

    KapaError
     ├── ConfigError      bad configuration: names the key path, value and what was expected
     ├── PluginError      a plugin that cannot be loaded or claims what another owns
     ├── TickError        TICKscript errors, with line and column
     ├── TaskError        a task that cannot be defined or enabled
     ├── HandlerError     an alert handler that failed to deliver
     ├── StorageError     the SQLite store failed
     ├── ParseError       malformed input data (line protocol and friends)
     └── APIError         an HTTP API error carrying its status code
"""

from __future__ import annotations


class KapaError(Exception):
    """Base of all errors kapa-core raises deliberately."""


class ConfigError(KapaError):
    """A configuration value is wrong.

    ``path`` is the key path (``influxdb[0].urls[1]``), filled in or prefixed by the loader
    as the error travels up, so a section's ``validate()`` can raise with just its key.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message

    def within(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` put in front of its path."""
        if not prefix:
            return self
        if not self.path:
            joined = prefix
        elif self.path.startswith("["):
            joined = prefix + self.path
        else:
            joined = f"{prefix}.{self.path}"
        return ConfigError(joined, self.message)


class PluginError(KapaError):
    """A plugin failed to load or conflicts with another plugin."""


class TickError(KapaError):
    """A TICKscript error at a line and column (1-based)."""

    def __init__(self, message: str, line: int = 0, column: int = 0, text: str = "") -> None:
        where = f"line {line} char {column}: " if line else ""
        super().__init__(f"{where}{message}" + (f": {text}" if text else ""))
        self.line = line
        self.column = column
        self.text = text
        self.message = message


class TaskError(KapaError):
    """A task could not be defined, enabled or run."""


class HandlerError(KapaError):
    """An alert handler could not deliver an event."""


class StorageError(KapaError):
    """The store could not read or write."""


class ParseError(KapaError):
    """Malformed input data, e.g. a bad line of line protocol."""


class APIError(KapaError):
    """An error the HTTP API turns into ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
