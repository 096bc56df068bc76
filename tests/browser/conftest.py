"""Fixtures for tests that drive a page in headless Chromium (tests/browser/webdriver.py).

- ``browser``: one :class:`Browser` per test module (Chromium starts in about half a
  second, a page load takes milliseconds; one per test would mostly be start-up). Each
  test starts at the module's ``browser_viewport`` (DESKTOP, 1280x800, unless the module
  overrides that fixture, e.g. with ``PHONE``).
- The console stays clean: a test that uses ``browser`` fails when the page logged a
  SEVERE entry (``console.error``, an uncaught exception, a failed load) during it or
  its setup, listing them. ``@pytest.mark.allow_console_errors(r"regex", ...)`` lets
  matching entries through; with no pattern, all of them. Chromium logs every 4xx or 5xx
  answer to the page's own requests (fetch, XHR, assets, the favicon it asks for by
  itself) as a SEVERE "Failed to load resource" entry.
- ``artifacts``: where screenshots go: ``$KAPA_CORE_ARTIFACTS`` if set, else a directory
  under pytest's temporary directory (pytest keeps the last three runs'). Its path is
  printed at the end of the run. A failing test leaves a screenshot and the page's text
  there, named after the test, and its report says so.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.webdriver import DESKTOP, Browser, Viewport

ARTIFACTS_ENV = "KAPA_CORE_ARTIFACTS"
_WORKER_OUTPUT_KEY = "kapa_core_browser_artifacts"
_ARTIFACT_DIRS = pytest.StashKey[set[str]]()
_TEST_ARTIFACTS = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_console_errors(*patterns): the browser console may log SEVERE "
        "entries matching these regular expressions (any, when none is given)")
    config.stash[_ARTIFACT_DIRS] = set()


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """The directory for screenshots and other things a developer looks at afterwards."""
    configured = os.environ.get(ARTIFACTS_ENV)
    if configured:
        path = Path(configured).resolve()
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("browser-artifacts", numbered=False)
    request.config.stash[_ARTIFACT_DIRS].add(str(path))
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: its controller prints the path
        workeroutput[_WORKER_OUTPUT_KEY] = str(path)
    return path


@pytest.fixture(scope="module")
def browser_viewport() -> Viewport:
    """The viewport each test of the module starts with; override it in a module."""
    return DESKTOP


@pytest.fixture(scope="module")
def browser(browser_viewport: Viewport) -> Iterator[Browser]:
    with Browser(browser_viewport) as opened:
        yield opened


@pytest.fixture(autouse=True)
def _browser_test_start(request: pytest.FixtureRequest) -> None:
    """A test that switched to a phone does not leave the next one on it; the artifacts
    directory is looked up now, where a failure after the test will need it."""
    if "browser" in request.fixturenames:
        opened: Browser = request.getfixturevalue("browser")
        opened.set_viewport(request.getfixturevalue("browser_viewport"))
        request.node.stash[_TEST_ARTIFACTS] = request.getfixturevalue("artifacts")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fails a test whose page logged console errors; keeps evidence of any failure.
    Checked here, in the test's own phase, so that it is reported as the test failing
    (a fixture's teardown would report an error beside a pass)."""
    opened = getattr(item, "funcargs", {}).get("browser")
    if not isinstance(opened, Browser):
        return (yield)
    try:
        try:
            result = yield
        except (pytest.skip.Exception, KeyboardInterrupt):
            raise
        except BaseException:
            _keep_evidence(item, opened)
            raise
        marker = item.get_closest_marker("allow_console_errors")
        if marker is None or marker.args:
            errors = opened.console_errors(marker.args if marker else ())
            if errors:
                _keep_evidence(item, opened)
                pytest.fail("the page logged console errors:\n"
                            + "\n".join(f"  {entry}" for entry in errors), pytrace=False)
        return result
    finally:
        # What this test's page logged is not held against the next test.
        with contextlib.suppress(Exception):
            opened.clear_browser_log()


def _keep_evidence(item: pytest.Item, opened: Browser) -> None:
    """A screenshot and the page's text, in the artifacts directory, for a failed test."""
    directory = item.stash[_TEST_ARTIFACTS]
    stem = "failed-" + re.sub(r"[^\w.-]+", "_", item.nodeid).strip("_")
    try:
        screenshot = opened.screenshot(directory / f"{stem}.png")
        (directory / f"{stem}.txt").write_text(opened.describe_page(text_chars=20_000),
                                               encoding="utf-8")
        note = f"screenshot: {screenshot}\npage text: {directory / f'{stem}.txt'}"
    except Exception as exc:  # the browser may be what broke; the failure itself matters
        note = f"no screenshot could be taken: {exc}"
    item.add_report_section("call", "browser", note)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's controller hears where each worker put its artifacts."""
    path = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT_KEY)
    if path:
        node.config.stash[_ARTIFACT_DIRS].add(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    paths: set[str] = config.stash.get(_ARTIFACT_DIRS, set())
    for path in sorted(paths):
        terminalreporter.write_line(f"browser test artifacts (screenshots): {path}")
