"""Handlers against real receivers: Slack's webhook format on a recording HTTP server
(kapa_core.testing.RecordingHTTPServer), email through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes

import httpx
import pytest
from aiosmtpd.controller import Controller

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.influxd import free_port
from tests.integration.test_alerts import wait_for
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration


@pytest.fixture
def recorder() -> Iterator[HTTPRecorder]:
    with HTTPRecorder(status=200) as r:
        yield r


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def test_slack_webhook_request(recorder) -> None:
    config = {"slack": [{"enabled": True, "workspace": "team", "default": True,
                         "url": recorder.url + "/services/T/B/X", "channel": "#alerts"}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        define(daemon, """
stream|from().measurement('cpu')
  |alert().crit(lambda: "v" > 1).message('cpu is {{ .Level }}')
    .slack().channel('#ops').iconEmoji(':fire:')
""")
        write(daemon, "cpu v=5 1\ncpu v=0 2\n")
        assert wait_for(lambda: len(recorder.requests) >= 2)
    first, second = (json.loads(r.body) for r in recorder.requests[:2])
    assert recorder.requests[0].path == "/services/T/B/X"
    assert recorder.requests[0].headers["content-type"] == "application/json"
    assert first == {"as_user": False, "channel": "#ops", "text": "",
                     "attachments": [{"fallback": "cpu is CRITICAL", "color": "danger",
                                      "text": "cpu is CRITICAL", "mrkdwn_in": ["text"]}],
                     # a [[slack]] written in the file has no username: Kapacitor
                     # 1.5.7 posts "" here (checked against kapacitord)
                     "username": "", "icon_emoji": ":fire:"}
    assert second["attachments"][0]["color"] == "good"
    assert second["attachments"][0]["text"] == "cpu is OK"


def test_slack_global_handler_and_state_changes_only(recorder) -> None:
    # default = true: Kapacitor 1.5.7 refuses a global element that is not the default
    config = {"slack": [{"enabled": True, "url": recorder.url, "channel": "#all",
                         "default": True, "global": True, "state-changes-only": True}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        define(daemon, "stream|from().measurement('g')|alert().crit(lambda: \"v\" > 1)")
        # The recovery comes after the repeats: once it has been sent, any repeat would
        # have been sent before it.
        write(daemon, "g v=5 1\ng v=6 2\ng v=7 3\ng v=0 4\n")
        wait_until(lambda: len(recorder.requests) >= 2, what="two Slack requests")
    bodies = [json.loads(r.body) for r in recorder.requests]
    # repeats suppressed by state-changes-only
    assert [b["attachments"][0]["color"] for b in bodies] == ["danger", "good"]
    assert bodies[0]["channel"] == "#all"


def test_failing_endpoint_is_logged_and_the_task_goes_on() -> None:
    with HTTPRecorder(status=500) as failing:
        config = {"slack": [{"enabled": True, "url": failing.url}],
                  "http": {"log-enabled": False}}
        with DaemonProcess(config) as daemon:
            task_id = define(daemon, """
stream|from().measurement('f')|alert().crit(lambda: "v" > 1).slack()|httpOut('out')
""")
            write(daemon, "f v=5 1\nf v=0 2\nf v=9 3\n")
            wait_until(lambda: len(failing.requests) >= 3, what="three Slack requests")
            daemon.wait_for_log("alert handler failed.*HTTP 500")
            wait_until(lambda: httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}/out")
                       .json(), what="the last point on httpOut",
                       until=lambda out: out["series"][0]["values"][0][1] == 9.0)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port: (its mailbox, the port)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_email_through_a_real_smtp_server(smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    config = {"smtp": {"enabled": True, "host": "127.0.0.1", "port": port,
                       "from": "kapa@example.com", "to": ["ops@example.com"]},
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        define(daemon, """
stream|from().measurement('mail')
  |alert().crit(lambda: "v" > 1).id('mail-alert').message('{{ .ID }} is {{ .Level }}')
    .details('<b>{{ .Level }}</b>').email('a@example.com', 'b@example.com')
  |alert().warn(lambda: "v" > 1).email()
""")
        write(daemon, "mail v=5 1\n")
        assert wait_for(lambda: len(mailbox.messages) >= 2)
    by_rcpt = {tuple(m[1]): m for m in mailbox.messages}
    sender, _rcpts, content = by_rcpt[("a@example.com", "b@example.com")]
    assert sender == "kapa@example.com"
    message = message_from_bytes(content)
    assert message["Subject"] == "mail-alert is CRITICAL"
    assert message.get_content_type() == "text/html"
    assert "<b>CRITICAL</b>" in message.get_payload(decode=True).decode()
    assert ("ops@example.com",) in by_rcpt


def test_email_addresses_rendered_from_the_alert(smtp: tuple[Mailbox, int]) -> None:
    """.toTemplates() (TICKscript) and to-field (topic handler) add rendered recipients;
    [smtp] toTemplates stand in when a handler names none."""
    mailbox, port = smtp
    config = {"smtp": {"enabled": True, "host": "127.0.0.1", "port": port,
                       "from": "kapa@example.com",
                       "toTemplates": ['{{ index .Tags "team" }}-oncall@example.com']},
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        define(daemon, """
stream|from().measurement('own').groupBy('owner', 'team')
  |alert().crit(lambda: "v" > 1).id('own-{{ index .Tags "owner" }}').topic('owners')
    .email('ops@example.com')
      .toTemplates('{{ index .Tags "owner" }}@example.com',
                   '{{ if eq .Level "CRITICAL" }}pager@example.com{{ end }}')
  |alert().warn(lambda: "v" > 1).id('team-{{ index .Tags "team" }}').email()
""")
        handler = {"id": "by-tag", "kind": "smtp",
                   "options": {"to-field": ['{{ index .Tags "owner" }}@tag.example.com']}}
        created = httpx.post(daemon.url + "/kapacitor/v1/alerts/topics/owners/handlers",
                             json=handler)
        assert created.status_code == 200, created.text
        bad = httpx.post(daemon.url + "/kapacitor/v1/alerts/topics/owners/handlers",
                         json={"id": "bad", "kind": "smtp",
                               "options": {"to-field": ["{{ .Nope"]}})
        assert bad.status_code == 400 and "to-field" in bad.json()["error"]
        write(daemon, "own,owner=alice,team=db v=5 1\n")
        assert wait_for(lambda: len(mailbox.messages) >= 3)
    recipients = sorted(tuple(m[1]) for m in mailbox.messages)
    assert recipients == [("alice@tag.example.com",),
                          ("db-oncall@example.com",),
                          ("ops@example.com", "alice@example.com", "pager@example.com")]


def test_service_tests_send_through_the_configured_handler(recorder) -> None:
    config = {"slack": [{"enabled": True, "url": recorder.url + "/hook", "channel": "#c"}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        base = daemon.url + "/kapacitor/v1/service-tests"
        listing = httpx.get(base).json()
        names = [s["name"] for s in listing["services"]]
        assert "slack" in names and "smtp" in names and "influxdb" in names
        assert names == sorted(names)
        only = httpx.get(base, params={"pattern": "sl*"}).json()["services"]
        assert [s["name"] for s in only] == ["slack"]
        options = only[0]["options"]
        assert options["message"] == "test slack message" and options["level"] == "CRITICAL"
        assert options["channel"] == "#c"  # the section's, as Kapacitor 1.5.7 offers it
        result = httpx.post(f"{base}/slack", json={"message": "hello", "channel": "#t",
                                                   "level": "WARNING"}).json()
        assert result == {"success": True, "message": ""}
        body = json.loads(recorder.requests[-1].body)
        assert body["channel"] == "#t" and body["attachments"][0]["text"] == "hello"
        assert body["attachments"][0]["color"] == "warning"
        failed = httpx.post(f"{base}/smtp", json={}).json()
        assert failed["success"] is False and "not enabled" in failed["message"]
        influx = httpx.post(f"{base}/influxdb", json={}).json()
        assert influx["success"] is False and "not enabled" in influx["message"]
        assert httpx.get(f"{base}/nope").status_code == 404
        # an unknown option is ignored, as Go decodes a JSON object into a struct
        unknown = httpx.post(f"{base}/slack", json={"colour": "red"})
        assert unknown.status_code == 200 and unknown.json()["success"] is True
        bad = httpx.post(f"{base}/slack", content=b"{")
        assert bad.status_code == 400
        # an unknown level cannot be decoded: 400, as Kapacitor 1.5.7 answers it
        bad = httpx.post(f"{base}/slack", json={"level": "LOUD"})
        assert bad.status_code == 400
        assert bad.json()["error"] == "failed to decode JSON body:unknown alert level 'LOUD'"
