"""Packages that type-check under ``mypy --strict`` (configured in pyproject.toml) stay so.

Packages become strict one at a time: add a package to ``STRICT_PACKAGES`` once
``python -m mypy --strict <package>`` reports no errors for it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Package directories (relative to the repository) that pass ``mypy --strict``.
STRICT_PACKAGES = ("kapa_core/gotemplate", "kapa_core/engine", "kapa_core/models",
                   "kapa_core/storage", "kapa_core/config", "kapa_core/alert", "kapa_core/auth",
                   "kapa_core/http", "kapa_core/pipeline", "kapa_core/influxdb",
                   "kapa_core/udf", "kapa_core/tick", "kapa_core/cli", "kapa_core/cloud.py",
                   "kapa_core/glob.py", "kapa_core/denylist.py", "kapa_core/logs.py",
                   "kapa_core/errors.py", "kapa_core/tlsconfig.py", "kapa_core/hookspecs.py",
                   "kapa_core/plugins.py")

#: What kapa_core.gotemplate, a library of its own, may import from the rest of kapa_core.
GOTEMPLATE_IMPORTS_ALLOWED: frozenset[str] = frozenset()


def test_strict_packages_have_no_type_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         *STRICT_PACKAGES],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 0 and not errors, (
        f"mypy --strict {' '.join(STRICT_PACKAGES)} (exit {result.returncode}):\n"
        + "\n".join(errors or [result.stdout, result.stderr]))


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
