"""The requests alert handlers send to HTTP services, compared with what Kapacitor 1.5.7
sent for the same config, script and points.

``handler_bodies_kapacitor.json`` holds, for each check below, the requests Kapacitor
1.5.7 (kapacitord built from tag v1.5.7) sent to a recording server: method, path, query,
the headers a service defines (content type, authorization, accept) and the body, as data
and as bytes, with the server IDs and URLs masked. They were taken with::

    python -m tests.integration.test_handler_bodies_compat --kapacitord BIN

and are never edited by hand. Each check runs the same on kapa-core here (no Kapacitor
needed), through the recorder and normalisation of tests/compat/scenarios_handlers.py.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from tests.compat.scenarios_handlers import (
    BASE,
    ScenarioCase,
    Service,
    ServiceRecorder,
    normalize,
    run,
)

pytestmark = pytest.mark.integration

EXPECTED = Path(__file__).with_name("handler_bodies_kapacitor.json")


@dataclass
class Check:
    service: Service
    script: str
    points: str
    #: topic handlers defined through the API before the task runs ({{URL}}: recorder)
    topic_handlers: tuple[dict[str, Any], ...] = ()


def define_topic_handlers(url: str, check: Check, recorder_url: str) -> None:
    for spec in check.topic_handlers:
        body = json.loads(json.dumps(spec).replace("{{URL}}", recorder_url))
        response = httpx.post(f"{url}/kapacitor/v1/alerts/topics/{TOPIC}/handlers",
                              json=body)
        assert response.status_code == 200, response.text


TOPIC = "bodies"


# Two hosts: b goes CRITICAL (an integer field), a WARNING, then b recovers.
POINTS = """\
cpu,host=a,dc=west load=3 31536000
cpu,host=b,dc=east load=12i 31536000
cpu,host=a,dc=west load=7.5 31536001
cpu,host=b,dc=east load=1 31536002"""

ALERT = """\
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |alert()
        .id('{{ .Name }}:{{ index .Tags "host" }}')
        .message('{{ .ID }} is {{ .Level }} at {{ index .Fields "load" }}')
        .warn(lambda: "load" > 5)
        .crit(lambda: "load" > 10)
"""

CHECKS: dict[str, Check] = {
    # Elements written in the file: only the one marked is the default, and none has a
    # username unless it sets one (Slack posts "username": "", icon_emoji always).
    "chat": Check(Service(lambda u: {
        "slack": [{"enabled": True, "workspace": "main", "default": True,
                   "url": u + "/slack/main", "channel": "#general"},
                  {"enabled": True, "workspace": "ops", "url": u + "/slack/ops",
                   "icon-emoji": ":bell:"}],
        "discord": [{"enabled": True, "workspace": "main", "default": True,
                     "url": u + "/discord/main"},
                    {"enabled": True, "workspace": "ops", "url": u + "/discord/ops",
                     "username": "ops bot", "timestamp": True}],
        "teams": {"enabled": True, "channel-url": u + "/teams"}}),
        ALERT + """\
        .slack()
        .slack()
            .workspace('ops')
            .channel('#ops')
            .username('pager')
        .discord()
        .discord()
            .workspace('ops')
            .embedTitle('{{ .Level }} on {{ index .Tags "host" }}')
        .teams()
""", POINTS),
    # A lone [slack] table is the default one, still without a username.
    "slack_single": Check(Service(lambda u: {
        "slack": {"enabled": True, "url": u + "/slack/only"}}),
        ALERT + """\
        .slack()
            .channel('#one')
""", POINTS),
    # Alerta without correlate; ServiceNow one alert object with every field, the
    # section's credentials (the handler's username is not used by Kapacitor 1.5.7).
    "incident": Check(Service(lambda u: {
        "alerta": {"enabled": True, "url": u + "/alerta", "token": "tok",
                   "environment": "prod", "origin": "kapa"},
        "servicenow": {"enabled": True, "url": u + "/sn", "source": "Kap",
                       "username": "sn-user", "password": "sn-pass"}},
        default_status=201),
        ALERT + """\
        .alerta()
            .resource('{{ index .Tags "host" }}')
            .value('{{ index .Fields "load" }}')
        .alerta()
            .services('web', '{{ index .Tags "dc" }}')
            .environment('{{ index .Tags "dc" }}')
        .serviceNow()
            .node('{{ index .Tags "host" }}')
            .metricName('load')
            .username('someone')
            .password('else')
        .serviceNow()
            .messageKey('key {{ .ID }} ✓ {{ index .Tags "dc" }}')
            .resource('{{ .TaskName }}')
""", POINTS),
    # Triggers and recoveries of the paging services.
    "paging": Check(Service(lambda u: {
        "pagerduty": {"enabled": True, "url": u + "/pd", "service-key": "pd-key"},
        "pagerduty2": {"enabled": True, "url": u + "/pd2", "routing-key": "pd2-key"},
        "victorops": {"enabled": True, "url": u + "/vo", "api-key": "vo-api",
                      "routing-key": "vo-route"},
        "opsgenie": {"enabled": True, "url": u + "/og", "recovery_url": u + "/og-note",
                     "api-key": "og-key", "teams": ["conf-team"]},
        "opsgenie2": {"enabled": True, "url": u + "/og2", "api-key": "og2-key",
                      "recipients": ["conf-user"]}}),
        ALERT + """\
        .details('{{ .ID }} <b>{{ .Level }}</b>')
        .pagerDuty()
        .pagerDuty2()
            .link('http://example.com/{{ .ID }}', 'see {{ .Level }}')
        .victorOps()
            .routingKey('vo-task')
        .opsGenie()
            .recipients('og-user')
        .opsGenie2()
            .teams('og2-team')
            .recoveryAction('close')
""", POINTS),
    # Chat services that are one service each, and Pushover's form.
    "messaging": Check(Service(lambda u: {
        "telegram": {"enabled": True, "url": u + "/bot", "token": "T:K", "chat-id": "42",
                     "parse-mode": "Markdown"},
        "hipchat": {"enabled": True, "url": u + "/hc", "room": "conf room",
                    "token": "hc-token"},
        "pushover": {"enabled": True, "url": u + "/po", "user-key": "po-user",
                     "token": "po-token"},
        "talk": {"enabled": True, "url": u + "/talk", "author_name": "kap"}}),
        ALERT + """\
        .telegram()
            .disableWebPagePreview()
        .hipChat()
        .hipChat()
            .room('ops/room 2')
        .pushover()
            .title('{{ .ID }}')
            .sound('siren')
        .talk()
""", POINTS),
    # [[httppost]] endpoints: configured headers, basic auth and an alert template for
    # .post(), a row template for the httpPost node; .post() to a URL with its headers.
    "post": Check(Service(lambda u: {
        "httppost": [
            {"endpoint": "alerts", "url": u + "/hook/alerts",
             "headers": {"X-Team": "db", "Content-Type": "text/plain"},
             "basic-auth": {"username": "kap", "password": "pw"},
             "alert-template": '{{ .ID }} {{ .Level }} {{ .Message }} {{ .Duration }}'
                               '{{ range .Data.Series }} {{ .Name }}{{ end }}'},
            {"endpoint": "rows", "url": u + "/hook/rows/{{ .Tags.host }}",
             "row-template": '{{ .Name }}{{ range .Values }} {{ index . "load" }}{{ end }}'},
            {"endpoint": "plain", "url": u + "/hook/plain"}]}),
        """\
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |httpPost()
        .endpoint('rows')
        .header('X-Node', 'yes')
    |alert()
        .id('{{ .Name }}:{{ index .Tags "host" }}')
        .warn(lambda: "load" > 5)
        .crit(lambda: "load" > 10)
        .post()
            .endpoint('alerts')
        .post('{{URL}}/direct')
            .header('X-Direct', '1')
        .post()
            .endpoint('plain')
            .header('Authorization', 'Token t')
""", POINTS),
    # Handlers configured global, one with state-changes-only: the script names none.
    "global": Check(Service(lambda u: {
        "slack": {"enabled": True, "default": True, "global": True,
                  "state-changes-only": True, "url": u + "/slack"},
        "telegram": {"enabled": True, "global": True, "url": u + "/bot", "token": "T",
                     "chat-id": "7"},
        "victorops": {"enabled": True, "global": True, "url": u + "/vo", "api-key": "k",
                      "routing-key": "r"}}),
        ALERT, POINTS + """
cpu,host=b,dc=east load=20 31536003
cpu,host=b,dc=east load=21 31536004
cpu,host=a,dc=west load=8 31536004"""),
    # Topic handlers with Kapacitor's option keys, for an alert that names its topic.
    "topic": Check(Service(lambda u: {
        "slack": {"enabled": True, "url": u + "/slack", "channel": "#c"},
        "discord": {"enabled": True, "url": u + "/discord"},
        "teams": {"enabled": True, "channel-url": u + "/teams"},
        "alerta": {"enabled": True, "url": u + "/alerta", "token": "tok"},
        "servicenow": {"enabled": True, "url": u + "/sn", "source": "Kap"},
        "pagerduty2": {"enabled": True, "url": u + "/pd2", "routing-key": "pd2-key"},
        "opsgenie2": {"enabled": True, "url": u + "/og2", "api-key": "og2-key"},
        "telegram": {"enabled": True, "url": u + "/bot", "token": "T:K", "chat-id": "42"},
        "hipchat": {"enabled": True, "url": u + "/hc", "room": "r", "token": "hc"},
        "pushover": {"enabled": True, "url": u + "/po", "user-key": "pu", "token": "pt"},
        "httppost": [{"endpoint": "ep", "url": u + "/hp"}]}),
        ALERT.replace("    |alert()\n", f"    |alert()\n        .topic('{TOPIC}')\n"), POINTS,
        topic_handlers=(
            {"id": "sl", "kind": "slack",
             "options": {"channel": "#topic", "username": "tb", "icon-emoji": ":x:"}},
            {"id": "dc", "kind": "discord",
             "options": {"username": "du", "avatar-url": "http://a/b.png",
                         "embed-title": "T {{ .Level }}"}},
            {"id": "tm", "kind": "teams", "options": {"channel-url": "{{URL}}/teams2"}},
            {"id": "al", "kind": "alerta",
             "options": {"resource": "r-{{ .Name }}", "event": "e", "group": "g",
                         "value": "v", "service": ["s1"], "timeout": 3600000000000,
                         "origin": "o"}},
            {"id": "sn", "kind": "servicenow",
             "options": {"node": "n", "type": "t", "resource": "r", "metricName": "m",
                         "messageKey": "mk"}},
            {"id": "pd2", "kind": "pagerduty2",
             "options": {"routing-key": "rk2",
                         "links": [{"href": "http://l/{{ .ID }}", "text": "lt"}]}},
            {"id": "og2", "kind": "opsgenie2",
             "options": {"teams-list": ["t2"], "recipients-list": ["r2"],
                         "recovery_action": "close"}},
            {"id": "tg", "kind": "telegram",
             "options": {"chat-id": "99", "parse-mode": "HTML",
                         "disable-web-page-preview": True, "disable-notification": True}},
            {"id": "hc", "kind": "hipchat", "options": {"room": "room 9", "token": "tk"}},
            {"id": "po", "kind": "pushover",
             "options": {"device": "d", "title": "ti", "url": "http://u",
                         "url-title": "ut", "sound": "s"}},
            {"id": "hp", "kind": "post", "options": {"endpoint": "ep",
                                                     "headers": {"X-T": "1"}}})),
}


#: /kapacitor/v1/service-tests/<service>: the section config and the bodies posted, in
#: order, by check name.
SERVICE_TESTS: dict[str, tuple[str, Any, tuple[dict[str, Any], ...]]] = {
    "pagerduty": ("pagerduty", lambda u: {"pagerduty": {
        "enabled": True, "url": u + "/pd", "service-key": "pd-key"}},
        ({}, {"level": "OK"}, {"level": "INFO"},
         {"level": "WARNING", "incident-key": "k", "details": "d <b>"},
         {"level": ""}, {"level": None}, {"level": "bogus"}, {"level": 3},
         {"description": 5})),
    "victorops": ("victorops", lambda u: {"victorops": {
        "enabled": True, "url": u + "/vo", "api-key": "vo-api", "routing-key": "vo-route"}},
        ({}, {"routingKey": "rk", "messageType": "RECOVERY", "entityID": "e/1"},
         {"message": 3})),
    "talk": ("talk", lambda u: {"talk": {"enabled": True, "url": u + "/talk",
                                         "author_name": "kap"}},
             ({}, {"title": "t", "text": "x <y> & z"}, {"title": False})),
    "talk disabled": ("talk", lambda u: {"talk": {"url": u + "/talk"}}, ({},)),
    "telegram": ("telegram", lambda u: {"telegram": {
        "enabled": True, "url": u + "/bot", "token": "T:K", "chat-id": "42",
        "disable-web-page-preview": True}},
        ({}, {"parse-mode": "HTML", "disable-notification": True, "chat-id": "5"},
         {"parse-mode": "bb"}, {"disable-notification": "yes"})),
    "hipchat": ("hipchat", lambda u: {"hipchat": {
        "enabled": True, "url": u + "/hc", "room": "conf room", "token": "hc-token"}},
        ({}, {"level": "WARNING", "room": "other/room"}, {"level": "OK"},
         {"level": "CRITICALX"})),
    "slack": ("slack", lambda u: {"slack": [
        {"enabled": True, "workspace": "main", "default": True, "url": u + "/slack/main",
         "channel": "#general"},
        {"enabled": True, "workspace": "ops", "url": u + "/slack/ops"}]},
        ({}, {"workspace": "ops", "channel": "#x", "username": "u", "icon-emoji": ":e:",
              "level": "WARNING"}, {"workspace": "nope"}, {"level": "OK", "message": 1})),
    "slack single": ("slack", lambda u: {"slack": {"enabled": True, "url": u + "/slack",
                                                   "channel": "#only"}},
                     ({}, {"channel": "#other", "level": "INFO"})),
    "pushover": ("pushover", lambda u: {"pushover": {
        "enabled": True, "url": u + "/po", "user-key": "pu", "token": "pt"}},
        ({}, {"device": "d", "title": "t", "url": "http://u", "url-title": "ut",
              "sound": "s", "level": "OK", "user-key": "k2"}, {"level": "WARNING"})),
    "servicenow": ("servicenow", lambda u: {"servicenow": {
        "enabled": True, "url": u + "/sn", "source": "Kap", "username": "su",
        "password": "sp"}},
        ({}, {"alert_id": "a", "source": "", "level": "WARNING", "message": "m"},
         {"level": "INFO", "alert_id": "✓" * 400})),
    "opsgenie": ("opsgenie", lambda u: {"opsgenie": {
        "enabled": True, "url": u + "/og", "recovery_url": u + "/og-note",
        "api-key": "og-key", "teams": ["conf-team"]}},
        ({}, {"message-type": "RECOVERY", "teams": ["a", "b"], "recipients": ["r"]},
         {"teams": [1]}, {"recipients": "r"})),
    "opsgenie2": ("opsgenie2", lambda u: {"opsgenie2": {
        "enabled": True, "url": u + "/og2", "api-key": "og2-key",
        "recipients": ["conf-user"]}},
        ({}, {"message-type": "RECOVERY", "recovery_action": "close"},
         {"message-type": "warning", "teams": ["t"]}, {"message-type": "bogus"},
         {"message-type": "RECOVERY", "recovery_action": "bad", "entity-id": "e/✓"})),
    "alerta": ("alerta", lambda u: {"alerta": {
        "enabled": True, "url": u + "/alerta", "token": "tok", "environment": "prod",
        "origin": "kapa"}},
        ({}, {"timeout": "1h30m", "service": None, "severity": "major", "environment": ""},
         {"timeout": "soon", "service": []}, {"event": ""}, {"service": ["a", 2]})),
    "discord": ("discord", lambda u: {"discord": [
        {"enabled": True, "workspace": "main", "default": True, "url": u + "/dc/main",
         "timestamp": True},
        {"enabled": True, "workspace": "ops", "url": u + "/dc/ops", "username": "ops bot",
         "avatar-url": "http://a/b.png"}]},
        ({}, {"workspace": "ops", "level": "CRITICAL", "username": "", "avatar-url": "",
              "embed-title": "", "time-val": "2020-05-06T07:08:09.5+02:00"},
         {"time-val": "2020-05-06T07:08:09.5+02:00", "level": "WARNING"},
         {"workspace": "nope"})),
    "teams": ("teams", lambda u: {"teams": {"enabled": True, "channel-url": u + "/teams"}},
              ({}, {"alert_id": "", "alert_topic": ""}, {"alert_id": "", "level": "INFO"},
               {"channel_url": "http://127.0.0.1:9/elsewhere", "level": "WARNING",
                "message": "m ✓ " * 20})),
}

#: Test options whose default Kapacitor takes from a secret of the section.
SECRET_OPTIONS = {"pushover": ("user-key",)}

#: Values that are the time of the test (VictorOps' timestamp): masked.
_NOW = re.compile(r'"timestamp":\d+')


def service_test_answers(url: str, name: str, bodies: tuple[dict[str, Any], ...],
                         recorder: ServiceRecorder) -> list[Any]:
    """The test's options, then for each body: status, answer, requests sent."""
    def answer(response: httpx.Response) -> Any:
        return json.loads(response.text.replace(recorder.http_url, "<recorder>"))

    listing = answer(httpx.get(f"{url}/kapacitor/v1/service-tests/{name}"))
    for key in SECRET_OPTIONS.get(name, ()):  # offered by Kapacitor, never by kapa-core
        listing["options"][key] = "<secret>"
    out: list[Any] = [listing]
    for body in bodies:
        # the status each service's API answers a success with
        recorder.reset(default_status=201 if name in ("servicenow", "alerta")
                       else 202 if name == "opsgenie2" else 204 if name == "discord"
                       else 200)
        response = httpx.post(f"{url}/kapacitor/v1/service-tests/{name}", json=body,
                              timeout=30)
        requests = []
        for request in recorder.snapshot():
            request["body"] = _NOW.sub('"timestamp":0', request["body"])
            requests.append(normalize(request, url, recorder.http_url))
        out.append([response.status_code, answer(response), requests])
    return out


def case(name: str, check: Check) -> ScenarioCase:
    return ScenarioCase(name, EXPECTED, {"task": f"bodies_{name}", "db": "mydb",
                                         "rp": "myrp", "script": check.script,
                                         "points": check.points})


def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text(encoding="utf-8"))["checks"]


@pytest.fixture(scope="module")
def recorder():
    recorder = ServiceRecorder()
    yield recorder
    recorder.close()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_requests_as_kapacitor_sends_them(name: str, recorder: ServiceRecorder,
                                          tmp_path: Path) -> None:
    check = CHECKS[name]
    want = expected()[name]
    assert want["requests"], "the check sends nothing"
    with DaemonProcess({**BASE, **check.service.config(recorder.http_url)}) as daemon:
        define_topic_handlers(daemon.url, check, recorder.http_url)
        got = run(daemon.url, case(name, check), check.service, recorder, tmp_path,
                  want, timeout=8)
    # bodies as bytes too ("raw"; blank where Go's map order makes them random)
    assert got == want


@pytest.mark.parametrize("name", sorted(SERVICE_TESTS))
def test_service_test_as_kapacitor_answers(name: str, recorder: ServiceRecorder) -> None:
    service, config, bodies = SERVICE_TESTS[name]
    want = json.loads(EXPECTED.read_text(encoding="utf-8"))["service_tests"][name]
    with DaemonProcess({**BASE, **config(recorder.http_url)}) as daemon:
        got = service_test_answers(daemon.url, service, bodies, recorder)
    assert got == want


def main(argv: list[str]) -> int:
    """Take the expected requests from a kapacitord 1.5.7 binary."""
    from tests.compat.oracle import Kapacitor
    from tests.compat.scenarios_handlers import toml_sections

    if len(argv) != 2 or argv[0] != "--kapacitord":
        print("usage: python -m tests.integration.test_handler_bodies_compat "
              "--kapacitord BIN", file=sys.stderr)
        return 2
    recorder = ServiceRecorder()
    checks = {}
    service_tests = {}
    try:
        for name, (service, config, bodies) in SERVICE_TESTS.items():
            server = Kapacitor(argv[1], extra_conf=toml_sections(config(recorder.http_url)))
            try:
                service_tests[name] = service_test_answers(server.url, service, bodies,
                                                           recorder)
            finally:
                server.close()
        for name, check in CHECKS.items():
            server = Kapacitor(argv[1], extra_conf=toml_sections(
                check.service.config(recorder.http_url)))
            try:
                define_topic_handlers(server.url, check, recorder.http_url)
                checks[name] = run(server.url, case(name, check), check.service, recorder,
                                   Path(tempfile.mkdtemp()), settle=2.0)
            finally:
                server.close()
            print(f"{name}: {len(checks[name].get('requests', []))} requests",
                  file=sys.stderr)
    finally:
        recorder.close()
    EXPECTED.write_text(json.dumps({
        "about": "Requests Kapacitor 1.5.7 sent for the checks of "
                 "test_handler_bodies_compat.py (taken by its main(); not edited by hand)",
        "checks": checks, "service_tests": service_tests}, indent=1,
        ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
