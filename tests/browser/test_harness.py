"""The browser harness itself, against pages served here: typing, clicking, waiting,
screenshots, the console-error check, the phone viewport, and no process left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser.png import read_png
from tests.browser.webdriver import (
    PHONE,
    Browser,
    Keys,
    Viewport,
    WaitTimeout,
    WebDriverError,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

FORM = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Harness form</title>
<style>
  body { margin: 0; font: 14px sans-serif; }
  #wide { display: block; } #narrow { display: none; }
  @media (max-width: 600px) { #wide { display: none; } #narrow { display: block; } }
  textarea { width: 90%; height: 200px; }
  #red { position: absolute; left: 0; top: 0; width: 40px; height: 40px; background: #f00; }
  #blue { position: absolute; right: 0; bottom: 0; width: 40px; height: 40px;
          background: #00f; }
</style></head>
<body>
<div id="red"></div><div id="blue"></div>
<form id="form" style="margin-top: 50px">
  <label>Name <input id="name" name="name" value="preset"></label>
  <textarea id="script" name="script"></textarea>
  <button id="check" type="submit">Check</button>
</form>
<pre id="out"></pre>
<button id="delete" type="button">Delete</button><p id="deleted"></p>
<p id="wide">wide layout</p><p id="narrow">narrow layout</p>
<script>
  let inputs = 0;
  document.getElementById('script').addEventListener('input', () => {
    document.body.dataset.inputs = ++inputs;
  });
  document.getElementById('delete').addEventListener('click', () => {
    document.getElementById('deleted').textContent = String(confirm('Delete cpu?'));
  });
  document.getElementById('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = document.getElementById('name').value;
    const script = document.getElementById('script').value;
    // The answer comes later, as a daemon's would.
    setTimeout(() => {
      document.getElementById('out').textContent = JSON.stringify({name, script});
    }, 150);
  });
</script>
</body></html>
"""

LATE = """<!doctype html><title>Late</title><body><p id="status">loading</p>
<script>
  setTimeout(() => { document.getElementById('status').textContent = 'ready';
    const p = document.createElement('p'); p.id = 'late'; p.textContent = 'arrived';
    document.body.append(p); }, 300);
</script>"""

ERRORS = """<!doctype html><title>Errors</title><body><p>broken page</p><script>
  console.log('just information');
  console.error('boom: the console logs an error');
  setTimeout(() => { throw new Error('thrown from a timer'); }, 0);
</script>"""

TALL = """<!doctype html><title>Tall</title>
<body style="margin: 0"><div style="height: 2000px; background: #0f0"></div></body>"""

PAGES = {"/form": FORM, "/late": LATE, "/errors": ERRORS, "/tall": TALL}

# TICKscript-like text: newlines, indentation, braces, quotes, a backslash, non-ASCII.
SCRIPT = "".join(
    f"// task {n}: 'caf\u00e9' \u2192 {{{{ .ID }}}}\n"
    f"var w{n} = stream\n"
    f"    |from()\n"
    f"        .measurement('cpu')\n"
    f"        .where(lambda: \"host\" =~ /web-\\d+/ AND \"cpu\" != 'cpu-total')\n"
    f"    |alert()\n"
    f"        .crit(lambda: \"usage_idle\" < {n})\n"
    f"        .message('{{{{ index .Tags \"host\" }}}} is {{{{ .Level }}}} {{}}')\n"
    for n in range(6))  # 48 lines, 1,632 characters: 1.5 s of typing


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/favicon.ico":  # Chromium asks; a 404 would be a console error
            self.send_response(204)
            self.end_headers()
            return
        page = PAGES.get(self.path)
        body = (page or "not found").encode()
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test output is for failures


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_typed_text_reaches_the_page_and_a_click_submits_it(browser: Browser,
                                                            site: str) -> None:
    browser.get(f"{site}/form")
    assert browser.title == "Harness form"
    textarea = browser.find("#script")
    textarea.send_keys(SCRIPT)
    assert textarea.value == SCRIPT
    name = browser.find("#name")
    assert name.value == "preset"
    name.clear()
    name.send_keys("cpu-alert")
    browser.find("#check").click()
    out = browser.wait_for("#out", text='"name":"cpu-alert"', timeout=5)
    assert json.loads(out.text) == {"name": "cpu-alert", "script": SCRIPT}


def test_special_keys_edit_what_was_typed(browser: Browser, site: str) -> None:
    browser.get(f"{site}/form")
    name = browser.find("#name")
    name.clear()
    name.send_keys("cpu-alertx" + Keys.BACKSPACE + Keys.HOME + ">")
    assert name.value == ">cpu-alert"
    textarea = browser.find("#script")
    textarea.send_keys("caf\u00e9 \U0001f600 {x}\n\U0001f525")  # emoji: beyond the BMP
    assert textarea.value == "caf\u00e9 \U0001f600 {x}\n\U0001f525"
    textarea.clear()
    textarea.set_value(SCRIPT)
    assert textarea.value == SCRIPT
    inputs = int(browser.execute("return document.body.dataset.inputs"))
    textarea.insert_text("\n" + SCRIPT)  # at the end, with input events
    assert textarea.value == SCRIPT + "\n" + SCRIPT
    assert int(browser.execute("return document.body.dataset.inputs")) > inputs


def test_a_confirmation_dialog_is_answered(browser: Browser, site: str) -> None:
    browser.get(f"{site}/form")
    browser.find("#delete").click()
    assert browser.alert_text() == "Delete cpu?"
    browser.accept_alert()
    assert browser.find("#deleted").text == "true"
    browser.find("#delete").click()
    browser.dismiss_alert()
    assert browser.find("#deleted").text == "false"


def test_elements_answer_for_their_attributes_and_visibility(browser: Browser,
                                                             site: str) -> None:
    browser.get(f"{site}/form")
    name = browser.find("#name")
    name.send_keys("!")
    assert (name.attribute("value"), name.value) == ("preset", "preset!")
    assert name.attribute("data-missing") is None
    assert browser.find("#wide").is_displayed() and not browser.find("#narrow").is_displayed()
    form = browser.find("form")
    assert [el.attribute("name") for el in form.find_all("input, textarea")] == [
        "name", "script"]
    assert form.find("button").text == "Check"
    assert browser.execute("return arguments[0].id", name) == "name"
    assert browser.execute("return document.querySelector('#name')") == name
    assert browser.find_all(".nothing") == []
    assert (browser.text_of("#wide"), browser.text_of(".nothing")) == ("wide layout", None)
    with pytest.raises(WebDriverError, match=r"no element matches '\.nothing'"):
        browser.find(".nothing")


def test_any_string_crosses_with_execute_json(browser: Browser, site: str) -> None:
    browser.get(f"{site}/form")
    odd = "a\ud800b\udfff \U0001f600 \u00e9\n{}\"\\"
    assert browser.execute_json(
        "return [arguments[0], arguments[0].length, arguments[1]]", odd, {"n": [1, None]}
    ) == [odd, len(odd.encode("utf-16-le", "surrogatepass")) // 2, {"n": [1, None]}]
    assert browser.execute_json("return Promise.resolve(arguments[0] + 1)", 41) == 42
    assert browser.execute_json("document.title = 'x'") is None
    with pytest.raises(WebDriverError, match=r"lone surrogate.*execute_json"):
        browser.execute("return arguments[0]", odd)


def test_waits_for_what_appears_later_and_says_what_was_there(browser: Browser,
                                                             site: str) -> None:
    browser.get(f"{site}/late")
    assert browser.find("#status").text == "loading"
    assert browser.wait_for("#late", timeout=5).text == "arrived"
    assert browser.wait_until(
        lambda: browser.find("#status").text == "ready", timeout=5) is True
    with pytest.raises(WaitTimeout) as missing:
        browser.wait_for("#status", text="done", timeout=0.3)
    message = str(missing.value)
    assert "'#status' with text containing 'done'" in message
    assert "1 element(s) match it: shown: 'ready'" in message
    assert "title: 'Late'" in message and "  | arrived" in message
    with pytest.raises(WaitTimeout, match="the status to say done"):
        browser.wait_until(lambda: browser.find("#status").text == "done", timeout=0.2,
                           message="the status to say done")
    with pytest.raises(WaitTimeout, match="last error: no such element"):
        browser.wait_until(lambda: browser.find("#never"), timeout=0.2)


def test_a_screenshot_is_a_png_of_the_viewport(browser: Browser, site: str,
                                               artifacts: Path) -> None:
    browser.get(f"{site}/form")
    shot = read_png(browser.screenshot(artifacts / "harness-form.png"))
    assert (shot.width, shot.height) == (1280, 800)
    assert shot.pixel(5, 5)[:3] == (255, 0, 0)  # the red square, top left
    assert shot.pixel(1275, 795)[:3] == (0, 0, 255)  # the blue one, bottom right
    assert shot.pixel(640, 795)[:3] == (255, 255, 255)
    browser.set_window_size(800, 600)
    shot = read_png(browser.screenshot(artifacts / "harness-form-800.png"))
    assert (shot.width, shot.height) == (800, 600)
    assert shot.pixel(795, 595)[:3] == (0, 0, 255)


def test_a_full_page_screenshot_holds_what_is_below_the_fold(browser: Browser, site: str,
                                                             artifacts: Path) -> None:
    browser.get(f"{site}/tall")
    shot = read_png(browser.screenshot(artifacts / "harness-tall.png", full_page=True))
    assert (shot.width, shot.height) == (1280, 2000)
    assert shot.pixel(10, 1990)[:3] == (0, 255, 0)


def test_the_phone_viewport(browser: Browser, site: str, artifacts: Path) -> None:
    browser.set_viewport(PHONE)
    browser.get(f"{site}/form")
    assert browser.viewport_size == (390, 844)
    assert browser.find("#narrow").is_displayed() and not browser.find("#wide").is_displayed()
    assert browser.execute("return navigator.maxTouchPoints") > 0
    shot = read_png(browser.screenshot(artifacts / "harness-form-phone.png"))
    assert (shot.width, shot.height) == (390, 844)
    assert shot.pixel(385, 839)[:3] == (0, 0, 255)
    browser.find("#script").send_keys("stream\n    |from()\n")
    browser.find("#check").click()
    out = browser.wait_for("#out", text='"script"', timeout=5)
    assert json.loads(out.text)["script"] == "stream\n    |from()\n"


def test_the_next_test_is_back_on_the_module_viewport(browser: Browser, site: str) -> None:
    browser.get(f"{site}/form")
    assert browser.viewport_size == (1280, 800)
    assert browser.execute("return navigator.maxTouchPoints") == 0


@pytest.mark.allow_console_errors
def test_console_errors_and_exceptions_are_caught(browser: Browser, site: str) -> None:
    browser.get(f"{site}/errors")
    browser.wait_until(lambda: len(browser.console_errors()) >= 2, timeout=5,
                       message="two console errors")
    errors = browser.console_errors()
    assert any("boom: the console logs an error" in e.message for e in errors), errors
    assert any("Uncaught Error: thrown from a timer" in e.message for e in errors), errors
    assert any("just information" in e.message for e in browser.browser_log())
    with pytest.raises(AssertionError, match="boom: the console logs an error"):
        browser.assert_no_console_errors()
    assert browser.console_errors(ignore=["boom", "thrown from a timer"]) == []
    browser.get(f"{site}/missing-page")
    assert any("404" in e.message and e.source == "network"
               for e in browser.console_errors()), browser.browser_log()


def test_close_ends_every_process_even_after_a_crash() -> None:
    with Browser(Viewport(300, 200)) as crashed:
        assert crashed.startup_seconds < 20
        crashed.get("data:text/html,<p>hi</p>")
        driver, chromium = crashed.driver_pid, crashed.chromium_pid
        assert {driver, chromium} <= set(crashed.pids())
        os.kill(chromium, signal.SIGKILL)
    assert crashed.pids() == []
    for pid in (driver, chromium):
        assert not _alive(pid), f"process {pid} is still running"
    crashed.close()  # a second close does nothing
    with pytest.raises(WebDriverError, match="the browser is closed"):
        crashed.get("data:text/html,<p>closed</p>")


KILLED_HOLDER = """
import os, signal
from tests.browser.webdriver import Browser
browser = Browser()
browser.get("data:text/html,<p>hi</p>")
print(browser.driver_pid, browser.chromium_pid, browser._driver.root, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit
"""


def test_the_browser_ends_when_the_process_holding_it_is_killed() -> None:
    result = subprocess.run([sys.executable, "-c", KILLED_HOLDER], cwd=ROOT, timeout=60,
                            capture_output=True, text=True, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    driver, chromium, root = result.stdout.split()
    deadline = time.monotonic() + 10
    while (_alive(int(driver)) or _alive(int(chromium)) or Path(root).exists()) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(int(driver)) and not _alive(int(chromium)), "the browser outlived it"
    assert not Path(root).exists(), f"{root} was left behind"


def test_a_browser_that_cannot_start_says_why_and_leaves_nothing() -> None:
    before = _children("chromedriver")  # the module's browser may be running
    with pytest.raises(WebDriverError, match="no chrome binary at /nonexistent/chromium"):
        Browser(chromium=Path("/nonexistent/chromium"))
    assert _children("chromedriver") == before


def _children(name: str) -> list[int]:
    """This process's children called ``name`` that are still running."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        state, ppid = text.rsplit(")", 1)[1].split()[:2]
        if comm == name and int(ppid) == os.getpid() and state != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_the_fixtures_fail_a_test_on_console_errors_and_keep_screenshots(
        tmp_path: Path) -> None:
    """Runs pytest on a few tests using these fixtures (a conftest that re-exports them),
    and reads what it reports."""
    (tmp_path / "conftest.py").write_text("from tests.browser.conftest import *  # noqa\n"
                                          "from tests.browser.conftest import "
                                          "pytest_configure, pytest_runtest_call, "
                                          "pytest_terminal_summary, _browser_test_start\n")
    (tmp_path / "test_inner.py").write_text(
        "import pytest\n"
        "def test_logs_an_error(browser):\n"
        "    browser.get(\"data:text/html,<script>console.error('inner boom')</script>\")\n"
        "@pytest.mark.allow_console_errors('inner boom')\n"
        "def test_allowed(browser):\n"
        "    browser.get(\"data:text/html,<script>console.error('inner boom')</script>\")\n"
        "@pytest.fixture\n"
        "def page(browser):\n"
        "    return browser\n"
        "def test_logs_an_error_through_another_fixture(page):\n"
        "    page.get(\"data:text/html,<script>console.error('inner boom')</script>\")\n"
        "def test_clean(browser):\n"
        "    browser.get('data:text/html,<p>clean</p>')\n"
        "def test_fails(browser):\n"
        "    browser.get('data:text/html,<p>the page at the failure</p>')\n"
        "    assert 1 == 2\n")
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "KAPA_CORE_ARTIFACTS": str(artifacts)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    assert "3 failed, 2 passed" in output, output
    assert "test_logs_an_error_through_another_fixture" in output, output
    assert "FAILED" in output and "test_logs_an_error" in output, output
    assert "the page logged console errors:" in output and "inner boom" in output, output
    assert f"browser test artifacts (screenshots): {artifacts}" in output, output
    failed = sorted(path.name for path in artifacts.iterdir())
    assert failed == ["failed-test_inner.py_test_fails.png",
                      "failed-test_inner.py_test_fails.txt",
                      "failed-test_inner.py_test_logs_an_error.png",
                      "failed-test_inner.py_test_logs_an_error.txt",
                      "failed-test_inner.py_test_logs_an_error_through_another_fixture.png",
                      "failed-test_inner.py_test_logs_an_error_through_another_fixture.txt",
                      ], failed
    assert "the page at the failure" in (
        artifacts / "failed-test_inner.py_test_fails.txt").read_text()
    assert f"screenshot: {artifacts}/failed-test_inner.py_test_fails.png" in output, output
