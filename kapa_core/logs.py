"""Logfmt logging the way Kapacitor writes it.

    ts=2026-11-23T02:51:39.123Z lvl=info msg="listening on" service=http addr=127.0.0.1:9092

``Logger`` wraps the standard library: ``log.info("opened", addr=...)`` and
``log.with_(task="cpu")`` for context fields. ``configure()`` points all output at a file,
STDOUT or STDERR with a level threshold; it can be called again (``/loglevel``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

ROOT = "kapa_core"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
          logging.ERROR: "error", logging.CRITICAL: "error"}


#: Secrets that could reach a log line inside a URL or a header: the ``p``, ``password``
#: and ``token`` query parameters (``?u=admin&p=secret``), the password of
#: ``scheme://user:password@host`` and an ``Authorization`` value.
_SECRETS = (
    (re.compile(r"([?&](?:p|password|token)=)[^&\s\"#]+", re.IGNORECASE), r"\1[REDACTED]"),
    (re.compile(r"(://[^/\s:@\"]{0,256}:)(?!\*\*\*@)[^@/\s\"]{1,256}@"), r"\1***@"),
    (re.compile(r"(authorization['\"\\]*\s*[=:]\s*['\"\\]*(?:[A-Za-z]+ )?)[^\s'\"\\]+",
                re.IGNORECASE), r"\1[REDACTED]"),
)


def redact(text: str) -> str:
    """``text`` with the secrets of :data:`_SECRETS` replaced."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t\\'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def format_logfmt(fields: Mapping[str, object]) -> str:
    return " ".join(f"{k}={_quote(v)}" for k, v in fields.items() if v is not None)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC)
        fields: dict[str, object] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "lvl": _NAMES.get(record.levelno, "info"),
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "kv", {}))
        line = format_logfmt(fields)
        if record.exc_info:
            line += " err=" + _quote(self.formatException(record.exc_info).splitlines()[-1])
        if "p=" in line or "://" in line or "uthorization" in line \
                or "password=" in line or "token=" in line:
            line = redact(line)
        if not line.isascii():  # a lone surrogate cannot be written: shown escaped instead
            line = line.encode("utf-8", "backslashreplace").decode("utf-8")
        return line


class Logger:
    """A logfmt logger carrying context fields (``service=``, ``task=``...)."""

    __slots__ = ("_fields", "_logger")

    def __init__(self, service: str = "", **fields: object) -> None:
        self._logger = logging.getLogger(ROOT)
        self._fields = {"service": service, **fields} if service else dict(fields)

    def with_(self, **fields: object) -> Logger:
        child = Logger()
        child._fields = {**self._fields, **fields}
        return child

    def _log(self, level: int, msg: str, kv: dict[str, object], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"kv": {**self._fields, **kv}}, exc_info=exc)

    def debug(self, msg: str, **kv: object) -> None:
        self._log(logging.DEBUG, msg, kv)

    def info(self, msg: str, **kv: object) -> None:
        self._log(logging.INFO, msg, kv)

    def warn(self, msg: str, **kv: object) -> None:
        self._log(logging.WARNING, msg, kv)

    def error(self, msg: str, **kv: object) -> None:
        self._log(logging.ERROR, msg, kv)

    def exception(self, msg: str, **kv: object) -> None:
        self._log(logging.ERROR, msg, kv, exc=True)

    def enabled(self, level: str) -> bool:
        return self._logger.isEnabledFor(LEVELS[level])


class _ReopenableFile(logging.StreamHandler[TextIO]):
    """Appends to a log file; flushes each line so a crash loses nothing."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        super().__init__(open(path, "a", encoding="utf-8"))  # noqa: SIM115 - owned by handler

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            super().close()


_lock = threading.Lock()


def parse_level(text: str) -> int:
    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise ValueError(f"invalid log level {text!r} (expected debug, info, warn or error)")
    return level


def configure(file: str = "STDERR", level: str = "INFO") -> None:
    """Send all kapa-core logs to ``file`` (a path, ``STDOUT`` or ``STDERR``) at ``level``."""
    logger = logging.getLogger(ROOT)
    with _lock:
        for old in list(logger.handlers):
            logger.removeHandler(old)
            if isinstance(old, _ReopenableFile):
                old.close()
        handler: logging.Handler
        where = file.strip()
        if where.upper() in ("", "STDERR"):
            handler = logging.StreamHandler(sys.stderr)
        elif where.upper() == "STDOUT":
            handler = logging.StreamHandler(sys.stdout)
        else:
            handler = _ReopenableFile(where)
        handler.setFormatter(LogfmtFormatter())
        logger.addHandler(handler)
        logger.setLevel(parse_level(level))
        logger.propagate = False


def set_level(level: str) -> None:
    logging.getLogger(ROOT).setLevel(parse_level(level))


def stream_handler(stream: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    return handler
