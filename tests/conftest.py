"""Shared fixtures: no test sees the developer's KAPACITOR_* environment."""

from __future__ import annotations

import os

import pytest

from kapa_core.alert import kinds
from kapa_core.plugins import load_plugins


@pytest.fixture(autouse=True, scope="session")
def _builtin_handler_kinds() -> None:
    """TICKscripts evaluated outside a daemon know the installed handler kinds, as a
    daemon's do (a daemon installs its own for everything it runs)."""
    kinds.install(load_plugins().kinds())


@pytest.fixture(autouse=True)
def _clean_kapacitor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAPACITOR_"):
            monkeypatch.delenv(name)
