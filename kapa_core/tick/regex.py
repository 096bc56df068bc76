"""TICKscript regular expressions on RE2, the engine Kapacitor (Go's regexp) uses.

RE2 matches in linear time, so a pattern such as ``(a+)+$`` written in a task or a topic
handler's ``match`` cannot stall the daemon (Python's backtracking ``re`` takes seconds on
a few dozen characters), and the accepted syntax is Go's: a pattern Kapacitor refuses
(backreferences, look-around) is refused here too.
"""

from __future__ import annotations

import re
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user, not printed by RE2

#: the compiled-pattern types a TICKscript regex value may have
PATTERN_TYPES: tuple[type, ...] = (re.Pattern, type(re2.compile("", _OPTIONS)))


def compile_regex(pattern: str) -> Any:
    """Compile ``pattern`` with RE2; a syntax error raises :class:`re.error`."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        message = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise re.error(str(message)) from None


def is_regex(value: Any) -> bool:
    return isinstance(value, PATTERN_TYPES)
