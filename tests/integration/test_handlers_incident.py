"""Incident-management handlers against one recording HTTP server, through the real daemon.

Every handler kind (pagerduty, pagerduty2, opsgenie, opsgenie2, victorops, alerta, bigpanda,
servicenow, zenoss) gets a task whose alert goes CRITICAL at t=1s then OK at t=2s; each test
checks the two requests the handler sent: path (with query), auth headers and the whole
JSON body, built here from the services' documented formats. The recorder only accepts
POST (anything else is answered 501 and not recorded), so every recorded request was a
POST. Topic handlers (pagerduty2, opsgenie2) and option errors go through the HTTP API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.test_alerts import wait_for
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
ID = ".id('{{ .Name }}-{{ index .Tags \"host\" }}')"

SCRIPTS = {
    "pd1": f"""|alert(){ID}.details('{{{{ .ID }}}} details').crit(lambda: "v" > 1)
    .pagerDuty().serviceKey('sk-task')""",
    "pd2": f"""|alert(){ID}.crit(lambda: "v" > 1)
    .pagerDuty2().routingKey('rk-task').link('http://links/{{{{ .ID }}}}', 'see {{{{ .Level }}}}')
    .link('http://plain')""",
    "pd2s": f"""|alert(){ID}.crit(lambda: "v" > 1).pagerDuty2().serviceKey('rk-alias')""",
    "og1": f"""|alert(){ID}.crit(lambda: "v" > 1).opsGenie().teams('t1').recipients('r1', 'r2')""",
    "og2": f"""|alert(){ID}.crit(lambda: "v" > 1)
    .opsGenie2().teams('a', 'b').recipients('c').recoveryAction('close')""",
    "vo": f"""|alert(){ID}.crit(lambda: "v" > 1).victorOps().routingKey('vo-task')""",
    "al": f"""|alert(){ID}.crit(lambda: "v" > 1)
    .alerta().resource('{{{{ index .Tags "host" }}}}').event('{{{{ .ID }}}}-ev')
    .environment('prod').group('g-{{{{ .Name }}}}').value('{{{{ index .Fields "v" }}}}')
    .origin('kapa').services('s1', 's2').correlated('c1').timeout(10s).token('tok')
    .tokenPrefix('Key').attribute('k', 'v').renameSeverity('crit', 'major')""",
    "al2": f"""|alert(){ID}.crit(lambda: "v" > 1).alerta()""",
    "bp": f"""|alert(){ID}.details('{{{{ .ID }}}} details').crit(lambda: "v" > 1)
    .bigPanda().appKey('app').primaryProperty('host').secondaryProperty('check')
    .host('{{{{ index .Tags "host" }}}}-x').attribute('team', 'db').attribute('n', 3)""",
    "sn": f"""|alert(){ID}.crit(lambda: "v" > 1)
    .serviceNow().source('src').node('{{{{ index .Tags "host" }}}}').type('cpu')
    .resource('res-{{{{ .Name }}}}').metricName('v').messageKey('mk-{{{{ .ID }}}}')
    .additionalInfo('task', '{{{{ .TaskName }}}}').additionalInfo('n', 7)""",
    "zn": f"""|alert(){ID}.crit(lambda: "v" > 1)
    .zenoss().action('EvRouter').method('add').type('rpc2').tid(5).summary('S {{{{ .Level }}}}')
    .device('{{{{ index .Tags "host" }}}}').component('comp').eventClassKey('eck')
    .eventClass('/App').collector('col').message('M {{{{ .ID }}}}')
    .customField('cf', 'x-{{{{ .Name }}}}').customField('num', 3)
    .customField('obj', '{{"a": 1}}')""",
    "tp": f"""|alert(){ID}.crit(lambda: "v" > 1).topic('incidents')""",
}
LEVELS = (("CRITICAL", 1, 5.0), ("OK", 2, 0.0))  # level, time (s), value of v


def row(name: str, t: int, v: float) -> dict[str, Any]:
    """The alert data's series for one point of ``name`` (tag host=h1) at ``t`` seconds."""
    return {"name": name, "tags": {"host": "h1"}, "columns": ["time", "v"],
            "values": [[f"1970-01-01T00:00:0{t}Z", v]]}


def result(name: str, t: int, v: float) -> dict[str, Any]:
    return {"series": [row(name, t, v)]}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Setup:
    def __init__(self, daemon: DaemonProcess, recorder: HTTPRecorder, tasks: dict[str, str]):
        self.daemon = daemon
        self.recorder = recorder
        self.tasks = tasks

    def requests(self, match: Callable[[dict[str, Any]], bool], count: int = 2
                 ) -> list[dict[str, Any]]:
        """The first ``count`` recorded requests ``match`` accepts, body parsed."""
        def found() -> list[dict[str, Any]] | None:
            hits = []
            for request in list(self.recorder.requests):
                parsed = {**request.as_dict(), "json": json.loads(request.body)}
                if match(parsed):
                    hits.append(parsed)
            return hits if len(hits) >= count else None

        hits = wait_for(found, timeout=20) or []
        assert len(hits) == count, (f"expected {count} requests, got {len(hits)}: "
                                    f"{self.daemon.log()[-3000:]}")
        return hits


def path(prefix: str) -> Callable[[dict[str, Any]], bool]:
    return lambda request: request["path"].startswith(prefix)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    recorder = HTTPRecorder(status=200).start()
    url = recorder.url
    config = {
        "http": {"log-enabled": False},
        "pagerduty": {"enabled": True, "url": url + "/pd1", "service-key": "sk-conf"},
        "pagerduty2": {"enabled": True, "url": url + "/pd2", "routing-key": "rk-conf"},
        "opsgenie": {"enabled": True, "api-key": "og1key", "url": url + "/og1/alert",
                     "recovery_url": url + "/og1/note", "teams": ["conf-team"]},
        "opsgenie2": {"enabled": True, "api-key": "og2key", "url": url + "/og2/alerts",
                      "teams": ["conf-team"]},
        "victorops": {"enabled": True, "api-key": "vokey", "routing-key": "vo-conf",
                      "url": url + "/vo"},
        "alerta": {"enabled": True, "url": url + "/alerta", "token": "conftok",
                   "environment": "conf-env", "origin": "conf-origin"},
        "bigpanda": {"enabled": True, "url": url + "/bp", "token": "bptok",
                     "app-key": "conf-app"},
        "servicenow": {"enabled": True, "url": url + "/sn", "source": "conf-src",
                       "username": "snuser", "password": "snpass"},
        "zenoss": {"enabled": True, "url": url + "/zenoss", "username": "zu",
                   "password": "zp"},
    }
    try:
        with DaemonProcess(config) as daemon:
            handlers = f"{daemon.url}{API}/alerts/topics/incidents/handlers"
            for spec in ({"id": "pd2", "kind": "pagerduty2",
                          "options": {"routing-key": "rk-topic",
                                      "links": [{"href": "http://t/{{ .ID }}"}]}},
                         {"id": "og2", "kind": "opsgenie2",
                          "options": {"teams-list": ["tt"], "recipients-list": ["rr"]}}):
                created = httpx.post(handlers, json=spec)
                assert created.status_code == 200, created.text
            tasks = {m: define(daemon, f"stream|from().measurement('{m}')\n  {script}\n")
                     for m, script in SCRIPTS.items()}
            write(daemon, "\n".join(f"{m},host=h1 v={v:g} {t}" for m in SCRIPTS
                                    for _, t, v in LEVELS))
            yield Setup(daemon, recorder, tasks)
    finally:
        recorder.close()


def test_pagerduty_v1_trigger_and_resolve(setup: Setup) -> None:
    sent = setup.requests(path("/pd1"))
    client_url = setup.daemon.url + API
    for request, (level, _, _) in zip(sent, LEVELS, strict=True):
        assert request["path"] == "/pd1"
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["json"] == {
            "service_key": "sk-task", "event_type": "trigger" if level != "OK" else "resolve",
            "description": f"pd1-h1 is {level}", "incident_key": "pd1-h1",
            "client": "kapacitor", "client_url": client_url, "details": "pd1-h1 details"}


def test_pagerduty_v2_trigger_and_resolve(setup: Setup) -> None:
    crit, ok = setup.requests(lambda r: r["path"] == "/pd2"
                              and r["json"]["routing_key"] == "rk-task")
    for request in (crit, ok):
        assert request["headers"]["Accept"] == "application/vnd.pagerduty+json;version=2"
        assert request["headers"]["Content-Type"] == "application/json"
    assert crit["json"] == {
        "routing_key": "rk-task", "event_action": "trigger", "dedup_key": "pd2-h1",
        "payload": {"summary": "pd2-h1 is CRITICAL", "source": "h1", "severity": "critical",
                    "timestamp": "1970-01-01T00:00:01.000000000Z",
                    "class": setup.tasks["pd2"], "component": "", "group": "",
                    "custom_details": {"result": result("pd2", 1, 5.0)}},
        "images": None,
        "links": [{"href": "http://links/pd2-h1", "text": "see CRITICAL"},
                  {"href": "http://plain", "text": "http://plain"}],
        "client": "kapacitor", "client_url": setup.daemon.url + API}
    assert ok["json"] == {"routing_key": "rk-task", "dedup_key": "pd2-h1",
                          "event_action": "resolve"}


def test_pagerduty_v2_service_key_is_the_routing_key(setup: Setup) -> None:
    crit, ok = setup.requests(lambda r: r["path"] == "/pd2"
                              and r["json"]["routing_key"] == "rk-alias")
    assert crit["json"]["dedup_key"] == "pd2s-h1"
    assert ok["json"] == {"routing_key": "rk-alias", "dedup_key": "pd2s-h1",
                          "event_action": "resolve"}


def test_opsgenie_v1_alert_and_recovery_note(setup: Setup) -> None:
    crit, ok = setup.requests(path("/og1/"))
    assert (crit["path"], ok["path"]) == ("/og1/alert/", "/og1/note/")
    for request, (level, t, v) in zip((crit, ok), LEVELS, strict=True):
        body = request["json"]
        description = json.loads(body.pop("description"))
        assert description == result("og1", t, v)
        message = f"og1-h1 is {level}"
        assert body == {
            "apiKey": "og1key", "entity": "og1-h1", "alias": "og1-h1", "message": message,
            "note": message if level == "OK" else "", "monitoring_tool": "kapacitor",
            "details": {"Level": "RECOVERY" if level == "OK" else level,
                        "Monitoring Tool": "Kapacitor"},
            "teams": ["t1"], "recipients": ["r1", "r2"]}


def opsgenie2_alert(name: str, responders: list[dict[str, str]]) -> dict[str, Any]:
    return {"entity": f"{name}-h1", "alias": base64.urlsafe_b64encode(
                f"{name}-h1".encode()).decode(),
            "message": f"{name}-h1 is CRITICAL", "note": "", "priority": "P1",
            "details": {"Monitoring Tool": "Kapacitor", "Level": "CRITICAL", "host": "h1",
                        "Kapacitor Task Name": name},
            "responders": responders}


def opsgenie2_requests(setup: Setup, alert_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The alias of ``alert_id`` and the create and recovery requests sent for it."""
    alias = base64.urlsafe_b64encode(alert_id.encode()).decode()

    def match(r: dict[str, Any]) -> bool:
        created = r["path"] == "/og2/alerts" and r["json"].get("entity") == alert_id
        return created or r["path"].startswith(f"/og2/alerts/{alias}/")

    return alias, setup.requests(match)


def test_opsgenie_v2_alert_and_close(setup: Setup) -> None:
    alias, (crit, ok) = opsgenie2_requests(setup, "og2-h1")
    for request in (crit, ok):
        assert request["headers"]["Authorization"] == "GenieKey og2key"
        assert request["headers"]["Content-Type"] == "application/json"
    assert crit["path"] == "/og2/alerts"
    body = crit["json"]
    assert json.loads(body.pop("description")) == result("og2", 1, 5.0)
    assert body == opsgenie2_alert("og2", [
        {"name": "a", "type": "team"}, {"name": "b", "type": "team"},
        {"username": "c", "type": "user"}])
    assert ok["path"] == f"/og2/alerts/{alias}/close?identifierType=alias"
    assert ok["json"] == {"note": "og2-h1 is OK"}


def test_victorops_alert_and_recovery(setup: Setup) -> None:
    sent = setup.requests(path("/vo"))
    for request, (level, t, v) in zip(sent, LEVELS, strict=True):
        assert request["path"] == "/vo/vokey/vo-task"
        body = request["json"]
        assert json.loads(body.pop("data")) == result("vo", t, v)
        assert body == {"message_type": "RECOVERY" if level == "OK" else level,
                        "entity_id": "vo-h1", "state_message": f"vo-h1 is {level}",
                        "timestamp": t, "monitoring_tool": "kapacitor"}


def test_alerta_with_every_option(setup: Setup) -> None:
    sent = setup.requests(lambda r: r["path"] == "/alerta/alert"
                          and r["json"]["text"].startswith("al-h1"))
    for request, (level, t, v) in zip(sent, LEVELS, strict=True):
        assert request["headers"]["Authorization"] == "Key tok"
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["json"] == {
            "resource": "h1", "event": "al-h1-ev", "environment": "prod",
            "severity": "major" if level == "CRITICAL" else "ok", "group": "g-al",
            "value": f"{v:g}", "text": f"al-h1 is {level}", "origin": "kapa",
            "rawData": result("al", t, v), "service": ["s1", "s2"], "correlate": ["c1"],
            "timeout": 10, "tags": ["host=h1"], "attributes": {"k": "v"}}


def test_alerta_defaults_come_from_kapacitor_and_the_section(setup: Setup) -> None:
    sent = setup.requests(lambda r: r["path"] == "/alerta/alert"
                          and r["json"]["text"].startswith("al2-h1"))
    for request, (level, t, v) in zip(sent, LEVELS, strict=True):
        assert request["headers"]["Authorization"] == "Bearer conftok"
        assert request["json"] == {
            "resource": "al2", "event": "al2-h1", "environment": "conf-env",
            "severity": level.lower(), "group": "nil", "value": "",
            "text": f"al2-h1 is {level}", "origin": "conf-origin",
            # no "correlate": Kapacitor 1.5.7 never sends it (checked against kapacitord)
            "rawData": result("al2", t, v), "service": ["al2"],
            "timeout": 86400, "tags": ["host=h1"]}


def test_bigpanda_alert_and_ok(setup: Setup) -> None:
    sent = setup.requests(path("/bp"))
    for request, (level, t, v) in zip(sent, LEVELS, strict=True):
        assert request["path"] == "/bp"
        assert request["headers"]["Authorization"] == "Bearer bptok"
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["json"] == {
            "description": f"bp-h1 is {level}", "details": "bp-h1 details",
            "check": "bp-h1", "task": f"{setup.tasks['bp']}:bp", "timestamp": t,
            "status": "critical" if level == "CRITICAL" else "ok", "app_key": "app",
            "v": f"{v:g}", "host": "h1-x", "primary_property": "host",
            "secondary_property": "check", "team": "db", "n": "3"}


def test_servicenow_event_records(setup: Setup) -> None:
    sent = setup.requests(path("/sn"))
    for request, (level, _, _) in zip(sent, LEVELS, strict=True):
        assert request["path"] == "/sn"
        assert request["headers"]["Authorization"] == basic("snuser", "snpass")
        assert request["headers"]["Content-Type"] == "application/json"
        # one alert object, not {"records": [...]}: Kapacitor 1.5.7's body (checked
        # against kapacitord); additional_info is kapa-core's addition, kept after it
        body = request["json"]
        info = json.loads(body.pop("additional_info"))
        assert info == {"task": setup.tasks["sn"], "n": "7"}
        assert body == {"source": "src", "node": "h1", "type": "cpu",
                        "resource": "res-sn", "metric_name": "v",
                        "message_key": "mk-sn-h1",
                        "severity": "1" if level == "CRITICAL" else "5",
                        "description": f"sn-h1 is {level}"}


def test_zenoss_router_call(setup: Setup) -> None:
    sent = setup.requests(path("/zenoss"))
    for request, (level, _, _) in zip(sent, LEVELS, strict=True):
        assert request["path"] == "/zenoss"
        assert request["headers"]["Authorization"] == basic("zu", "zp")
        assert request["json"] == {
            "action": "EvRouter", "method": "add", "type": "rpc2", "tid": 5,
            "data": [{"summary": f"S {level}", "device": "h1", "component": "comp",
                      "severity": "Critical" if level == "CRITICAL" else "Clear",
                      "evclasskey": "eck", "evclass": "/App", "collector": "col",
                      "message": "M zn-h1", "cf": "x-zn", "num": 3, "obj": {"a": 1}}]}


def test_topic_handlers_for_pagerduty2_and_opsgenie2(setup: Setup) -> None:
    crit, ok = setup.requests(lambda r: r["path"] == "/pd2"
                              and r["json"]["routing_key"] == "rk-topic")
    assert crit["json"]["dedup_key"] == "tp-h1"
    assert crit["json"]["links"] == [{"href": "http://t/tp-h1", "text": "http://t/tp-h1"}]
    assert crit["json"]["payload"]["class"] == setup.tasks["tp"]
    assert crit["json"]["payload"]["custom_details"] == {"result": result("tp", 1, 5.0)}
    assert ok["json"] == {"routing_key": "rk-topic", "dedup_key": "tp-h1",
                          "event_action": "resolve"}
    alias, (crit, ok) = opsgenie2_requests(setup, "tp-h1")
    body = crit["json"]
    assert json.loads(body.pop("description")) == result("tp", 1, 5.0)
    assert body == opsgenie2_alert("tp", [{"name": "tt", "type": "team"},
                                          {"username": "rr", "type": "user"}])
    # The section's recovery_action (notes) applies when the handler sets none.
    assert ok["path"] == f"/og2/alerts/{alias}/notes?identifierType=alias"
    assert ok["json"] == {"note": "tp-h1 is OK"}


def test_bad_options_are_refused_with_400(setup: Setup) -> None:
    daemon = setup.daemon
    handlers = f"{daemon.url}{API}/alerts/topics/incidents/handlers"
    bad = httpx.post(handlers, json={"id": "bad", "kind": "opsgenie2",
                                     "options": {"recovery_action": "explode"}})
    assert bad.status_code == 400
    assert "recovery_action" in bad.json()["error"] and "explode" in bad.json()["error"]
    bad = httpx.post(handlers, json={"id": "bad", "kind": "alerta",
                                     "options": {"resource": "{{ .Name "}})
    assert bad.status_code == 400 and "resource" in bad.json()["error"]
    bad = httpx.post(handlers, json={"id": "bad", "kind": "pagerduty2",
                                     "options": {"routing_key": "x", "colour": "red"}})
    assert bad.status_code == 400 and "colour" in bad.json()["error"]
    body = {"id": "bad-task", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": "stream|from().measurement('x')|alert().crit(lambda: TRUE)"
                      ".opsGenie2().recoveryAction('explode')"}
    refused = httpx.post(f"{daemon.url}{API}/tasks", json=body)
    assert refused.status_code == 400
    assert "recovery_action" in refused.json()["error"]
    assert "explode" in refused.json()["error"]
