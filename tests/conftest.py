"""Shared fixtures: no test sees the developer's KAPACITOR_* environment."""

from __future__ import annotations

import os
from typing import Any

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


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Captured output may hold lone surrogates (tests that log hostile input): a
    pytest-xdist worker sends its reports as UTF-8, so there they are written as
    ``\\udXXX`` escapes. Without workers the report is left as it is."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    report.sections = [(title, _encodable(text)) for title, text in report.sections]
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        if _encodable(text) != text:
            report.longrepr = _encodable(text)


COMPAT_CASES = "tests/compat/test_compat.py"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n N --dist loadgroup`` (pytest-xdist) each test module runs on one
    worker: its module-scoped daemons, servers and caches are made once, and its tests
    keep their order. The compatibility cases (one module, most of the suite's waiting)
    are spread one by one; each worker starts its own daemon for them. (pytest-xdist's
    own xdist_group marks do not reach its scheduler under pytest 9: a scheduler that
    splits by module is used instead.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return nodeid if module == COMPAT_CASES else module

    return ModuleScheduling(config, log)
