"""The whole tree type-checks under ``mypy --strict`` and stays so.

What is checked (``kapa_core`` and ``plugins``) and how strictly is set in pyproject.toml's
``[tool.mypy]``, so that a plain ``mypy`` in the repository checks the same. scripts/test
runs that check before the tests and sets ``KAPA_CORE_TYPES_CHECKED=1``, so the test here
does not run it a second time.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: What kapa_core.gotemplate, a library of its own, may import from the rest of kapa_core.
GOTEMPLATE_IMPORTS_ALLOWED: frozenset[str] = frozenset()


@pytest.mark.skipif(os.environ.get("KAPA_CORE_TYPES_CHECKED") == "1",
                    reason="scripts/test ran mypy --strict before the tests")
def test_the_tree_has_no_type_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 0 and not errors, (
        f"mypy --strict (exit {result.returncode}):\n"
        + "\n".join(errors or [result.stdout, result.stderr]))
    # every module of the tree was checked, none left out of [tool.mypy] files
    sources = sum(1 for top in ("kapa_core", "plugins") for _ in (ROOT / top).rglob("*.py"))
    assert f"no issues found in {sources} source files" in result.stdout, result.stdout


def test_scripts_test_type_checks_before_the_tests() -> None:
    """The check the test above skips under scripts/test is run there, before pytest."""
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    mypy = script.find("-m mypy --strict")
    assert 0 <= mypy < script.find("export KAPA_CORE_TYPES_CHECKED=1") \
        < script.find("-m pytest"), "scripts/test must run mypy --strict before pytest"


def test_gotemplate_imports_nothing_else_from_kapa_core() -> None:
    found: set[str] = set()
    for path in sorted((ROOT / "kapa_core" / "gotemplate").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found.update(f"{path.name}: {name}" for name in names
                         if name.split(".")[0] == "kapa_core"
                         and not name.startswith("kapa_core.gotemplate")
                         and name not in GOTEMPLATE_IMPORTS_ALLOWED)
    assert not found, "kapa_core.gotemplate imports other kapa_core modules:\n" + \
        "\n".join(sorted(found))
