"""A ``# type: ignore`` names its error codes and says why (issue 13).

One is acceptable only for what mypy cannot express (an untyped third-party library, a
base class found at run time, a deliberate ``__hash__ = None``...), with a short reason
after it on the same line or in a comment on the line above.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def unexplained(text: str) -> list[tuple[int, str]]:
    """The lines of ``text`` whose ``type: ignore`` lacks codes or a reason."""
    lines = text.splitlines()
    bad = []
    for number, line in enumerate(lines, 1):
        match = IGNORE.search(line)
        if match is None:
            continue
        reason_after = match["rest"].strip().lstrip("#").strip()
        above = lines[number - 2].strip() if number > 1 else ""
        if not match["codes"] or not (reason_after or above.startswith("#")):
            bad.append((number, line.strip()))
    return bad


def test_the_check_finds_an_unexplained_ignore() -> None:
    assert unexplained("x = f()  # type: ignore\n")
    assert unexplained("x = f()  # type: ignore[misc]\n")
    assert not unexplained("x = f()  # type: ignore[misc]  # untyped library\n")
    assert not unexplained("# the base is found at run time\nclass A(b):  # type: ignore[misc]\n")


def test_every_type_ignore_has_codes_and_a_reason() -> None:
    bad = []
    for package in ("kapa_core", "plugins"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in unexplained(path.read_text(encoding="utf-8")):
                bad.append(f"{path.relative_to(ROOT)}:{number}: {line}")
    assert not bad, "type: ignore without codes or a reason:\n" + "\n".join(bad)
