"""The web console in headless Chromium, against a real daemon: a task written in the
editor (an error shown at its line, then fixed), its graph counting the points written
through /write, the alert's event on its topic's page, "Try it", the task actions, the
daemon page, templates' vars, a phone-sized screen and the weight of the first view.

Each test leaves screenshots of what it checked in the ``artifacts`` directory."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core import __version__
from kapa_core.testing import DaemonProcess
from tests.browser.webdriver import PHONE, Browser

pytestmark = pytest.mark.integration

SCRIPT_WITH_ERROR = """stream
    |from()
        .measurment('cpu')
    |window()
        .period(10s)
        .every(10s)
    |mean('usage')
    |alert()
        .crit(lambda: "mean" > 80)
        .message('{{ .ID }} is {{ .Level }}: {{ index .Fields "mean" }}')
        .topic('cpu')
"""
SCRIPT = SCRIPT_WITH_ERROR.replace("measurment", "measurement")
POINTS = "\n".join(f"cpu,host=web usage={value} {second}"
                   for second, value in [(0, 85), (5, 95), (10, 90), (15, 85), (20, 60)])


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"smtp": {"from": "kapa@example.com"}}) as running:
        yield running


def api(daemon: DaemonProcess, path: str) -> str:
    return f"{daemon.url}/kapacitor/v1{path}"


def write(daemon: DaemonProcess, body: str) -> None:
    answer = httpx.post(f"{daemon.url}/write", params={"db": "telegraf", "rp": "autogen",
                                                       "precision": "s"}, content=body)
    assert answer.status_code == 204, answer.text


write_db = write


def node_count(browser: Browser, node: str, count: str) -> str:
    return browser.find(f'#task-graph g.node[data-node="{node}"] .count-{count} .v').text


def open_view(browser: Browser, daemon: DaemonProcess, hash_: str) -> None:
    browser.get(f"{daemon.url}/console/{hash_}")


def test_new_task_shows_error_at_its_line_then_saves_and_counts_points(
        browser: Browser, daemon: DaemonProcess, artifacts: Path) -> None:
    open_view(browser, daemon, "#/tasks")
    browser.wait_for("#task-list", text="No tasks yet")
    browser.find("#new-task").click()
    editor = browser.wait_for("#script")
    browser.find("#task-id").send_keys("cpu_alert")
    # a syntax error: where the daemon's parser stops, the page shows it
    unclosed = SCRIPT.replace(".every(10s)", ".every(10s")
    expected = httpx.post(api(daemon, "/scripts/check"), json={"script": unclosed}).json()
    (parse_error,) = expected["errors"]
    assert parse_error["message"].startswith("parser: ")
    editor.set_value(unclosed)
    shown = browser.wait_for(f'#script-errors li[data-line="{parse_error["line"]}"]')
    assert shown.attribute("data-column") == str(parse_error["column"])
    assert parse_error["message"] in shown.text
    assert browser.find_all(f'.gutter .ln.error[data-line="{parse_error["line"]}"]')
    browser.screenshot(artifacts / "editor-syntax-error.png")

    # a misspelled property: found when the script is evaluated, shown at its place
    editor.set_value(SCRIPT_WITH_ERROR)
    error = browser.wait_for('#script-errors li[data-line="3"]', text="measurment")
    assert error.attribute("data-column") == "10"
    assert "did you mean measurement" in error.text
    assert browser.find('.gutter .ln.error[data-line="3"]').text == "3"
    assert browser.find("#check-status").text == "✗ 1 error"
    browser.screenshot(artifacts / "editor-error.png")

    # fix it by typing, as a user would: the check runs again and the error goes away
    browser.execute("const t = document.querySelector('#script');"
                    "const at = t.value.indexOf('measurment') + 'measur'.length;"
                    "t.focus(); t.setSelectionRange(at, at);")
    editor.send_keys("e")
    browser.wait_for("#check-status", text="valid")
    assert editor.value == SCRIPT
    assert browser.find_all("#script-errors li") == []
    assert browser.find_all(".gutter .ln.error") == []
    drawn = [g.attribute("data-node") for g in browser.find_all("#editor-graph g.node")]
    assert drawn == ["stream0", "from1", "window2", "mean3", "alert4"]
    assert "line 4, column 6" in browser.find('#editor-graph g.node[data-node="window2"]').text
    browser.screenshot(artifacts / "editor.png")

    browser.find("#save").click()
    browser.wait_for("#task-title", text="cpu_alert")
    task = httpx.get(api(daemon, "/tasks/cpu_alert")).json()
    assert task["script"] == SCRIPT and task["status"] == "enabled"
    assert task["dbrps"] == [{"db": "telegraf", "rp": "autogen"}]
    browser.wait_for('#task-graph g.node[data-node="alert4"]')
    assert node_count(browser, "from1", "collected") == "0"

    write(daemon, POINTS)
    browser.wait_until(lambda: node_count(browser, "from1", "collected") == "5",
                       message="from1 counts the 5 points")
    browser.wait_until(lambda: node_count(browser, "mean3", "emitted") == "2",
                       message="two windows went through mean3")
    assert node_count(browser, "window2", "card") == "1"
    edge = browser.find('#task-graph text.edge-label')
    assert edge.text == "5"  # stream0 -> from1
    assert browser.find("#task-status").text == "enabled · executing"
    browser.screenshot(artifacts / "task.png")


# the bad handler file's 400, which the browser logs as a failed load
@pytest.mark.allow_console_errors(r"/alerts/topics/cpu/handlers - .* 400")
def test_alert_event_on_its_topic_and_handler_from_yaml(
        browser: Browser, daemon: DaemonProcess, artifacts: Path, tmp_path: Path) -> None:
    events = httpx.get(api(daemon, "/alerts/topics/cpu/events")).json()["events"]
    assert [e["state"]["level"] for e in events] == ["CRITICAL"]  # from the test above
    open_view(browser, daemon, "#/alerts")
    row = browser.wait_for('#topic-list tr[data-topic="cpu"]')
    assert "CRITICAL" in row.text
    browser.screenshot(artifacts / "alerts.png")
    row.find("a").click()
    event = browser.wait_for('#events tr[data-event="cpu:nil"]')
    state = events[0]["state"]
    assert state["message"] == "cpu:nil is CRITICAL: 87.5"  # the ID names the measurement
    for shown in ("CRITICAL", state["message"], state["time"], state["duration"]):
        assert shown in event.text
    event.find("summary").click()
    details = event.find("pre.details").text
    assert json.loads(details)["Fields"] == {"mean": 87.5}  # shown unescaped

    log = tmp_path / "alerts.log"
    yaml = browser.find("#handler-yaml")
    yaml.set_value(f"id: to-log\nkind: log\noptions:\n  path: {log}\n")
    browser.find("#handler-save").click()
    browser.wait_for('#handlers tr[data-handler="to-log"]', text="log")
    handler = httpx.get(api(daemon, "/alerts/topics/cpu/handlers/to-log")).json()
    assert (handler["kind"], handler["options"]) == ("log", {"path": str(log)})
    browser.screenshot(artifacts / "topic.png")

    # a bad file is refused with the API's message, and nothing changes
    yaml.set_value("id: [unclosed\n")
    browser.find("#handler-save").click()
    browser.wait_for("#handler-error", text="invalid handler yaml")
    assert len(httpx.get(api(daemon, "/alerts/topics/cpu/handlers")).json()["handlers"]) == 1

    # the handler is used: the next alert of the topic reaches the file
    write(daemon, "cpu,host=web usage=10 30\ncpu,host=web usage=10 41")
    browser.wait_until(lambda: log.exists() and "OK" in log.read_text(),
                       message="the log handler wrote the recovery")

    browser.find('#handlers tr[data-handler="to-log"] button[data-action="delete-handler"]'
                 ).click()
    browser.wait_for("#confirm-yes").click()
    browser.wait_until(lambda: not browser.find_all('#handlers tr[data-handler="to-log"]'),
                       message="the handler row goes")
    assert httpx.get(api(daemon, "/alerts/topics/cpu/handlers")).json()["handlers"] == []


def test_edit_a_task(browser: Browser, daemon: DaemonProcess) -> None:
    open_view(browser, daemon, "#/tasks/cpu_alert")
    browser.wait_for('#task-graph g.node[data-node="alert4"]')
    browser.find('.bar a.button[href="#/editor/task/cpu_alert"]').click()
    browser.wait_for("#check-status", text="valid")
    assert browser.find("#task-id").dom_property("readOnly") is True
    assert browser.find("#task-dbrps").value == '"telegraf"."autogen"'
    assert browser.find("#script").value == SCRIPT
    changed = SCRIPT.replace("> 80", "> 95")
    browser.find("#script").set_value(changed)
    browser.find("#task-dbrps").set_value('"telegraf"."autogen", "other"."weekly"')
    browser.find("#save").click()
    browser.wait_for("#task-title", text="cpu_alert")
    task = httpx.get(api(daemon, "/tasks/cpu_alert")).json()
    assert task["script"] == changed and task["status"] == "enabled"
    assert task["dbrps"] == [{"db": "telegraf", "rp": "autogen"},
                             {"db": "other", "rp": "weekly"}]
    # a bad DBRP keeps the form as it is and says why
    browser.find('.bar a.button[href="#/editor/task/cpu_alert"]').click()
    browser.wait_for("#check-status", text="valid")
    browser.find("#task-dbrps").set_value("telegraf")
    browser.find("#save").click()
    browser.wait_for("#notice", text="bad DBRP telegraf")
    assert browser.find("#task-dbrps").value == "telegraf"
    assert httpx.get(api(daemon, "/tasks/cpu_alert")).json()["dbrps"] == task["dbrps"]


def test_try_it_runs_the_script_without_a_task(browser: Browser, daemon: DaemonProcess,
                                              artifacts: Path) -> None:
    before = [t["id"] for t in httpx.get(api(daemon, "/tasks")).json()["tasks"]]
    topics = httpx.get(api(daemon, "/alerts/topics")).json()["topics"]
    open_view(browser, daemon, "#/editor")
    browser.wait_for("#check-status", text="valid")
    browser.find("#script").set_value(SCRIPT.replace(".topic('cpu')", ".topic('trial')"))
    browser.find("#try-points").set_value(POINTS)
    browser.find("#try-run").click()
    browser.wait_for('#try-output details[data-node="alert4"] li.alert-event')
    alerts = browser.find_all('#try-output details[data-node="alert4"] li.alert-event')
    assert [a.attribute("data-level") for a in alerts] == ["CRITICAL", "CRITICAL"]
    assert "cpu:nil is CRITICAL: 90" in alerts[0].text
    assert "cpu:nil is CRITICAL: 87.5" in alerts[1].text
    mean = browser.find('#try-output details[data-node="mean3"]')
    assert "in 2 · out 2" in mean.text
    assert "90" in mean.text and "87.5" in mean.text
    assert browser.find('#try-graph g.node[data-node="from1"] .count-collected .v').text == "5"
    browser.screenshot(artifacts / "try.png", full_page=True)

    # a bad line of line protocol is reported with its line number
    browser.find("#try-points").set_value("cpu,host=web usage=1 0\ncpu usage= 5\n")
    browser.find("#try-run").click()
    browser.wait_for('#try-errors li[data-line="2"]')

    assert [t["id"] for t in httpx.get(api(daemon, "/tasks")).json()["tasks"]] == before
    assert httpx.get(api(daemon, "/alerts/topics")).json()["topics"] == topics


def test_task_actions_ask_before_deleting(browser: Browser, daemon: DaemonProcess,
                                         artifacts: Path) -> None:
    created = httpx.post(api(daemon, "/tasks"), json={
        "id": "spare", "type": "stream", "dbrps": [{"db": "telegraf", "rp": "autogen"}],
        "script": "stream\n    |from()\n        .measurement('mem')\n", "status": "enabled"})
    assert created.status_code == 200, created.text
    open_view(browser, daemon, "#/tasks")
    row = browser.wait_for('#task-list tr[data-task="spare"]')
    assert "enabled" in row.find(".status").text
    disable = row.find('button[data-action="disable"]')
    time.sleep(2.5)  # the list is read again every 2 s: unchanged cells stay as they are
    disable.click()
    assert "Disable task \"spare\"?" in browser.wait_for("#confirm-text").text
    browser.find("#confirm-no").click()
    assert httpx.get(api(daemon, "/tasks/spare")).json()["status"] == "enabled"
    browser.find('#task-list tr[data-task="spare"] button[data-action="disable"]').click()
    browser.wait_for("#confirm-yes").click()
    browser.wait_for('#task-list tr[data-task="spare"] .status', text="disabled")
    assert httpx.get(api(daemon, "/tasks/spare")).json()["status"] == "disabled"
    browser.find('#task-list tr[data-task="spare"] button[data-action="enable"]').click()
    assert "Enable task \"spare\"?" in browser.wait_for("#confirm-text").text
    browser.find("#confirm-yes").click()
    browser.wait_for('#task-list tr[data-task="spare"] .status', text="enabled")
    assert httpx.get(api(daemon, "/tasks/spare")).json()["executing"] is True
    browser.screenshot(artifacts / "tasks.png")

    browser.find('#task-list tr[data-task="spare"] button[data-action="delete"]').click()
    assert "spare" in browser.wait_for("#confirm-text").text
    browser.find("#confirm-no").click()
    assert httpx.get(api(daemon, "/tasks/spare")).status_code == 200
    browser.find('#task-list tr[data-task="spare"] button[data-action="delete"]').click()
    browser.wait_for("#confirm-yes").click()
    browser.wait_until(lambda: not browser.find_all('#task-list tr[data-task="spare"]'),
                       message="the deleted task's row goes")
    assert httpx.get(api(daemon, "/tasks/spare")).status_code == 404


def test_task_error_and_node_errors_shown_in_red(browser: Browser, daemon: DaemonProcess,
                                                 artifacts: Path) -> None:
    # a batch task while no InfluxDB is configured: kept enabled, not executing, its
    # error kept
    created = httpx.post(api(daemon, "/tasks"), json={
        "id": "no_influx", "type": "batch", "dbrps": [{"db": "telegraf", "rp": "autogen"}],
        "script": "batch\n    |query('SELECT mean(usage) FROM \"telegraf\".\"autogen\".\"cpu\"')"
                  "\n        .period(10s)\n        .every(10s)\n", "status": "enabled"})
    assert created.status_code == 200, created.text
    task = browser.wait_until(
        lambda: httpx.get(api(daemon, "/tasks/no_influx")).json()["error"],
        message="the task fails to start")
    open_view(browser, daemon, "#/tasks/no_influx")
    shown = browser.wait_for("#task-error", text="InfluxDB")
    assert task.strip() in shown.text
    red = "rgb(197, 48, 48)"
    assert browser.execute("return getComputedStyle(arguments[0]).color", shown) == red
    open_view(browser, daemon, "#/tasks")
    assert task.strip() in browser.wait_for('#task-list tr[data-task="no_influx"]').text
    httpx.delete(api(daemon, "/tasks/no_influx"))

    # a node that fails on some points: its error count, in red, on the graph
    created = httpx.post(api(daemon, "/tasks"), json={
        "id": "ratio", "type": "stream", "dbrps": [{"db": "telegraf", "rp": "autogen"}],
        "script": "stream\n    |from()\n        .measurement('disk')\n"
                  "    |eval(lambda: \"used\" / \"total\")\n        .as('ratio')\n",
        "status": "enabled"})
    assert created.status_code == 200, created.text
    open_view(browser, daemon, "#/tasks/ratio")
    browser.wait_for('#task-graph g.node[data-node="eval2"]')
    write_db(daemon, "disk used=5,total=10 1\ndisk used=5 2\ndisk total=3 3")
    browser.wait_until(lambda: node_count(browser, "eval2", "errors") == "2",
                       message="eval2 counts two errors")
    node = browser.find('#task-graph g.node[data-node="eval2"]')
    assert "has-errors" in (node.attribute("class") or "")
    errors = node.find(".count-errors")
    assert browser.execute("return getComputedStyle(arguments[0]).fill", errors) == red
    browser.screenshot(artifacts / "task-errors.png")
    httpx.delete(api(daemon, "/tasks/ratio"))


def test_daemon_page(browser: Browser, daemon: DaemonProcess, artifacts: Path) -> None:
    open_view(browser, daemon, "#/daemon")
    assert __version__ in browser.wait_for("#daemon-version").text
    browser.wait_for('#ingress tr[data-ingress="telegraf.autogen.cpu"]')
    stats = httpx.get(api(daemon, "/debug/vars")).json()["kapacitor"]
    ingress = stats["ingress:telegraf:autogen:cpu"]
    shown = browser.find('#ingress tr[data-ingress="telegraf.autogen.cpu"] .points').text
    assert shown == str(ingress["values"]["points_received"])
    assert "loaded" in browser.find("#plugins-summary").text
    assert browser.find('#plugins tr[data-plugin="smtp"]').attribute("data-plugin") == "smtp"

    # the log follows: a request made now shows up in the tail
    httpx.get(api(daemon, "/ping"), params={"marker": "console-log-check"})
    browser.wait_until(lambda: "console-log-check" in browser.find("#log-tail").text,
                       message="the new request's log line appears in the tail")
    browser.find("#log-filter").send_keys("marker=console-log-check")
    shown = [line.text for line in browser.find_all("#log-tail .log-line")
             if line.is_displayed()]
    assert len(shown) == 1 and "/kapacitor/v1/ping?marker=console-log-check" in shown[0]
    browser.find("#log-filter").clear()

    # a configuration change through the form goes through the config API
    section = browser.find('details[data-section="smtp"]')
    section.find("summary").click()
    password = section.find('input[data-option="password"]')
    assert password.attribute("type") == "password" and password.value == ""
    sender = section.find('input[data-option="from"]')
    assert sender.value == "kapa@example.com"
    sender.clear()
    sender.send_keys("alerts@example.org")
    section.find('button[type="submit"]').click()
    browser.wait_until(lambda: "saved: from" in section.text, message="the form says saved")
    options = httpx.get(api(daemon, "/config/smtp")).json()["elements"][0]["options"]
    assert options["from"] == "alerts@example.org"
    assert options["password"] is False  # still not set, and never shown
    browser.screenshot(artifacts / "daemon.png")


def test_template_vars_as_a_form(browser: Browser, daemon: DaemonProcess) -> None:
    created = httpx.post(api(daemon, "/templates"), json={
        "id": "threshold", "type": "stream", "script": (
            "// the measurement to watch\nvar measurement string\n"
            "var limit = 80.0\nvar every = 10s\n"
            "stream\n    |from()\n        .measurement(measurement)\n"
            "    |window()\n        .period(every)\n        .every(every)\n"
            "    |mean('usage')\n    |alert()\n        .crit(lambda: \"mean\" > limit)\n")})
    assert created.status_code == 200, created.text
    open_view(browser, daemon, "#/editor")
    browser.wait_for("#check-status", text="valid")
    browser.find("#task-id").send_keys("from_template")
    browser.execute("const s = document.querySelector('#task-template');"
                    "s.value = 'threshold'; s.dispatchEvent(new Event('change'));")
    browser.wait_for('#vars input[data-var="limit"]')
    types = {i.attribute("data-var"): i.attribute("data-type")
             for i in browser.find_all("#vars input[data-var]")}
    assert types == {"measurement": "string", "limit": "float", "every": "duration"}
    assert browser.find('#vars input[data-var="limit"]').attribute("placeholder") == "80"
    assert browser.find('#vars input[data-var="every"]').attribute("placeholder") == "10s"
    assert browser.find("#script").dom_property("readOnly") is True
    browser.find('#vars input[data-var="measurement"]').send_keys("mem")
    browser.find('#vars input[data-var="limit"]').send_keys("95.5")
    browser.find("#save").click()
    browser.wait_for("#task-title", text="from_template")
    task = httpx.get(api(daemon, "/tasks/from_template")).json()
    assert task["template-id"] == "threshold"
    typed = {name: (v["type"], v["value"]) for name, v in task["vars"].items()}
    assert typed == {"measurement": ("string", "mem"), "limit": ("float", 95.5)}
    # "every" was left at the template's default


def test_phone_sized_screen(browser: Browser, daemon: DaemonProcess, artifacts: Path) -> None:
    browser.set_viewport(PHONE)
    for name, hash_, ready in [("tasks", "#/tasks", "#task-list"),
                               ("task", "#/tasks/cpu_alert", '#task-graph g.node'),
                               ("editor", "#/editor", "#editor-graph g.node"),
                               ("alerts", "#/alerts/cpu", "#events"),
                               ("daemon", "#/daemon", "#daemon-version")]:
        open_view(browser, daemon, hash_)
        browser.wait_for(ready)
        width = browser.execute("return document.documentElement.scrollWidth")
        assert width <= PHONE.width, f"{name}: the page is {width}px wide on a phone"
        browser.screenshot(artifacts / f"phone-{name}.png")


def test_first_view_is_light(browser: Browser, daemon: DaemonProcess) -> None:
    open_view(browser, daemon, "#/tasks")
    browser.wait_for("#task-list")
    sizes = browser.execute(
        "return [performance.getEntriesByType('navigation')[0].transferSize,"
        " ...performance.getEntriesByType('resource').map(r => r.transferSize)]")
    assert all(size > 0 for size in sizes), sizes  # nothing came from a cache
    assert sum(sizes) < 300_000, f"first view transferred {sum(sizes)} bytes"
    hosts = browser.execute(
        "return performance.getEntriesByType('resource').map(r => new URL(r.name).host)")
    assert set(hosts) == {daemon.url.removeprefix("http://")}


def test_console_of_a_daemon_on_its_embedded_defaults(tmp_path: Path, artifacts: Path) -> None:
    """As `scripts/run` starts it: `kapa-core run` without a configuration file (only
    the port moved, through the environment, to a free one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with DaemonProcess(use_config_flag=False, env={
            "KAPACITOR_HTTP_BIND_ADDRESS": f"127.0.0.1:{port}"}) as running, \
            Browser() as fresh:
        assert running.stdout_lines[-1].endswith(
            f"(web console: http://127.0.0.1:{port}/console/)")
        fresh.get(f"http://127.0.0.1:{port}/console/")
        fresh.wait_for("#task-list", text="No tasks yet")
        fresh.find('nav a[data-nav="daemon"]').click()
        assert "Authentication\noff" in fresh.wait_for("#about").text
        fresh.wait_for('#config-sections details[data-section="smtp"]')
        fresh.screenshot(artifacts / "defaults-daemon.png")
        fresh.assert_no_console_errors()
