"""Glob patterns as Kapacitor reads them (Go's ``path.Match``), matched in linear time.

Every list endpoint's ``pattern`` parameter (tasks, templates, topics, topic handlers,
users, service tests) goes through :func:`compile_glob`. Syntax, as in Go:

- ``*`` any run of characters except ``/``; ``?`` one character except ``/``;
- ``[abc]``, ``[a-z]``, ``[^a-z]`` a character class (``\\`` escapes inside it);
- ``\\c`` the character ``c`` itself.

A malformed pattern raises :class:`GlobError` ("syntax error in pattern", Go's
``ErrBadPattern``). The pattern is translated to an RE2 program, which matches in time
linear in the name whatever the pattern (a backtracking matcher takes seconds on
``*a*a*a*a*a*a*ab`` against a long name, and minutes on a few thousand stars); runs of
``*`` are collapsed first since they mean the same as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from kapa_core.tick.regex import compile_regex

#: Most pattern elements accepted (a run of ``*`` counts once); a list filter has no
#: use for more, and it bounds the size of the compiled program.
MAX_PATTERN_LENGTH = 1024
_SPECIAL_IN_CLASS = "\\]^-["


class GlobError(ValueError):
    def __init__(self, message: str = "syntax error in pattern") -> None:
        super().__init__(message)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One character of a class at ``i`` (``\\`` escapes); the character and next index."""
    if i >= len(pattern):
        raise GlobError
    ch = pattern[i]
    if ch == "\\":
        if i + 1 >= len(pattern):
            raise GlobError
        return pattern[i + 1], i + 2
    if ch in "-]":
        raise GlobError
    return ch, i + 1


def _escape_class(ch: str) -> str:
    return "\\" + ch if ch in _SPECIAL_IN_CLASS else ch


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The class starting after ``[`` at ``i`` as RE2 syntax, and the index after ``]``."""
    negate = pattern[i:i + 1] == "^"
    if negate:
        i += 1
    ranges: list[str] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if pattern[i:i + 1] == "-":
            hi, i = _class_char(pattern, i + 1)
            if hi < lo:
                raise GlobError
        ranges.append(_escape_class(lo) if lo == hi
                      else f"{_escape_class(lo)}-{_escape_class(hi)}")
    body = "".join(ranges)
    return (f"[^{body}]" if negate else f"[{body}]"), i


def translate(pattern: str) -> str:
    """The RE2 expression that fully matches what ``pattern`` matches."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if len(out) >= MAX_PATTERN_LENGTH:
            raise GlobError(f"pattern longer than {MAX_PATTERN_LENGTH} elements")
        ch = pattern[i]
        if ch == "*":
            while i < len(pattern) and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise GlobError
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            text, i = _class(pattern, i + 1)
            out.append(text)
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a whole name matches ``pattern``."""
    try:
        program = compile_regex(translate(pattern))
    except re.error as exc:  # only when RE2's program budget is exceeded
        raise GlobError(f"pattern too complex: {exc}") from None

    def matches(name: str) -> bool:
        return program.fullmatch(name) is not None
    return matches


def filter_names(names: Iterable[str], pattern: str) -> list[str]:
    """The names matching ``pattern`` (all of them for an empty pattern); a malformed
    pattern matches nothing, as Kapacitor ignores ``path.Match``'s error when listing."""
    if not pattern:
        return list(names)
    try:
        matches = compile_glob(pattern)
    except GlobError:
        return []
    return [name for name in names if matches(name)]
