"""TICKscript regular expressions on RE2, the engine Kapacitor (Go's regexp) uses.

RE2 matches in linear time, so a pattern such as ``(a+)+$`` written in a task or a topic
handler's ``match`` cannot stall the daemon (Python's backtracking ``re`` takes seconds on
a few dozen characters), and the accepted syntax is Go's: a pattern Kapacitor refuses
(backreferences, look-around) is refused here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeGuard

# google-re2 ships no type information: the module is typed here by the Regex and
# RegexMatch protocols below, which is all the code base uses of it.
import re2  # type: ignore[import-untyped]  # google-re2 ships no types

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user, not printed by RE2

#: the compiled-pattern types a TICKscript regex value may have
PATTERN_TYPES: tuple[type, ...] = (re.Pattern, type(re2.compile("", _OPTIONS)))


class RegexMatch(Protocol):
    """What a match of a :class:`Regex` offers (RE2's and ``re``'s match objects both do)."""

    @property
    def lastindex(self) -> int | None: ...

    def group(self, group: int | str = ..., /) -> str | Any: ...

    def groups(self) -> tuple[str | Any, ...]: ...

    def groupdict(self) -> dict[str, str | Any]: ...

    def start(self, group: int | str = ..., /) -> int: ...

    def end(self, group: int | str = ..., /) -> int: ...

    def span(self, group: int | str = ..., /) -> tuple[int, int]: ...


class Regex(Protocol):
    """A compiled TICKscript regex: what :func:`compile_regex` returns."""

    @property
    def pattern(self) -> str: ...

    @property
    def groups(self) -> int: ...

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def search(self, text: str, /) -> RegexMatch | None: ...

    def match(self, text: str, /) -> RegexMatch | None: ...

    def fullmatch(self, text: str, /) -> RegexMatch | None: ...

    def finditer(self, text: str, /) -> Iterator[RegexMatch]: ...

    def sub(self, repl: str | Callable[[RegexMatch], str], text: str, /) -> str: ...


#: ``(?<name>...)``: Go's regexp before 1.22, which Kapacitor 1.5.7 is built with, only
#: knows ``(?P<name>...)``.
_ANGLE_NAME = re.compile(r"(?<!\\)\(\?<(?![=!])")


def compile_regex(pattern: str) -> Regex:
    """Compile ``pattern`` with RE2; a syntax error raises :class:`re.error`."""
    if "(?<" in pattern and _ANGLE_NAME.search(pattern):
        raise re.error("invalid perl operator: (?<")
    try:
        program: Regex = re2.compile(pattern, _OPTIONS)
        return program
    except re2.error as exc:
        message = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise re.error(str(message)) from None


#: RE2's words for a syntax error, and Go's (regexp/syntax) for the same error.
_GO_CODES = {
    "missing ]": "missing closing ]", "missing )": "missing closing )",
    "unexpected )": "unexpected )", "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid named capture group": "invalid named capture",
}


def go_regex_error(message: str) -> str:
    """``error parsing regexp: missing closing ]: `[```, Go's wording of an RE2 error
    such as ``missing ]: [``."""
    code, sep, expr = message.partition(": ")
    code = _GO_CODES.get(code, code)
    return f"error parsing regexp: {code}: `{expr}`" if sep else \
        f"error parsing regexp: {_GO_CODES.get(message, message)}"


def is_regex(value: object) -> TypeGuard[Regex]:
    return isinstance(value, PATTERN_TYPES)
