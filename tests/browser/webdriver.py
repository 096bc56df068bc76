"""A small W3C WebDriver client for headless Chromium, on httpx (no selenium).

A test gets a :class:`Browser` from the ``browser`` fixture (tests/browser/conftest.py)::

    browser.get(f"{daemon.url}/console/")
    editor = browser.wait_for("#editor textarea")       # waits until shown
    editor.send_keys("stream\\n    |from()\\n")          # real key events, newlines too
    browser.wait_for(".tick-error", text="line 2")       # shown and holding that text
    browser.wait_until(lambda: browser.execute("return window.ready === true"),
                       message="the page sets window.ready")
    browser.screenshot(artifacts / "editor.png")         # PNG of the viewport
    browser.set_viewport(PHONE)                          # the page sees 390x844, mobile
    browser.assert_no_console_errors()                   # the fixture also checks this

``find``/``find_all`` look once; ``wait_for``/``wait_until`` poll and, when time runs
out, fail with what the page showed (address, title, text, console errors).

The viewport is set by device-metrics emulation, not by resizing the window: in headless
Chromium a window still loses 143 pixels of height to browser UI nobody sees, and cannot
be narrower than 500 pixels, so a screenshot would not be the size asked for, nor a
phone's width what the page's media queries see.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.browser.chromedriver import CHROMEDRIVER, CHROMIUM, DriverProcess

T = TypeVar("T")

#: The key under which W3C WebDriver passes a DOM element by reference.
ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"


@dataclass(frozen=True)
class Viewport:
    """What the page sees: its size in CSS pixels, and whether it is on a phone."""

    width: int
    height: int
    mobile: bool = False


DESKTOP = Viewport(1280, 800)
#: A phone held upright (an iPhone 12 to 15): 390x844 CSS pixels.
PHONE = Viewport(390, 844, mobile=True)
DEFAULT_TIMEOUT = 15.0
POLL_INTERVAL = 0.05

CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Shared memory in /tmp, not /dev/shm: a container's 64 MB /dev/shm crashes renderers
    # on big pages. Debian's /usr/bin/chromium means to add this when /dev/shm is small,
    # but its check breaks where findmnt lists /dev/shm twice (as on this machine).
    "--disable-dev-shm-usage",
)
#: Errors that mean "not there yet" while polling: the page is still being built.
TRANSIENT_ERRORS = frozenset({"no such element", "stale element reference"})


class WebDriverError(Exception):
    """A command chromedriver refused; ``error`` is the W3C error code."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


class WaitTimeout(AssertionError):
    """A wait ran out of time; the message says what the page showed then. An
    AssertionError, so that pytest reports a failed test, not a crashed one."""


class Keys:
    """WebDriver's codes for keys that are not characters, for ``send_keys``."""

    BACKSPACE = "\ue003"
    TAB = "\ue004"
    ENTER = "\ue007"
    SHIFT = "\ue008"
    CONTROL = "\ue009"
    ESCAPE = "\ue00c"
    END = "\ue010"
    HOME = "\ue011"
    ARROW_LEFT = "\ue012"
    ARROW_UP = "\ue013"
    ARROW_RIGHT = "\ue014"
    ARROW_DOWN = "\ue015"
    DELETE = "\ue017"


@dataclass(frozen=True)
class LogEntry:
    """One message of the browser's console (or a failed load, source ``network``)."""

    level: str  # SEVERE, WARNING, INFO, DEBUG
    message: str
    source: str  # console-api, javascript (uncaught errors), network...
    timestamp: int  # milliseconds since the epoch

    def __str__(self) -> str:
        return f"{self.level} [{self.source}] {self.message}"


class Element:
    """A DOM element, by the reference chromedriver gave for it. After the page replaces
    the element, commands on it fail with ``stale element reference``: find it again."""

    def __init__(self, browser: Browser, element_id: str) -> None:
        self._browser = browser
        self.id = element_id

    def __repr__(self) -> str:
        return f"<Element {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Element) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _command(self, method: str, suffix: str, body: dict[str, Any] | None = None) -> Any:
        return self._browser.command(method, f"/element/{self.id}{suffix}", body)

    def click(self) -> None:
        """Scrolls the element into view and clicks its centre, as a user would; fails
        (``element click intercepted``) if something else covers that point."""
        self._command("POST", "/click", {})

    @property
    def text(self) -> str:
        """The text the user sees (hidden descendants left out)."""
        text: str = self._command("GET", "/text")
        return text

    def send_keys(self, text: str) -> None:
        """Types ``text`` key by key into the element (focusing it first, the caret at
        the end). ``\\n`` is Enter, ``\\t`` is Tab (which moves the focus on, out of a
        textarea), characters from :class:`Keys` press those keys. chromedriver cannot
        type characters beyond the BMP (emoji): those are inserted as an input method
        would. About 1 ms a character: for long text where typing is not the point,
        see :meth:`insert_text` and :meth:`set_value`."""
        for position, (typed, run) in enumerate(_typing_runs(text)):
            if typed:
                self._command("POST", "/value", {"text": run})
            else:
                if position == 0:
                    self._browser.execute(_FOCUS_AT_END_JS, self)
                self._browser.cdp("Input.insertText", text=run)

    def insert_text(self, text: str) -> None:
        """Puts ``text`` at the end of the element's content (an input, a textarea or
        an editable element) in one go, as an input method would: ``input`` events (a
        line and a line break each get one) but no key events; any length, any
        character, milliseconds for a long script."""
        self._browser.execute(_FOCUS_AT_END_JS, self)
        self._browser.cdp("Input.insertText", text=text)

    def clear(self) -> None:
        """Empties an input, a textarea or an editable element."""
        self._command("POST", "/clear", {})

    def set_value(self, text: str) -> None:
        """Sets an input's or textarea's value at once and fires ``input`` and
        ``change``: for long text where typing is not what the test is about. No key
        events, so key handlers (auto-indent, completion) do not run."""
        self._browser.execute(
            "const [el, text] = arguments; el.value = text;"
            "el.dispatchEvent(new Event('input', {bubbles: true}));"
            "el.dispatchEvent(new Event('change', {bubbles: true}));", self, text)

    def attribute(self, name: str) -> str | None:
        """The attribute as written in the HTML (None when absent)."""
        value: str | None = self._command("GET", f"/attribute/{name}")
        return value

    def dom_property(self, name: str) -> Any:
        """A DOM property: ``value`` of an input is what is typed now, not the attribute."""
        return self._command("GET", f"/property/{name}")

    @property
    def value(self) -> str:
        return str(self.dom_property("value"))

    def is_displayed(self) -> bool:
        displayed: bool = self._command("GET", "/displayed")
        return displayed

    def find(self, css: str) -> Element:
        """The first descendant matching ``css``, now (no waiting)."""
        return self._browser._find(css, f"/element/{self.id}/element")

    def find_all(self, css: str) -> list[Element]:
        return self._browser._find_all(css, f"/element/{self.id}/elements")


def _typing_runs(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into runs chromedriver can type (True) and runs beyond the BMP."""
    runs: list[tuple[bool, str]] = []
    for char in text:
        typed = ord(char) <= 0xFFFF
        if runs and runs[-1][0] == typed:
            runs[-1] = (typed, runs[-1][1] + char)
        else:
            runs.append((typed, char))
    return runs


# Runs in the page: focuses the element with the caret after its content.
_FOCUS_AT_END_JS = """
const el = arguments[0];
el.focus();
try {
  el.setSelectionRange(el.value.length, el.value.length);
} catch (notTextField) {  // an editable element (or an input without a caret)
  const range = document.createRange();
  range.selectNodeContents(el);
  range.collapse(false);
  getSelection().removeAllRanges();
  getSelection().addRange(range);
}
"""

# Runs in the page: the first element matching the selector that is shown (when asked)
# and holds the text (when given), else null. One round trip a poll.
_MATCH_JS = """
const [css, text, visible] = arguments;
const shown = (el) => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== 'hidden';
const textOf = (el) => (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement)
    ? el.value : (el.innerText ?? el.textContent ?? '');
for (const el of document.querySelectorAll(css)) {
  if (visible && !shown(el)) continue;
  if (text !== null && !textOf(el).includes(text)) continue;
  return el;
}
return null;
"""

_DESCRIBE_MATCHES_JS = """
const els = [...document.querySelectorAll(arguments[0])];
return els.slice(0, 5).map((el) => [el.getClientRects().length > 0,
    (el.innerText ?? el.textContent ?? '').slice(0, 200)]).concat([[null, els.length]]);
"""


class Browser:
    """One chromedriver, one Chromium and one WebDriver session. ``close()`` (or leaving
    a ``with`` block) ends all of them, also after a failure."""

    def __init__(self, viewport: Viewport = DESKTOP, *, chromium: Path = CHROMIUM,
                 chromedriver: Path = CHROMEDRIVER, command_timeout: float = 60.0) -> None:
        started = time.monotonic()
        self._driver = DriverProcess(chromedriver=chromedriver)
        # trust_env=False: an HTTP_PROXY meant for the outside must not carry loopback
        self._client = httpx.Client(base_url=self._driver.url, timeout=command_timeout,
                                    trust_env=False)
        self._session: str | None = None
        self._log: list[LogEntry] = []
        self.chromium_pid = 0
        self.default_viewport = viewport
        try:
            self._session = self._new_session(chromium, viewport)
            self.command("POST", "/timeouts", {"pageLoad": 30_000, "script": 30_000,
                                               "implicit": 0})
            self.set_viewport(viewport)
        except BaseException:
            self.close()
            raise
        #: Seconds from starting chromedriver to a usable session (0.3 to 0.9 here).
        self.startup_seconds = time.monotonic() - started

    def _new_session(self, chromium: Path, viewport: Viewport) -> str:
        # The window's size hardly matters: the viewport is then set exactly by emulation.
        args = [*CHROMIUM_ARGS, f"--user-data-dir={self._driver.profile}",
                f"--window-size={viewport.width},{viewport.height}"]
        capabilities = {"browserName": "chrome",
                        "goog:chromeOptions": {"binary": str(chromium), "args": args},
                        "goog:loggingPrefs": {"browser": "ALL"}}
        response = self._client.post(
            "/session", json={"capabilities": {"alwaysMatch": capabilities}})
        try:
            value = response.json().get("value") or {}
        except ValueError:
            value = {}
        if response.is_error or "sessionId" not in value:
            raise WebDriverError(value.get("error", f"HTTP {response.status_code}"),
                                 f"{value.get('message', response.text)}\n"
                                 f"chromedriver's log:\n{self._driver.log_tail()}")
        session: str = value["sessionId"]
        self.chromium_pid = int(value.get("capabilities", {}).get("goog:processID", 0))
        return session

    # -- plumbing ---------------------------------------------------------------

    def command(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Sends one WebDriver command of this session (``path`` after the session id)
        and returns its ``value``; a refusal raises :class:`WebDriverError`."""
        if self._session is None:
            raise WebDriverError("invalid session id", "the browser is closed")
        try:
            response = self._client.request(method, f"/session/{self._session}{path}",
                                            json=body)
        except UnicodeEncodeError as exc:
            raise WebDriverError("invalid argument", f"{method} {path}: a string holds a "
                                 f"lone surrogate ({exc.reason}), which chromedriver cannot "
                                 "take: pass it with execute_json()") from None
        try:
            value = response.json()["value"]
        except (ValueError, KeyError) as exc:
            raise WebDriverError("unknown error", f"{method} {path}: HTTP "
                                 f"{response.status_code} {response.text[:500]}") from exc
        if response.is_error:
            details = value if isinstance(value, dict) else {"message": str(value)}
            error = str(details.get("error", "unknown error"))
            # chromedriver repeats the code ("no such element: no such element: ...") and
            # appends its own version: both left out.
            message = str(details.get("message", "")).split("\n  (Session info")[0]
            while message.startswith(f"{error}: "):
                message = message[len(error) + 2:]
            raise WebDriverError(error, message)
        return value

    def cdp(self, cmd: str, **params: Any) -> Any:
        """A Chrome DevTools Protocol command, through chromedriver."""
        return self.command("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, dict):
            if ELEMENT_KEY in value:
                return Element(self, value[ELEMENT_KEY])
            return {key: self._wrap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._wrap(item) for item in value]
        return value

    def _unwrap(self, value: Any) -> Any:
        if isinstance(value, Element):
            return {ELEMENT_KEY: value.id}
        if isinstance(value, dict):
            return {key: self._unwrap(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._unwrap(item) for item in value]
        return value

    def _find(self, css: str, path: str = "/element") -> Element:
        try:
            found = self.command("POST", path, {"using": "css selector", "value": css})
        except WebDriverError as exc:
            if exc.error == "no such element":
                raise WebDriverError(exc.error, f"no element matches {css!r} on "
                                     f"{self.url} (find() does not wait: wait_for() does)"
                                     ) from None
            raise
        return Element(self, found[ELEMENT_KEY])

    def _find_all(self, css: str, path: str = "/elements") -> list[Element]:
        found = self.command("POST", path, {"using": "css selector", "value": css})
        return [Element(self, item[ELEMENT_KEY]) for item in found]

    # -- pages ------------------------------------------------------------------

    def get(self, url: str) -> None:
        """Opens ``url`` and returns once the page's ``load`` event has fired."""
        self.command("POST", "/url", {"url": url})

    def refresh(self) -> None:
        self.command("POST", "/refresh", {})

    @property
    def url(self) -> str:
        url: str = self.command("GET", "/url")
        return url

    @property
    def title(self) -> str:
        title: str = self.command("GET", "/title")
        return title

    def find(self, css: str) -> Element:
        """The first element matching ``css`` now; raises if there is none."""
        return self._find(css)

    def find_all(self, css: str) -> list[Element]:
        """Every element matching ``css`` now, in document order (maybe none)."""
        return self._find_all(css)

    def execute_json(self, js: str, *args: Any) -> Any:
        """Like :meth:`execute` for JSON values only (no elements), but carried as JSON
        text: any string crosses intact, lone surrogates (``"\\ud800"``) included, which
        chromedriver refuses in both directions (its JSON parser rejects them, and
        "cannot deserialize the result value")."""
        wrapper = ("const args = JSON.parse(arguments[0]);"
                   " return Promise.resolve((function () {\n" + js + "\n}).apply(null, args))"
                   ".then((result) => JSON.stringify(result === undefined ? null : result));")
        text = self.command("POST", "/execute/sync",
                            {"script": wrapper, "args": [json.dumps(list(args))]})
        return json.loads(text)

    def text_of(self, css: str) -> str | None:
        """The shown text of the first element matching ``css`` (None if there is none),
        read in one step: no element reference to go stale on a page that redraws."""
        text: str | None = self.execute(
            "const el = document.querySelector(arguments[0]);"
            " return el === null ? null : el.innerText", css)
        return text

    def execute(self, js: str, *args: Any) -> Any:
        """Runs ``js`` as a function body in the page (``arguments[0]``... are ``args``;
        elements pass both ways) and returns what it ``return``s; a returned promise is
        awaited, so ``return fetch(url).then(r => r.status)`` works."""
        return self._wrap(self.command("POST", "/execute/sync",
                                       {"script": js, "args": self._unwrap(list(args))}))

    # -- waiting ----------------------------------------------------------------

    def wait_until(self, condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT,
                   message: str = "") -> T:
        """Calls ``condition`` every 50 ms until it returns something truthy, and
        returns that. Elements missing or replaced meanwhile count as "not yet". When
        ``timeout`` seconds pass, raises :class:`WaitTimeout` with ``message``, the last
        result and what the page showed."""
        result, last_error = self._poll(condition, timeout)
        if result:
            return result
        what = message or getattr(condition, "__qualname__", repr(condition))
        detail = f"last error: {last_error}" if last_error else f"last result: {result!r}"
        raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; {detail}\n"
                          f"{self.describe_page()}")

    def wait_for(self, css: str, timeout: float = DEFAULT_TIMEOUT, text: str | None = None,
                 *, visible: bool = True) -> Element:
        """Waits for an element matching ``css`` that is shown (``visible=False``: only
        present) and whose text (an input's value) contains ``text`` when given."""
        def match() -> Element | None:
            found: Element | None = self.execute(_MATCH_JS, css, text, visible)
            return found
        found, _ = self._poll(match, timeout)
        if found is not None:
            return found
        wanted = f"{'a shown' if visible else 'an'} element matching {css!r}" + (
            f" with text containing {text!r}" if text is not None else "")
        raise WaitTimeout(f"timed out after {timeout:g}s waiting for {wanted}; "
                          f"{self._describe_matches(css)}\n{self.describe_page()}")

    def _poll(self, condition: Callable[[], T], timeout: float
              ) -> tuple[T | None, WebDriverError | None]:
        """The first truthy result of ``condition`` within ``timeout``, else the last
        result (or the transient error that was raised instead of one)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                result: T | None = condition()
                last_error = None
            except WebDriverError as exc:
                if exc.error not in TRANSIENT_ERRORS:
                    raise
                result, last_error = None, exc
            if result or time.monotonic() >= deadline:
                return result, last_error
            time.sleep(POLL_INTERVAL)

    def _describe_matches(self, css: str) -> str:
        try:
            *matches, (_, count) = self.execute(_DESCRIBE_MATCHES_JS, css)
        except WebDriverError as exc:
            return f"(could not look: {exc})"
        if not count:
            return "no element matches it"
        shown = "; ".join(f"{'shown' if shown else 'hidden'}: {text!r}"
                          for shown, text in matches)
        return f"{count} element(s) match it: {shown}"

    def describe_page(self, text_chars: int = 1500) -> str:
        """Where the browser is and what it shows, for failure messages."""
        try:
            url, title, text = self.execute(
                "return [location.href, document.title,"
                " document.body ? document.body.innerText : '']")
        except (WebDriverError, httpx.HTTPError) as exc:
            return f"(the page could not be read: {exc})"
        text = str(text)
        if len(text) > text_chars:
            text = text[:text_chars] + f"... ({len(text) - text_chars} more characters)"
        lines = [f"page: {url} title: {title!r}", "page text:",
                 *("  | " + line for line in text.splitlines())]
        with contextlib.suppress(WebDriverError, httpx.HTTPError):
            errors = self.console_errors()
            if errors:
                lines += ["console errors:", *(f"  {entry}" for entry in errors)]
        return "\n".join(lines)

    # -- dialogs (alert, confirm, prompt) ---------------------------------------------

    def alert_text(self) -> str:
        """The message of the open dialog. A dialog left open is dismissed by the next
        other command, which then fails with ``unexpected alert open``."""
        text: str = self.command("GET", "/alert/text")
        return text

    def accept_alert(self) -> None:
        """Presses OK on the open dialog (``confirm()`` returns true)."""
        self.command("POST", "/alert/accept", {})

    def dismiss_alert(self) -> None:
        self.command("POST", "/alert/dismiss", {})

    # -- viewport and screenshots -------------------------------------------------

    def set_window_size(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Makes the page's viewport ``width`` x ``height`` CSS pixels (screenshots are
        that size). ``mobile=True`` also emulates a phone: the page's ``<meta
        name=viewport>`` is honoured (without one, a phone lays the page out 980 pixels
        wide) and touch is reported. Kept across navigations."""
        self.cdp("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=mobile)
        self.cdp("Emulation.setTouchEmulationEnabled", enabled=mobile, maxTouchPoints=5)

    def set_viewport(self, viewport: Viewport) -> None:
        self.set_window_size(viewport.width, viewport.height, mobile=viewport.mobile)

    @property
    def viewport_size(self) -> tuple[int, int]:
        width, height = self.execute("return [innerWidth, innerHeight]")
        return int(width), int(height)

    def screenshot(self, path: Path | str, *, full_page: bool = False) -> Path:
        """Saves a PNG of the viewport (``full_page``: of the whole scrollable page) to
        ``path``, creating its directory; returns the path."""
        if full_page:
            width, height = self.execute(
                "const e = document.documentElement;"
                " return [Math.max(e.scrollWidth, innerWidth),"
                " Math.max(e.scrollHeight, innerHeight)]")
            data = self.cdp("Page.captureScreenshot", format="png",
                            captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": width, "height": height,
                                  "scale": 1})["data"]
        else:
            data = self.command("GET", "/screenshot")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
        return target

    # -- the console --------------------------------------------------------------

    def browser_log(self) -> list[LogEntry]:
        """Every console message (and failed load) since the session started or
        :meth:`clear_browser_log`. chromedriver hands each entry out once (``POST
        /se/log``; the legacy ``GET /log`` is gone in W3C mode), so they are kept here."""
        for raw in self.command("POST", "/se/log", {"type": "browser"}):
            self._log.append(LogEntry(level=raw.get("level", ""),
                                      message=raw.get("message", ""),
                                      source=raw.get("source", ""),
                                      timestamp=int(raw.get("timestamp", 0))))
        return list(self._log)

    def clear_browser_log(self) -> None:
        self.browser_log()
        self._log.clear()

    def console_errors(self, ignore: Iterable[str] = ()) -> list[LogEntry]:
        """SEVERE entries (console.error, uncaught exceptions and rejections, failed
        loads, HTTP error responses to the page's requests) except those matching one of
        the ``ignore`` regular expressions."""
        patterns = [re.compile(pattern) for pattern in ignore]
        return [entry for entry in self.browser_log() if entry.level == "SEVERE"
                and not any(pattern.search(entry.message) for pattern in patterns)]

    def assert_no_console_errors(self, ignore: Sequence[str] = ()) -> None:
        errors = self.console_errors(ignore)
        assert not errors, "the page logged console errors:\n" + "\n".join(
            f"  {entry}" for entry in errors)

    # -- the end ------------------------------------------------------------------

    @property
    def driver_pid(self) -> int:
        return self._driver.pid

    def pids(self) -> list[int]:
        """chromedriver's, Chromium's and their helpers' processes still alive (also
        after :meth:`close`, when there should be none)."""
        return self._driver.stray_pids()

    def close(self) -> None:
        """Ends the session, Chromium and chromedriver (by force if they hang) and
        removes the profile. Safe to call twice, or after a failed start."""
        session, self._session = self._session, None
        try:
            if session is not None:
                with contextlib.suppress(httpx.HTTPError):
                    self._client.delete(f"/session/{session}", timeout=5.0)
        finally:
            self._client.close()
            self._driver.stop()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
