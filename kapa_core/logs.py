"""Logfmt logging the way Kapacitor writes it.

    ts=2026-11-23T02:51:39.123Z lvl=info msg="listening on" service=http addr=127.0.0.1:9092

``Logger`` wraps the standard library: ``log.info("opened", addr=...)`` and
``log.with_(task="cpu")`` for context fields. ``configure()`` points all output at a file,
STDOUT or STDERR with a level threshold; it can be called again (``/loglevel``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
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


def _json_value(value: object) -> object:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


def format_json(fields: Mapping[str, object]) -> str:
    """``fields`` as one compact JSON object (strings, numbers, booleans; others as
    their text), as Kapacitor's ``application/json`` log streams write a line."""
    return json.dumps({k: _json_value(v) for k, v in fields.items() if v is not None},
                      ensure_ascii=False, separators=(",", ":"))


def _timestamp(created: float) -> str:
    ts = dt.datetime.fromtimestamp(created, dt.UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _clean(line: str) -> str:
    """``line`` with its secrets redacted and lone surrogates escaped."""
    if "p=" in line or "://" in line or "uthorization" in line \
            or "password=" in line or "token=" in line:
        line = redact(line)
    if not line.isascii():  # a lone surrogate cannot be written: shown escaped instead
        line = line.encode("utf-8", "backslashreplace").decode("utf-8")
    return line


class LogfmtFormatter(logging.Formatter):
    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        """The fields of ``record`` in line order: ts, lvl, msg, context, err."""
        fields: dict[str, object] = {
            "ts": _timestamp(record.created),
            "lvl": _NAMES.get(record.levelno, "info"),
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "kv", {}))
        if record.exc_info:
            fields.pop("err", None)
            fields["err"] = self.formatException(record.exc_info).splitlines()[-1]
        return fields

    def format(self, record: logging.LogRecord) -> str:
        return _clean(format_logfmt(self.fields(record)))

    def format_json(self, record: logging.LogRecord) -> str:
        """The line as Kapacitor's JSON log streams write it: one compact object."""
        return _clean(format_json(self.fields(record)))


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


class LogfmtOutput(logging.StreamHandler[TextIO]):
    """Marker base: a handler configure() installed for the log output."""


class _ReopenableFile(LogfmtOutput):
    """Appends to a log file; flushes each line so a crash loses nothing."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        super().__init__(open(path, "a", encoding="utf-8"))  # noqa: SIM115 - owned by handler

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            super().close()


_lock = threading.RLock()
#: the level configure()/set_level() set for the log output (``[logging] level``)
_output_level = logging.INFO


def parse_level(text: str) -> int:
    level = LEVELS.get(text.strip().lower())
    if level is None:
        raise ValueError(f"invalid log level {text!r} (expected debug, info, warn or error)")
    return level


def configure(file: str = "STDERR", level: str = "INFO") -> None:
    """Send all kapa-core logs to ``file`` (a path, ``STDOUT`` or ``STDERR``) at ``level``."""
    global _output_level
    logger = logging.getLogger(ROOT)
    threshold = parse_level(level)
    with _lock:
        for old in list(logger.handlers):
            if isinstance(old, LogBroadcast):  # live-log followers stay attached
                continue
            logger.removeHandler(old)
            if isinstance(old, _ReopenableFile):
                old.close()
        handler: logging.Handler
        where = file.strip()
        if where.upper() in ("", "STDERR"):
            handler = LogfmtOutput(sys.stderr)
        elif where.upper() == "STDOUT":
            handler = LogfmtOutput(sys.stdout)
        else:
            handler = _ReopenableFile(where)
        handler.setFormatter(LogfmtFormatter())
        handler.setLevel(threshold)
        logger.addHandler(handler)
        _output_level = threshold
        _apply_levels(logger)
        logger.propagate = False


def set_level(level: str) -> None:
    global _output_level
    threshold = parse_level(level)
    logger = logging.getLogger(ROOT)
    with _lock:
        _output_level = threshold
        for handler in logger.handlers:
            if isinstance(handler, LogfmtOutput):
                handler.setLevel(threshold)
        _apply_levels(logger)


def _apply_levels(logger: logging.Logger) -> None:
    """The logger lets through what the output wants and what any live-log follower
    wants: Kapacitor streams debug lines to a follower whatever ``[logging] level``
    says. The output handlers keep their own level (under ``_lock``)."""
    wanted = [h.wanted_level() for h in logger.handlers if isinstance(h, LogBroadcast)]
    logger.setLevel(min([_output_level, *wanted]))


# -- live logs ------------------------------------------------------------------------
#: Lines a follower may have waiting before further lines are dropped (and counted).
FOLLOWER_CAPACITY = 10_000
#: Go's level names for ``lvl=<name>+`` (Kapacitor's: debug, info, error; kapa-core
#: also logs warn). An unknown name means every level, as in Kapacitor.
_THRESHOLDS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
               "error": logging.ERROR}


class LogFollower:
    """One reader of the live log (``GET /kapacitor/v1preview/logs``).

    ``tags`` are ``key=value`` filters that must all match a line: ``msg`` matches the
    message, ``lvl`` the level name, any other key a context field of the line (its text
    as the line shows it). ``threshold`` is the lowest level wanted (``lvl=info+``).
    Lines wait formatted in a bounded queue; a full queue drops lines and counts them,
    and the count is handed over with the next lines (``take``). ``wake`` is called
    (from whichever thread logged) when lines arrive for an empty, unwatched queue.
    """

    def __init__(self, tags: Sequence[tuple[str, str]], *, threshold: int = logging.DEBUG,
                 json_lines: bool = False, capacity: int = FOLLOWER_CAPACITY,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.tags = tuple(tags)
        self.threshold = threshold
        self.json_lines = json_lines
        self.capacity = capacity
        self.dropped_total = 0
        self._wake = wake
        self._queue: deque[str] = deque()
        self._dropped = 0
        self._rung = False
        self._lock = threading.Lock()
        exact = [_THRESHOLDS[v] for k, v in self.tags if k == "lvl" and v in _THRESHOLDS]
        #: the lowest level a line this follower can match may have
        self.lowest = max([threshold, *exact])

    def matches(self, record: logging.LogRecord, kv: Mapping[str, object]) -> bool:
        if record.levelno < self.threshold:
            return False
        for key, value in self.tags:
            if key == "msg":
                if record.getMessage() == value:
                    continue
            elif key == "lvl":
                if _NAMES.get(record.levelno, "info") == value:
                    continue
            field = kv.get(key)
            if field is None or str(field) != value:
                return False
        return True

    def offer(self, line: str) -> None:
        """Queue ``line`` (without its newline), or count it dropped when full."""
        with self._lock:
            if len(self._queue) >= self.capacity:
                self._dropped += 1
                self.dropped_total += 1
                return
            self._queue.append(line)
            ring = not self._rung
            self._rung = True
        if ring:
            self._wake()

    def take(self) -> tuple[list[str], int]:
        """The waiting lines and how many were dropped since the last call; after an
        empty answer the next line calls ``wake``."""
        with self._lock:
            lines = list(self._queue)
            self._queue.clear()
            dropped, self._dropped = self._dropped, 0
            self._rung = False
        return lines, dropped


#: The daemon the code logging now runs for: a daemon sets it for everything it starts
#: (its trio tasks and their worker threads inherit it), so that with two daemons in one
#: process each one's live log carries its own lines.
_owner: ContextVar[object | None] = ContextVar("kapa_core_log_owner", default=None)


def set_owner(owner: object) -> None:
    """Mark what this context (and the tasks and threads it starts) logs as ``owner``'s."""
    _owner.set(owner)


class LogBroadcast(logging.Handler):
    """Hands every log line to the followers whose filters it matches.

    A daemon has one; it is a handler of the kapa-core logger only while it has
    followers, so logging costs nothing extra when nobody follows. Each line is
    formatted once per format (logfmt, JSON) whatever the number of followers, and
    never waits: a follower that cannot keep up loses lines, not the daemon time.
    With an ``owner``, lines another owner logged (see :func:`set_owner`) are left out.
    """

    def __init__(self, owner: object | None = None) -> None:
        super().__init__()
        self.owner = owner
        self._followers: tuple[LogFollower, ...] = ()
        self._formatter = LogfmtFormatter()

    @property
    def followers(self) -> tuple[LogFollower, ...]:
        return self._followers

    def wanted_level(self) -> int:
        return min((f.lowest for f in self._followers), default=logging.CRITICAL)

    def add(self, follower: LogFollower) -> None:
        logger = logging.getLogger(ROOT)
        with _lock:
            self._followers = (*self._followers, follower)
            if self not in logger.handlers:
                logger.addHandler(self)
            _apply_levels(logger)

    def remove(self, follower: LogFollower) -> None:
        logger = logging.getLogger(ROOT)
        with _lock:
            self._followers = tuple(f for f in self._followers if f is not follower)
            if not self._followers:
                logger.removeHandler(self)
            _apply_levels(logger)

    def handle(self, record: logging.LogRecord) -> bool:
        # no handler lock: followers queue under their own locks and never block
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self.owner is not None:
            owner = _owner.get()
            if owner is not None and owner is not self.owner:
                return
        kv: Mapping[str, object] = getattr(record, "kv", {})
        logfmt = as_json = None
        for follower in self._followers:
            try:
                if not follower.matches(record, kv):
                    continue
                if follower.json_lines:
                    if as_json is None:
                        as_json = self._formatter.format_json(record)
                    follower.offer(as_json)
                else:
                    if logfmt is None:
                        logfmt = self._formatter.format(record)
                    follower.offer(logfmt)
            except Exception:  # one bad line or follower never breaks logging
                continue

    def note(self, follower: LogFollower, level: int, msg: str, **kv: object) -> str:
        """A line for ``follower`` alone (not logged), in its format."""
        fields: dict[str, object] = {"ts": _timestamp(time.time()),
                                     "lvl": _NAMES.get(level, "info"), "msg": msg, **kv}
        return _clean(format_json(fields) if follower.json_lines else format_logfmt(fields))


def stream_handler(stream: TextIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    return handler
