"""What the API accepts and refuses where Kapacitor 1.5.7 is lenient or strict: each
expected answer was taken from the real kapacitord 1.5.7 with the same requests."""

from __future__ import annotations

import re

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

V1 = "/kapacitor/v1"


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"log-enabled": False},
                        "config-override": {"enabled": True}}) as d:
        yield d


@pytest.mark.parametrize(("precision", "expected"), [
    ("xyz", "1970-01-01T00:00:00.031536Z"),      # unknown: nanoseconds
    ("ns", "1970-01-01T00:00:00.031536Z"),       # not a /write precision: nanoseconds
    ("us", "1970-01-01T00:00:00.031536Z"),       # idem, not microseconds
    ("rfc3339", "1970-01-01T00:00:00.031536Z"),
    ("", "1970-01-01T00:00:00.031536Z"),
    ("n", "1970-01-01T00:00:00.031536Z"),
    ("u", "1970-01-01T00:00:31.536Z"),
    ("ms", "1970-01-01T08:45:36Z"),
    ("s", "1971-01-01T00:00:00Z"),
    ("m", "2029-12-17T00:00:00Z"),
])
def test_write_with_any_precision_is_accepted(daemon, precision: str, expected: str) -> None:
    task_id = "prec_" + (precision or "none")
    body = {"id": task_id, "type": "stream", "dbrps": [{"db": "pdb", "rp": "rp"}],
            "script": f"stream|from().measurement('{task_id}')|httpOut('o')",
            "status": "enabled"}
    assert httpx.post(daemon.url + V1 + "/tasks", json=body).status_code == 200
    response = httpx.post(daemon.url + "/write", params={
        "db": "pdb", "rp": "rp", "precision": precision}, content=f"{task_id} v=1 31536000")
    assert response.status_code == 204, response.text
    values = wait_until(
        lambda: httpx.get(f"{daemon.url}{V1}/tasks/{task_id}/o").json().get("series"),
        what="the point at the httpOut", until=bool)
    assert values[0]["values"] == [[expected, 1.0]]


def smtp_options(daemon) -> dict:
    return httpx.get(daemon.url + V1 + "/config/smtp/").json()["options"]


def test_smtp_override_needs_a_from_address(daemon) -> None:
    url = daemon.url + V1 + "/config/smtp/"
    refused = httpx.post(url, json={"set": {"enabled": True}})
    assert refused.status_code == 400
    assert "must provide a 'from' address" in refused.json()["error"]
    assert smtp_options(daemon)["enabled"] is False  # nothing applied
    refused = httpx.post(url, json={"set": {"enabled": True, "from": ""}})
    assert refused.status_code == 400
    assert httpx.post(url, json={"set": {"from": "kapacitor"}}).json()["error"].endswith(
        'invalid from email address: "kapacitor"')
    assert httpx.post(url, json={"set": {"to": ["ops"]}}).json()["error"].endswith(
        'invalid to email address: "ops"')
    accepted = httpx.post(url, json={"set": {"enabled": True, "from": "k@example.com"}})
    assert accepted.status_code == 204, accepted.text
    # Enabled: removing the address again is refused, the section keeps it.
    refused = httpx.post(url, json={"set": {"from": ""}})
    assert refused.status_code == 400
    assert "must provide a 'from' address" in refused.json()["error"]
    assert smtp_options(daemon)["from"] == "k@example.com"
    assert httpx.post(url, json={"set": {"enabled": False}}).status_code == 204
    assert httpx.post(url, json={"set": {"from": ""}}).status_code == 204


def _decode_error(verb: str, kind: str) -> str:
    return (f"failed to {verb} handler: failed to decode options into "
            "*alert.AggregateHandlerConfig: 1 error(s) decoding:\n\n* 'interval' expected "
            f"type 'time.Duration', got unconvertible type '{kind}'")


def test_aggregate_handler_interval_is_nanoseconds(daemon) -> None:
    handlers = daemon.url + V1 + "/alerts/topics/strict/handlers"

    def create(interval):
        return httpx.post(handlers, json={"id": "agg", "kind": "aggregate", "options": {
            "interval": interval, "topic": "summary"}})

    for interval, kind in (("10s", "string"), ("bogus", "string"), (True, "bool")):
        refused = create(interval)
        assert refused.status_code == 400  # Kapacitor: 500
        assert refused.json()["error"] == _decode_error("create", kind)
    assert httpx.get(handlers + "/agg").status_code == 404
    created = create(1e10)  # a float with an integral value is those nanoseconds
    assert created.status_code == 200, created.text
    assert created.json()["options"] == {"interval": 10000000000, "topic": "summary"}
    replaced = httpx.put(handlers + "/agg", json={"id": "agg", "kind": "aggregate",
                                                  "options": {"interval": "1m",
                                                              "topic": "summary"}})
    assert replaced.status_code == 400
    assert replaced.json()["error"] == _decode_error("update", "string")
    patched = httpx.patch(handlers + "/agg", json=[
        {"op": "replace", "path": "/options/interval", "value": "1m"}])
    assert patched.status_code == 400
    assert patched.json()["error"] == _decode_error("update", "string")
    assert httpx.get(handlers + "/agg").json()["options"]["interval"] == 10000000000
    assert httpx.delete(handlers + "/agg").status_code == 204
    # Without an interval Kapacitor 1.5.7 crashes (a ticker of 0); kapa-core refuses it.
    missing = httpx.post(handlers, json={"id": "agg", "kind": "aggregate",
                                         "options": {"topic": "summary"}})
    assert missing.status_code == 400 and "interval" in missing.json()["error"]
    assert httpx.get(daemon.url + V1 + "/ping").status_code == 204


def test_task_times_as_kapacitor_writes_them(daemon) -> None:
    url = daemon.url + V1 + "/tasks"
    body = {"id": "times", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": "stream|from().measurement('times')|httpOut('o')", "status": "enabled"}
    task = httpx.post(url, json=body).json()
    # Go's RFC 3339 with nanoseconds: no trailing zeros in the fraction.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", task["created"])
    assert task["created"] == task["modified"] == task["last-enabled"]
    # An update that leaves it enabled changes modified only.
    updated = httpx.patch(url + "/times", json={"script": body["script"] + "|log()"}).json()
    assert updated["modified"] != task["modified"]
    assert updated["last-enabled"] == task["last-enabled"]
    httpx.patch(url + "/times", json={"status": "disabled"})
    enabled = httpx.patch(url + "/times", json={"status": "enabled"}).json()
    assert enabled["last-enabled"] == enabled["modified"] != task["last-enabled"]
    assert enabled["created"] == task["created"]


def test_task_and_template_lists_take_parameters_as_kapacitor(daemon) -> None:
    base = daemon.url + V1
    for name, status in (("list_a", "disabled"), ("list_b", "enabled")):
        assert httpx.post(base + "/tasks", json={
            "id": name, "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": "stream|from().measurement('l')|httpOut('o')",
            "status": status}).status_code == 200
    assert httpx.post(base + "/templates", json={
        "id": "list_t", "type": "stream",
        "script": "var m string\nstream|from().measurement(m)|httpOut('o')"}
    ).status_code == 200

    def tasks(**params):
        response = httpx.get(base + "/tasks", params={"pattern": "list_*", **params})
        body = response.json()
        return response.status_code, [t["id"] for t in body["tasks"]] if "tasks" in body \
            else body["error"]

    assert tasks(limit="-1") == (200, ["list_a", "list_b"])  # no limit
    assert tasks(offset="-5", limit="1") == (200, ["list_a"])  # negative offset: 0
    assert tasks(limit="+1") == (200, ["list_a"])
    assert tasks(offset="1.5") == (400, 'invalid offset parameter "1.5" must be an integer: '
                                   'strconv.ParseInt: parsing "1.5": invalid syntax')
    assert tasks(offset="99999999999999999999") == (
        400, 'invalid offset parameter "99999999999999999999" must be an integer: '
        'strconv.ParseInt: parsing "99999999999999999999": value out of range')
    assert tasks(limit="x")[1].startswith('invalid limit parameter "x" must be an integer')
    assert tasks(**{"script-format": "x"}) == (400, 'invalid script-format parameter "x"')
    assert tasks(**{"dot-view": "x"}) == (400, 'invalid dot-view parameter "x"')
    assert tasks(fields="template-id") == (400, 'unsupported field "template-id"')
    # An unknown field is only refused when something is listed.
    assert httpx.get(base + "/tasks", params={"pattern": "none*", "fields": "nope"}
                     ).json() == {"tasks": []}
    listed = httpx.get(base + "/tasks", params={"pattern": "list_*"}).json()["tasks"]
    assert sorted(listed[0]) == ["created", "dbrps", "dot", "error", "executing", "id",
                                 "last-enabled", "link", "modified", "script", "stats",
                                 "status", "type", "vars"]
    assert listed[0]["stats"] is None  # not running
    assert listed[1]["stats"]["task-stats"]["throughput"] == 0
    assert httpx.get(base + "/tasks/list_a").json()["stats"] == {}
    assert httpx.get(base + "/tasks", params={"pattern": "list_b", "fields": "id"}
                     ).json()["tasks"] == [{"id": "list_b", "link": {
                         "rel": "self", "href": "/kapacitor/v1/tasks/list_b"}}]

    templates = httpx.get(base + "/templates", params={"pattern": "list_*"}).json()
    assert sorted(templates["templates"][0]) == ["created", "dot", "error", "id", "link",
                                                  "modified", "script", "type"]
    with_vars = httpx.get(base + "/templates", params={"pattern": "list_*",
                                                        "fields": "vars"}).json()
    assert with_vars["templates"][0]["vars"]["m"]["type"] == "string"
    # A negative limit lists no template (Kapacitor's template list takes it literally).
    assert httpx.get(base + "/templates", params={"limit": "-1"}).json() == {
        "templates": []}


def test_missing_tasks_and_templates_in_kapacitor_words(daemon) -> None:
    base = daemon.url + V1
    assert httpx.post(base + "/tasks", json={
        "id": "words", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from().measurement('w')|httpOut('o')",
        "status": "enabled"}).status_code == 200
    for path, message in (("/tasks/nope", "no task exists"),
                          ("/templates/nope", "no template exists"),
                          ("/tasks/words/nope", "no task exists"),  # unknown endpoint
                          ("/tasks/nope/o", "no task exists")):
        response = httpx.get(base + path)
        assert (response.status_code, response.json()) == (404, {"error": message})
    assert httpx.delete(base + "/tasks/nope").status_code == 204
    assert httpx.delete(base + "/templates/nope").status_code == 204
    assert httpx.get(base + "/tasks", params={"pattern": "["}).json() == {"tasks": []}


@pytest.mark.parametrize(("path", "body", "expected"), [
    # What Kapacitor's JSON decoding refuses: kapa-core adds what it could not read.
    ("/tasks", {"id": "j1", "type": "streamy"}, "invalid JSON"),
    ("/tasks", {"id": "j1", "type": ""}, "invalid JSON"),
    ("/tasks", {"id": "j1", "status": "on"}, "invalid JSON"),
    ("/tasks", {"id": 5}, "invalid JSON"),
    ("/tasks", {"id": "j1", "dbrps": "db.rp"}, "invalid JSON"),
    ("/templates", {"id": "j1", "type": "nope"}, "invalid JSON"),
    ("/templates", {"id": 5}, "invalid JSON"),
    # Messages in Kapacitor's words.
    ("/tasks", {"id": "bad id"},
     'task ID must contain only letters, numbers, \'-\', \'.\' and \'_\'. "bad id"'),
    ("/templates", {"id": "bad id", "script": "stream|from()"},
     'template ID must contain only letters, numbers, \'-\', \'.\' and \'_\'. "bad id"'),
    ("/tasks", {"id": "j2", "template-id": "nope", "dbrps": [{"db": "d", "rp": "r"}]},
     "unknown template nope: err: no template exists"),
    ("/tasks", {"id": "j3", "dbrps": [{"db": "d", "rp": "r"}], "script": "var x = 1"},
     "invalid task type: invalid"),
    # A template's type is its script's.
    ("/templates", {"id": "j4", "script": "   "}, "invalid task type: invalid"),
    ("/templates", {"id": "j4", "script": "var x = 1"}, "invalid task type: invalid"),
    ("/templates", {"id": "j4", "script": "stream|from()\nbatch|query('SELECT v FROM d.r.m')"},
     "invalid task type: invalid"),
])
def test_task_and_template_refusals(daemon, path: str, body: dict, expected: str) -> None:
    response = httpx.post(daemon.url + V1 + path, json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(expected)


def test_template_updates_as_kapacitor(daemon) -> None:
    url = daemon.url + V1 + "/templates"
    script = "stream|from().measurement('m')|httpOut('o')"
    # The type of a new template comes from its script, whatever the body says.
    created = httpx.post(url, json={"id": "upd", "type": "batch", "script": script})
    assert created.status_code == 200 and created.json()["type"] == "stream"
    # Changing the type alone makes the script fail to evaluate.
    refused = httpx.patch(url + "/upd", json={"type": "batch"})
    assert refused.json() == {"error": 'invalid TICKscript: name "stream" is undefined. '
                                       "Names in scope: time,batch"}
    # An empty script keeps the template's; a script without chains keeps its type.
    kept = httpx.patch(url + "/upd", json={"script": ""}).json()
    assert kept["script"] == "stream\n    |from()\n        .measurement('m')\n    |httpOut('o')\n"
    changed = httpx.patch(url + "/upd", json={"script": "var x = 1"}).json()
    assert (changed["type"], changed["script"]) == ("stream", "var x = 1\n")
    refused = httpx.patch(url + "/upd", json={"type": "bogus"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("invalid JSON")
    assert httpx.patch(url + "/none", json={"type": "bogus"}).status_code == 400


def test_config_set_without_the_trailing_slash_is_refused(daemon) -> None:
    # Kapacitor: set and delete name an element, /config/smtp/ for a single section.
    for body in ({"set": {"enabled": True}}, {"set": {"enabled": False}}, {}):
        response = httpx.post(daemon.url + V1 + "/config/smtp", json=body)
        assert (response.status_code, response.json()) == (400, {
            "error": "failed to apply update: invalid update action: element not "
                     "specified, are you missing a trailing '/'?"})


@pytest.mark.parametrize(("path", "body", "reason"), [
    ("/config/influxdb", {"set": {"timeout": "1s"}, "add": {"name": "y"}},
     "cannot provide both set/delete and add/remove actions in the same update"),
    ("/config/influxdb/default", {"remove": ["default"]},
     "must not provide element when removing an override"),
    ("/config/influxdb/default", {"add": {"name": "z"}},
     "must not provide an element name when adding an a new override"),
])
def test_config_update_actions_checked_as_kapacitor(daemon, path, body, reason) -> None:
    response = httpx.post(daemon.url + V1 + path, json=body)
    assert (response.status_code, response.json()) == (400, {
        "error": f"failed to apply update: invalid update action: {reason}"})


def test_single_config_section_has_no_named_element(daemon) -> None:
    response = httpx.get(daemon.url + V1 + "/config/smtp/x")
    assert (response.status_code, response.json()) == (
        404, {"error": "unknown section/element: smtp/x"})


def test_topic_handlers_refused_in_kapacitor_words(daemon) -> None:
    url = daemon.url + V1 + "/alerts/topics/words/handlers"
    log = {"kind": "log", "options": {"path": "/dev/null"}}
    for body, status, message in (
            ({"id": "bad id", **log}, 400, "invalid handler spec: handler ID must contain "
             "only letters, numbers, '-', '.' and '_'. \"bad id\""),
            (log, 400, "invalid handler spec: handler ID must contain only letters, "
             "numbers, '-', '.' and '_'. \"\""),
            ({"id": "k", "kind": "nosuch"}, 400,  # Kapacitor: 500
             'failed to create handler: unsupported action kind "nosuch"')):
        response = httpx.post(url, json=body)
        assert (response.status_code, response.json()) == (status, {"error": message})
    assert httpx.post(url, json={"id": "h1", **log}).status_code == 200
    again = httpx.post(url, json={"id": "h1", **log})
    assert (again.status_code, again.json()) == (400, {  # Kapacitor: 500
        "error": 'failed to create handler: cannot register handler, handler with ID "h1" '
                 "already exists"})
    assert httpx.delete(url + "/h1").status_code == 204
