"""Shared fixtures: no test sees the developer's KAPACITOR_* environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_kapacitor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAPACITOR_"):
            monkeypatch.delenv(name)
