"""Command-line flags parsed exactly as Go's ``flag`` package parses them.

The ``kapacitor`` client is built on Go's ``flag`` package, and scripts written for it
depend on its rules, so ``kapa`` follows them to the letter (Go 1.19, the version
Kapacitor 1.5.7's client is built with):

* ``-name`` and ``--name`` are the same flag; a value is given as ``-name=value`` or
  ``-name value``;
* a boolean flag takes no separate value: ``-name`` sets it, ``-name=false`` (any spelling
  ``strconv.ParseBool`` accepts) sets it explicitly;
* parsing stops at the first argument that is not a flag (a lone ``-`` is an argument)
  or right after ``--``;
* errors are printed as Go prints them, followed by the flag set's usage, and the
  program exits with 2; ``-h``/``-help`` (when not defined) prints the usage and exits 0.

A :class:`FlagSet` with ``exit_on_error=False`` raises :class:`FlagError` (or
:class:`HelpRequested`) instead of exiting, after printing the same text.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, TextIO

from kapa_core.models.duration import Duration, format_go

__all__ = [
    "BoolValue", "DurationValue", "Flag", "FlagError", "FlagSet", "HelpRequested",
    "IntValue", "StringValue", "Value", "go_quote", "parse_bool",
]

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``: raises ValueError for anything else."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("parse error")


def go_quote(text: str) -> str:
    """A string quoted as Go's ``%q`` (``strconv.Quote``) writes it."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\v":
            out.append("\\v")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class Value(Protocol):
    """What a flag holds: Go's ``flag.Value``.

    ``set`` raises ValueError whose text Go would print after ``invalid value "x" for
    flag -name: ``. ``type_name`` is the word shown in the usage after the flag's name
    (Go's ``UnquoteUsage``: "" for booleans, "value" for custom values). ``is_bool``
    makes ``-name`` alone set it to true.
    """

    is_bool: bool
    type_name: str

    def set(self, text: str) -> None: ...

    def string(self) -> str: ...

    def zero_string(self) -> str: ...


class StringValue:
    is_bool = False
    type_name = "string"

    def __init__(self, value: str = "") -> None:
        self.value = value

    def set(self, text: str) -> None:
        self.value = text

    def string(self) -> str:
        return self.value

    def zero_string(self) -> str:
        return ""


class BoolValue:
    is_bool = True
    type_name = ""

    def __init__(self, value: bool = False) -> None:
        self.value = value

    def set(self, text: str) -> None:
        self.value = parse_bool(text)

    def string(self) -> str:
        return "true" if self.value else "false"

    def zero_string(self) -> str:
        return "false"


class IntValue:
    is_bool = False
    type_name = "int"

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def set(self, text: str) -> None:
        # strconv.ParseInt(s, 0, 64): optional sign, 0x/0o/0b prefixes, underscores only
        # with a prefix.
        body = text[1:] if text[:1] in "+-" else text
        if not body or body.startswith("_") or body.endswith("_"):
            raise ValueError("parse error")
        try:
            number = int(text, 0)
        except ValueError:
            raise ValueError("parse error") from None
        if not -(2**63) <= number < 2**63:
            raise ValueError("value out of range")
        self.value = number

    def string(self) -> str:
        return str(self.value)

    def zero_string(self) -> str:
        return "0"


class DurationValue:
    """A ``time.Duration`` flag; ``value`` is in nanoseconds."""

    is_bool = False
    type_name = "duration"

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def set(self, text: str) -> None:
        try:
            self.value = int(Duration.parse(text))
        except ValueError:
            raise ValueError("parse error") from None

    def string(self) -> str:
        return format_go(self.value)

    def zero_string(self) -> str:
        return "0s"


class Flag:
    """One defined flag: its name, usage text, value and default's text."""

    def __init__(self, name: str, usage: str, value: Value) -> None:
        self.name = name
        self.usage = usage
        self.value = value
        self.default = value.string()


class FlagError(Exception):
    """A command line the flag set refused (the text Go prints for it)."""


class HelpRequested(FlagError):
    """``-h`` or ``-help`` was given and is not a defined flag."""


class FlagSet:
    """A set of flags, parsed as Go's ``flag.FlagSet`` parses them.

    ``usage`` replaces the default usage printer (Go's ``FlagSet.Usage``); it is called
    on any parse error and for ``-h``. ``output`` defaults to the current
    ``sys.stderr`` (looked up when printing, so tests may redirect it).
    """

    def __init__(self, name: str, *, exit_on_error: bool = True,
                 usage: Callable[[], None] | None = None,
                 output: TextIO | None = None) -> None:
        self.name = name
        self.exit_on_error = exit_on_error
        self.usage = usage
        self._output = output
        self.flags: dict[str, Flag] = {}
        self.actual: dict[str, Flag] = {}
        self.args: list[str] = []
        self.parsed = False

    # -- definition -------------------------------------------------------------------
    def var(self, value: Value, name: str, usage: str) -> Flag:
        if name in self.flags:
            raise ValueError(f"{self.name} flag redefined: {name}")
        if not name or name.startswith("-") or "=" in name:
            raise ValueError(f"flag {name!r} begins with - or contains =")
        flag = Flag(name, usage, value)
        self.flags[name] = flag
        return flag

    def string(self, name: str, default: str, usage: str) -> StringValue:
        value = StringValue(default)
        self.var(value, name, usage)
        return value

    def bool(self, name: str, default: bool, usage: str) -> BoolValue:
        value = BoolValue(default)
        self.var(value, name, usage)
        return value

    def int(self, name: str, default: builtins.int, usage: str) -> IntValue:
        value = IntValue(default)
        self.var(value, name, usage)
        return value

    def duration(self, name: str, default_ns: builtins.int, usage: str) -> DurationValue:
        value = DurationValue(default_ns)
        self.var(value, name, usage)
        return value

    # -- output -----------------------------------------------------------------------
    @property
    def output(self) -> TextIO:
        return self._output if self._output is not None else sys.stderr

    def print_defaults(self) -> None:
        """Go's ``PrintDefaults``: every flag, sorted by name, with its usage."""
        self.output.write(self.defaults_text())

    def defaults_text(self) -> str:
        lines = []
        for name in sorted(self.flags):
            flag = self.flags[name]
            type_name, usage = unquote_usage(flag)
            text = f"  -{name}"
            if type_name:
                text += " " + type_name
            # One-letter boolean flags keep their usage on the same line.
            text += "\t" if len(text) <= 4 else "\n    \t"
            text += usage.replace("\n", "\n    \t")
            if flag.default != flag.value.zero_string():
                if isinstance(flag.value, StringValue):
                    text += f" (default {go_quote(flag.default)})"
                else:
                    text += f" (default {flag.default})"
            lines.append(text + "\n")
        return "".join(lines)

    def default_usage(self) -> None:
        if self.name:
            self.output.write(f"Usage of {self.name}:\n")
        else:
            self.output.write("Usage:\n")
        self.print_defaults()

    def _usage(self) -> None:
        if self.usage is None:
            self.default_usage()
        else:
            self.usage()

    def _fail(self, message: str) -> FlagError:
        self.output.write(message + "\n")
        self._usage()
        return FlagError(message)

    # -- parsing ----------------------------------------------------------------------
    def lookup(self, name: str) -> Flag | None:
        return self.flags.get(name)

    def is_set(self, name: str) -> builtins.bool:
        return name in self.actual

    def parse(self, arguments: Sequence[str]) -> list[str]:
        """Parse ``arguments``; returns (and keeps in ``args``) what follows the flags."""
        self.parsed = True
        self.args = list(arguments)
        try:
            while self._parse_one():
                pass
        except HelpRequested:
            if self.exit_on_error:
                raise SystemExit(0) from None
            raise
        except FlagError:
            if self.exit_on_error:
                raise SystemExit(2) from None
            raise
        return self.args

    def _parse_one(self) -> builtins.bool:
        if not self.args:
            return False
        s = self.args[0]
        if len(s) < 2 or s[0] != "-":
            return False
        minuses = 1
        if s[1] == "-":
            minuses = 2
            if len(s) == 2:  # "--" ends the flags
                self.args = self.args[1:]
                return False
        name = s[minuses:]
        if not name or name[0] in "-=":
            raise self._fail(f"bad flag syntax: {s}")
        self.args = self.args[1:]
        has_value = False
        value = ""
        eq = name.find("=", 1)
        if eq > 0:
            value = name[eq + 1:]
            has_value = True
            name = name[:eq]
        flag = self.flags.get(name)
        if flag is None:
            if name in ("help", "h"):
                self._usage()
                raise HelpRequested("flag: help requested")
            raise self._fail(f"flag provided but not defined: -{name}")
        if flag.value.is_bool:
            if has_value:
                try:
                    flag.value.set(value)
                except ValueError as exc:
                    raise self._fail(
                        f"invalid boolean value {go_quote(value)} for -{name}: {exc}"
                    ) from None
            else:
                flag.value.set("true")
        else:
            if not has_value and self.args:
                value = self.args[0]
                self.args = self.args[1:]
                has_value = True
            if not has_value:
                raise self._fail(f"flag needs an argument: -{name}")
            try:
                flag.value.set(value)
            except ValueError as exc:
                raise self._fail(
                    f"invalid value {go_quote(value)} for flag -{name}: {exc}"
                ) from None
        self.actual[name] = flag
        return True


def unquote_usage(flag: Flag) -> tuple[str, str]:
    """Go's ``UnquoteUsage``: a back-quoted word in the usage names the value."""
    usage = flag.usage
    start = usage.find("`")
    if start >= 0:
        end = usage.find("`", start + 1)
        if end >= 0:
            name = usage[start + 1:end]
            return name, usage[:start] + name + usage[end + 1:]
    return flag.value.type_name, usage
