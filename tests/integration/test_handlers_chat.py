"""Chat and notification handlers through the real daemon: Discord, Teams, Telegram,
Pushover, Talk and HipChat against one recording HTTP server, Sensu against a small TCP
listener. Each request is compared whole with the one Kapacitor sends."""

from __future__ import annotations

import json
import socketserver
import threading
from urllib.parse import parse_qsl

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.test_alerts import wait_for
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration
API = "/kapacitor/v1"
TELEGRAM_PATH = "/tg/bot123:ABC/sendMessage"


class SensuClient:
    """A stand-in for the Sensu client socket: records each JSON line, answers ``ok``."""

    def __init__(self) -> None:
        self.checks: list[dict] = []
        client = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline()
                client.checks.append(json.loads(line))
                self.wfile.write(b"ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def servers():
    recorder = HTTPRecorder(status=200).start()
    sensu = SensuClient()
    try:
        yield recorder, sensu
    finally:
        recorder.close()
        sensu.close()


@pytest.fixture(scope="module")
def daemon(servers):
    recorder, sensu = servers
    url = recorder.url
    config = {
        "discord": [{"enabled": True, "default": True, "workspace": "main",
                     "url": url + "/discord/main", "timestamp": True, "username": "kapa",
                     "avatar-url": "http://img.example/kapa.png", "embed-title": "Alert"},
                    {"enabled": True, "default": False, "workspace": "other",
                     "url": url + "/discord/other"}],
        "teams": {"enabled": True, "channel-url": url + "/teams/default"},
        "telegram": {"enabled": True, "url": url + "/tg/bot", "token": "123:ABC",
                     "chat-id": "-100", "disable-notification": True},
        "pushover": {"enabled": True, "token": "APPTOKEN", "user-key": "USERKEY",
                     "url": url + "/pushover/1/messages.json"},
        "talk": {"enabled": True, "url": url + "/talk", "author_name": "kapa-author"},
        "hipchat": {"enabled": True, "url": url + "/hipchat/v2/room", "room": "ops",
                    "token": "ROOMTOKEN"},
        "sensu": {"enabled": True, "addr": sensu.addr, "source": "Kapacitor",
                  "handlers": ["default-handler"]},
        "http": {"log-enabled": False},
    }
    with DaemonProcess(config) as d:
        yield d


def header(request: dict, name: str) -> str:
    return next((v for k, v in request["headers"].items() if k.lower() == name.lower()), "")


def sent(recorder: HTTPRecorder, path: str, text: str, count: int = 2) -> list[dict]:
    """The first ``count`` requests to ``path`` whose body mentions ``text``."""
    def matching():
        found = [r.as_dict() for r in list(recorder.requests)
                 if r.path == path and text.encode() in r.body]
        return found if len(found) >= count else None
    found = wait_for(matching, timeout=20) or []
    assert len(found) >= count, f"{path}: {recorder.requests}"
    return found[:count]


def sensu_checks(sensu: SensuClient, name: str, count: int = 2) -> list[dict]:
    """The first ``count`` checks named ``name`` the Sensu listener received."""
    def matching():
        found = [c for c in list(sensu.checks) if c["name"] == name]
        return found if len(found) >= count else None
    return (wait_for(matching, timeout=20) or [])[:count]


def json_bodies(requests: list[dict]) -> list[dict]:
    # The recorder answers POST only, so every recorded request was a POST.
    for request in requests:
        assert header(request, "Content-Type") == "application/json"
    return [json.loads(r["body"]) for r in requests]


def teams_card(level: str, alert_id: str, message: str) -> dict:
    # no themeColor: Kapacitor 1.5.7's card has none (checked against kapacitord)
    title = f"{level}: [{alert_id}]"
    summary = f"{title} - {message}"
    return {"@type": "MessageCard", "@context": "http://schema.org/extensions",
            "title": title, "text": message, "summary": summary[:70] + "..."}


def test_every_kind_sends_kapacitors_request(daemon, servers) -> None:
    recorder, sensu = servers
    define(daemon, f"""
stream|from().measurement('chat')
  |alert().crit(lambda: "v" > 1).id('chat-alert').message('{{{{ .ID }}}} is {{{{ .Level }}}}')
    .discord().username('bot').embedTitle('{{{{ .Level }}}}: {{{{ .ID }}}}')
    .discord().workspace('other')
    .teams().channelURL('{recorder.url}/teams/override')
    .telegram().parseMode('HTML').disableWebPagePreview()
    .pushover().device('phone').title('Title').uRL('http://dash.example/d')
      .uRLTitle('dashboard').sound('siren')
    .talk()
    .hipChat().room('dev')
    .sensu().source('{{{{ index .Tags "host" }}}}').handlers('a', 'b')
      .metadata('team', 'ops').metadata('priority', 2).metadata('name', 'ignored')
""")
    write(daemon, "chat,host=h1 v=5 1\nchat,host=h1 v=0 2\n")
    crit, ok = "chat-alert is CRITICAL", "chat-alert is OK"

    main = json_bodies(sent(recorder, "/discord/main", "chat-alert"))
    assert main == [
        {"username": "bot", "avatar_url": "http://img.example/kapa.png",
         "embeds": [{"color": 0xF95F53, "title": "CRITICAL: chat-alert", "description": crit,
                     "timestamp": "1970-01-01T00:00:01Z"}]},
        {"username": "bot", "avatar_url": "http://img.example/kapa.png",
         "embeds": [{"color": 0x7A65F2, "title": "OK: chat-alert", "description": ok,
                     "timestamp": "1970-01-01T00:00:02Z"}]}]
    other = json_bodies(sent(recorder, "/discord/other", "chat-alert"))
    assert other == [{"username": "", "avatar_url": "", "embeds": [
        {"color": color, "title": "", "description": message, "timestamp": ""}]}
        for color, message in ((0xF95F53, crit), (0x7A65F2, ok))]

    teams = json_bodies(sent(recorder, "/teams/override", "chat-alert"))
    assert teams == [teams_card("CRITICAL", "chat-alert", crit),
                     teams_card("OK", "chat-alert", ok)]

    telegram = json_bodies(sent(recorder, TELEGRAM_PATH, "chat-alert"))
    assert telegram == [{"chat_id": "-100", "text": text, "parse_mode": "HTML",
                         "disable_web_page_preview": True, "disable_notification": True}
                        for text in (crit, ok)]

    pushes = sent(recorder, "/pushover/1/messages.json", "chat-alert")
    for request in pushes:
        assert header(request, "Content-Type") == "application/x-www-form-urlencoded"
    forms = [parse_qsl(r["body"].decode(), keep_blank_values=True) for r in pushes]
    for fields in forms:
        names = [name for name, _ in fields]
        assert names == sorted(names)  # Go encodes a form in key order
    assert [dict(fields) for fields in forms] == [
        {"token": "APPTOKEN", "user": "USERKEY", "message": message, "priority": priority,
         "device": "phone", "title": "Title", "url": "http://dash.example/d",
         "url_title": "dashboard", "sound": "siren"}
        for message, priority in ((crit, "1"), (ok, "-2"))]

    talk = json_bodies(sent(recorder, "/talk", "chat-alert"))
    assert talk == [{"title": "chat-alert", "text": text, "authorName": "kapa-author"}
                    for text in (crit, ok)]

    hipchat = json_bodies(sent(recorder, "/hipchat/v2/room/dev/notification"
                                         "?auth_token=ROOMTOKEN", "chat-alert"))
    assert hipchat == [{"from": "kapacitor", "color": color, "message": text, "notify": True}
                       for color, text in (("red", crit), ("green", ok))]

    assert sensu_checks(sensu, "chat-alert") == [
        {"name": "chat-alert", "source": "h1", "output": text, "status": status,
         "handlers": ["a", "b"], "team": "ops", "priority": 2}
        for text, status in ((crit, 2), (ok, 0))]


def test_topic_handlers_use_option_keys_and_section_defaults(daemon, servers) -> None:
    recorder, sensu = servers
    base = f"{daemon.url}{API}/alerts/topics/chat-topic/handlers"
    specs = [
        {"id": "dc", "kind": "discord",
         "options": {"workspace": "other", "username": "topic-bot",
                     "avatar-url": "http://img.example/t.png", "embed-title": "{{ .ID }}"}},
        {"id": "tg", "kind": "telegram",
         "options": {"chat-id": "42", "parse-mode": "Markdown",
                     "disable-web-page-preview": True}},
        {"id": "tm", "kind": "teams"},
        {"id": "pu", "kind": "pushover", "options": {"user-key": "OTHERUSER",
                                                     "url-title": "only title"}},
        {"id": "hc", "kind": "hipchat", "options": {"token": "HANDLERTOKEN"}},
        {"id": "se", "kind": "sensu", "options": {"source": "topic-source",
                                                  "metadata": {"env": "prod"}}},
    ]
    for spec in specs:
        response = httpx.post(base, json=spec)
        assert response.status_code == 200, response.text
    define(daemon, """
stream|from().measurement('topical')
  |alert().crit(lambda: "v" > 1).id('topic.alert')
    .message('{{ .ID }} is {{ .Level }} and this message is long enough to be cut by teams')
    .topic('chat-topic')
""")
    write(daemon, "topical v=5 1\ntopical v=0 2\n")
    crit = "topic.alert is CRITICAL and this message is long enough to be cut by teams"
    ok = "topic.alert is OK and this message is long enough to be cut by teams"

    discord = json_bodies(sent(recorder, "/discord/other", "topic.alert"))
    assert discord == [{"username": "topic-bot", "avatar_url": "http://img.example/t.png",
                        "embeds": [{"color": color, "title": "topic.alert",
                                    "description": text, "timestamp": ""}]}
                       for color, text in ((0xF95F53, crit), (0x7A65F2, ok))]

    telegram = json_bodies(sent(recorder, TELEGRAM_PATH, "topic.alert"))
    assert telegram == [{"chat_id": "42", "text": text, "parse_mode": "Markdown",
                         "disable_web_page_preview": True, "disable_notification": True}
                        for text in (crit, ok)]

    teams = json_bodies(sent(recorder, "/teams/default", "topic.alert"))
    expected = [teams_card("CRITICAL", "topic.alert", crit),
                teams_card("OK", "topic.alert", ok)]
    assert teams == expected
    assert all(len(card["summary"]) == 73 for card in teams)  # cut at 70, then "..."

    pushes = sent(recorder, "/pushover/1/messages.json", "topic.alert")
    assert [dict(parse_qsl(r["body"].decode())) for r in pushes] == [
        {"token": "APPTOKEN", "user": "OTHERUSER", "message": text, "priority": priority,
         "url_title": "only title"} for text, priority in ((crit, "1"), (ok, "-2"))]

    hipchat = json_bodies(sent(recorder, "/hipchat/v2/room/ops/notification"
                                         "?auth_token=HANDLERTOKEN", "topic.alert"))
    assert [b["color"] for b in hipchat] == ["red", "green"]

    assert sensu_checks(sensu, "topic.alert") == [
        {"name": "topic.alert", "source": "topic-source", "output": text, "status": status,
         "handlers": ["default-handler"], "env": "prod"}
        for text, status in ((crit, 2), (ok, 0))]


def test_bad_options_are_refused_with_400(daemon) -> None:
    base = f"{daemon.url}{API}/alerts/topics/bad-topic/handlers"
    bad = httpx.post(base, json={"id": "x", "kind": "telegram",
                                 "options": {"parse-mode": "XML"}})
    assert bad.status_code == 400
    assert "parseMode XML is not valid, please use 'Markdown' or 'HTML'" in bad.text
    bad = httpx.post(base, json={"id": "y", "kind": "sensu",
                                 "options": {"source": "{{ .ID "}})
    assert bad.status_code == 400 and "source" in bad.text
    bad = httpx.post(base, json={"id": "z", "kind": "discord",
                                 "options": {"channel": "#nope"}})
    assert bad.status_code == 400 and "channel" in bad.text
    task = httpx.post(f"{daemon.url}{API}/tasks", json={
        "id": "bad-telegram", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from().measurement('m')|alert().crit(lambda: TRUE)"
                  ".telegram().parseMode('XML')"})
    assert task.status_code == 400 and "parseMode XML is not valid" in task.text
    task = httpx.post(f"{daemon.url}{API}/tasks", json={
        "id": "bad-pushover", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from().measurement('m')|alert().crit(lambda: TRUE)"
                  ".pushover().url('http://x')"})
    assert task.status_code == 400  # Kapacitor spells it .uRL()


def test_sensu_refuses_names_kapacitor_refuses(daemon, servers) -> None:
    _recorder, sensu = servers
    define(daemon, """
stream|from().measurement('sensuname')
  |alert().crit(lambda: "v" > 1).id('bad name/{{ .Name }}').sensu()
""")
    write(daemon, "sensuname v=5 1\n")
    line = daemon.wait_for_log(r"invalid name .*bad name/sensuname.* for sensu alert")
    assert r"Must match ^[\\w\\.-]+$" in line or r"Must match ^[\w\.-]+$" in line
    assert not [c for c in sensu.checks if "sensuname" in c["name"]]
