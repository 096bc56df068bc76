"""The console with ``[http] auth-enabled``: a login form, and only what the logged-in
user's permissions allow (the API refuses the rest regardless)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from tests.browser.webdriver import Browser

pytestmark = pytest.mark.integration

AUTH = {"enabled": True, "cache-expiration": "1h", "bcrypt-cost": 4, "meta-addr": ""}
PASSWORD = "pa55-word"
USERS = {"ops": ["api"], "cfg": ["config_api"], "writer": ["write_points"]}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    data_dir = str(tmp_path_factory.mktemp("console-auth") / "data")
    with DaemonProcess({"auth": AUTH}, data_dir=data_dir) as daemon:
        users = daemon.url + "/kapacitor/v1/users"
        assert httpx.post(users, json={"name": "root", "password": PASSWORD,
                                       "type": "admin"}).status_code == 200
        for name, permissions in USERS.items():
            assert httpx.post(users, json={"name": name, "password": PASSWORD,
                                           "permissions": permissions}).status_code == 200
    with DaemonProcess({"auth": AUTH, "http": {"auth-enabled": True}},
                       data_dir=data_dir) as daemon:
        yield daemon


def log_in(browser: Browser, daemon: DaemonProcess, user: str, password: str = PASSWORD
           ) -> None:
    browser.execute("sessionStorage.clear()")
    browser.get(f"{daemon.url}/console/")
    form = browser.wait_for("#login")
    form.find('input[name="username"]').send_keys(user)
    form.find('input[name="password"]').send_keys(password)
    form.find('button[type="submit"]').click()


def shown_nav(browser: Browser) -> list[str]:
    return [a.text for a in browser.find_all("nav a[data-nav]") if a.is_displayed()]


def test_login_form_first(browser: Browser, secured: DaemonProcess, artifacts: Path) -> None:
    browser.get(f"{secured.url}/console/")
    browser.wait_for("#login")
    assert not browser.find("#nav").is_displayed()
    assert browser.find("#login-error").text == ""
    browser.screenshot(artifacts / "login.png")


# the refused login's 401, which the browser logs as a failed load
@pytest.mark.allow_console_errors(r"/kapacitor/v1/me - .* 401")
def test_wrong_password(browser: Browser, secured: DaemonProcess) -> None:
    log_in(browser, secured, "ops", "not-the-password")
    browser.wait_for("#login-error", text="authorization failed")


def test_api_user_sees_tasks_but_not_configuration(browser: Browser,
                                                  secured: DaemonProcess) -> None:
    log_in(browser, secured, "ops")
    browser.wait_for("#task-list")
    assert browser.find("#username").text == "ops"
    assert shown_nav(browser) == ["Tasks", "Editor", "Alerts", "Daemon"]
    browser.find('nav a[data-nav="daemon"]').click()
    browser.wait_for("#daemon-version")
    assert browser.find_all("#config-sections") == []
    browser.find("#logout").click()
    browser.wait_for("#login")
    assert browser.execute("return sessionStorage.length") == 0


def test_config_user_gets_only_the_configuration(browser: Browser,
                                                 secured: DaemonProcess) -> None:
    log_in(browser, secured, "cfg")
    browser.wait_for('#config-sections details[data-section="smtp"]')
    assert shown_nav(browser) == ["Daemon"]
    assert browser.find_all("#daemon-version") == []  # /about needs api
    browser.get(f"{secured.url}/console/#/tasks")
    browser.wait_for(".denied", text='"api" permission')
    # the page only hides it: the API refuses it regardless
    assert httpx.get(f"{secured.url}/kapacitor/v1/tasks",
                     auth=("cfg", PASSWORD)).status_code == 403


def test_writer_is_told_what_it_may_do(browser: Browser, secured: DaemonProcess) -> None:
    log_in(browser, secured, "writer")
    browser.wait_for(".denied", text="may only write points")
    assert shown_nav(browser) == ["Daemon"]


def test_admin_sees_everything(browser: Browser, secured: DaemonProcess,
                               artifacts: Path) -> None:
    log_in(browser, secured, "root")
    browser.wait_for("#task-list")
    assert shown_nav(browser) == ["Tasks", "Editor", "Alerts", "Daemon"]
    browser.find('nav a[data-nav="daemon"]').click()
    browser.wait_for('#config-sections details[data-section="smtp"]')
    assert "on" in browser.find("#about").text
