"""Compatibility cases: one TOML file per case, read with tomllib and written back with
the small writer below (multi-line literal strings keep scripts and JSON readable).

A case holds what is sent (``script``, ``points``...) and, under ``[expected]``, what
Kapacitor 1.5.7 answered, taken by ``python -m tests.compat.oracle``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASES = Path(__file__).parent / "cases"

#: Keys a case may set, in the order they are written.
INPUT_KEYS = ("description", "type", "db", "rp", "precision", "vars", "script", "points",
              "start", "stop", "inspect", "pending", "kapa_core_differs")


@dataclass
class Case:
    name: str  # path under cases/ without the suffix, e.g. "window/every_5s"
    path: Path
    data: dict[str, Any]
    expected: dict[str, Any] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return "compat." + self.name.replace("/", ".")

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def load(path: Path) -> Case:
    with path.open("rb") as f:
        data = tomllib.load(f)
    expected = data.pop("expected", {})
    name = path.relative_to(CASES).with_suffix("").as_posix()
    return Case(name, path, data, expected)


def all_cases(pattern: str = "**/*.toml") -> list[Case]:
    return [load(p) for p in sorted(CASES.glob(pattern))]


def _string(text: str) -> str:
    """A TOML string: a multi-line literal where that is exact, else a basic string."""
    if "'''" in text or any(ord(c) < 32 and c not in "\n\t" for c in text) \
            or "\x7f" in text or text.endswith("'"):
        return json.dumps(text, ensure_ascii=False)
    return "'''\n" + text + "'''" if "\n" in text else "'''" + text + "'''"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[\n" + "".join(f"  {_value(v)},\n" for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a case file")


def dump(case: Case) -> str:
    lines = []
    keys = [k for k in INPUT_KEYS if k in case.data]
    keys += sorted(k for k in case.data if k not in INPUT_KEYS)
    for key in keys:
        lines.append(f"{json.dumps(key)} = {_value(case.data[key])}")
    if case.expected:
        lines.append("\n[expected]")
        for key in sorted(case.expected):
            lines.append(f"{json.dumps(key)} = {_value(case.expected[key])}")
    return "\n".join(lines) + "\n"


def save(case: Case) -> None:
    case.path.write_text(dump(case), encoding="utf-8")
