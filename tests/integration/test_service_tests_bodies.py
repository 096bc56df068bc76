"""The bodies ``POST /kapacitor/v1/service-tests/<name>`` takes, answered as Kapacitor
1.5.7 answers them, and Kapacitor's own ``kapacitor service-tests`` client against
kapa-core.

Kapacitor decodes the body into the service's test options with Go's JSON decoder: a
``null`` body (what the ``kapacitor service-tests`` client sends) leaves the defaults,
unknown keys are ignored, an empty body or a value of the wrong kind is a 400.

``service_tests_bodies_kapacitor.json`` holds Kapacitor 1.5.7's answers, taken with::

    python -m tests.integration.test_service_tests_bodies --kapacitord BIN

and never edited by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from tests.compat.scenarios_handlers import BASE, ServiceRecorder

pytestmark = pytest.mark.integration

EXPECTED = Path(__file__).with_name("service_tests_bodies_kapacitor.json")
KAPACITOR_CLIENT = "/opt/kbin/kapacitor"

#: raw request bodies posted to every service below
BODIES: tuple[bytes, ...] = (b"null", b"", b"{}", b'{"bad": 1}', b"[]", b'"x"', b"1",
                             b'{"message": 1}', b"{", b"null trailing", b"{x}", b"@",
                             b'{"a" 1}', b' \n{"MESSAGE": "upper"}')

#: the services tried, each with a section config ({u}: the recorder's URL) or none
SERVICES = ("slack", "smtp", "influxdb", "alerta", "pagerduty2", "httppost", "kafka")

#: what ``kapacitor service-tests`` is given: names and a glob
CLIENT_ARGS = ("slack", "pagerduty*", "kafka")


#: Where kapa-core's test reports a failure in other words than Kapacitor: (service,
#: Kapacitor's message) -> kapa-core's. The answers are otherwise the same.
OTHER_WORDS = {
    ("influxdb", 'cluster "" is not enabled or does not exist'):
        "InfluxDB cluster '(default)' is not enabled or not set up",
    # Kapacitor's test options default to cluster "example" and url localhost:3000
    ("kafka", 'unknown cluster "example"'):
        "kafka: no cluster given (use .cluster('id') or the cluster option)",
    ("httppost", 'failed to POST alert data: Post "http://localhost:3000/": dial tcp '
                 '127.0.0.1:3000: connect: connection refused'):
        "An appropriately formatted url must be specified if an endpoint is not specified",
}


#: (service, body) kapa-core answers otherwise: its generic handler tests take any JSON
#: value for ``message`` (as text), where Kapacitor's kafka test wants a string.
UNCHECKED = {("kafka", '{"message": 1}')}


def in_our_words(name: str, answer: list[Any]) -> list[Any]:
    body, status, result, paths = answer
    if isinstance(result, dict) and (name, result.get("message")) in OTHER_WORDS:
        result = {**result, "message": OTHER_WORDS[name, result["message"]]}
    return [body, status, result, paths]


def config(url: str, enabled: bool) -> dict[str, Any]:
    if not enabled:
        return {}
    return {"slack": {"enabled": True, "url": url + "/slack", "channel": "#c"},
            "alerta": {"enabled": True, "url": url + "/alerta", "token": "tok",
                       "environment": "prod", "origin": "kapa"},
            "pagerduty2": {"enabled": True, "url": url + "/pd2", "routing-key": "rk"},
            "httppost": [{"endpoint": "ep", "url": url + "/post"}]}


def answers(url: str, recorder: ServiceRecorder) -> dict[str, Any]:
    """For each service and body: status, answer, paths the recorder was sent."""
    def answer(response: httpx.Response) -> Any:
        try:
            return json.loads(response.text.replace(recorder.http_url, "<recorder>"))
        except ValueError:
            return response.text
    out: dict[str, Any] = {}
    for name in SERVICES:
        got = []
        for body in BODIES:
            recorder.reset(default_status=201 if name == "alerta"
                           else 202 if name == "pagerduty2" else 200)
            response = httpx.post(f"{url}/kapacitor/v1/service-tests/{name}",
                                  content=body, timeout=30,
                                  headers={"Content-Type": "application/json"})
            got.append([body.decode(), response.status_code, answer(response),
                        [r["path"] for r in recorder.snapshot()]])
        out[name] = got
    return out


@pytest.fixture(scope="module")
def recorder():
    recorder = ServiceRecorder()
    yield recorder
    recorder.close()


@pytest.mark.parametrize("enabled", [False, True], ids=["disabled", "enabled"])
def test_bodies_answered_as_kapacitor_answers_them(enabled: bool,
                                                   recorder: ServiceRecorder) -> None:
    want = json.loads(EXPECTED.read_text(encoding="utf-8"))[
        "enabled" if enabled else "disabled"]
    with DaemonProcess({**BASE, **config(recorder.http_url, enabled)}) as daemon:
        got = answers(daemon.url, recorder)
    assert {name: [a for a, b in zip(got[name], want[name], strict=True)
                   if a != in_our_words(name, b) and (name, a[0]) not in UNCHECKED]
            for name in SERVICES} == {name: [] for name in SERVICES}


def test_null_body_runs_the_test_with_its_default_options(recorder) -> None:
    """What the ``kapacitor service-tests`` client sends: the default options."""
    with DaemonProcess({**BASE, **config(recorder.http_url, True)}) as daemon:
        recorder.reset()
        response = httpx.post(daemon.url + "/kapacitor/v1/service-tests/slack",
                              content=b"null")
        assert (response.status_code, response.json()) == (
            200, {"success": True, "message": ""})
        (sent,) = recorder.snapshot()
    assert sent["path"] == "/slack"
    assert json.loads(sent["body"])["attachments"][0]["text"] == "test slack message"


def client_output(url: str, *args: str) -> str:
    done = subprocess.run([KAPACITOR_CLIENT, "-url", url, "service-tests", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_kapacitor_client_lists_and_runs_service_tests(recorder) -> None:
    if not (os.access(KAPACITOR_CLIENT, os.X_OK) or shutil.which("kapacitor")):
        pytest.skip(f"no kapacitor client ({KAPACITOR_CLIENT} not found)")
    want = json.loads(EXPECTED.read_text(encoding="utf-8"))["client"]
    with DaemonProcess({**BASE, **config(recorder.http_url, True)}) as daemon:
        recorder.reset()
        got = client_output(daemon.url, *CLIENT_ARGS)
        every = client_output(daemon.url, "*")
        names = [t["name"] for t in httpx.get(
            daemon.url + "/kapacitor/v1/service-tests").json()["services"]]
    rows = []
    for line in want.splitlines():
        name, success, message = line[:20].strip(), line[20:30].strip(), line[30:]
        message = OTHER_WORDS.get((name, message), message)
        rows.append(f"{name:<20}{success:<10}{message}")
    assert got.splitlines() == rows
    assert [line.split()[0] for line in every.splitlines()[1:]] == names


def main(argv: list[str]) -> int:
    """Take Kapacitor 1.5.7's answers from a kapacitord binary."""
    from tests.compat.oracle import Kapacitor
    from tests.compat.scenarios_handlers import toml_sections

    if len(argv) != 2 or argv[0] != "--kapacitord":
        print("usage: python -m tests.integration.test_service_tests_bodies "
              "--kapacitord BIN", file=sys.stderr)
        return 2
    recorder = ServiceRecorder()
    data: dict[str, Any] = {
        "about": "Kapacitor 1.5.7's answers for test_service_tests_bodies.py (taken by "
                 "its main(); not edited by hand)"}
    try:
        for enabled in (False, True):
            server = Kapacitor(argv[1], extra_conf=toml_sections(
                config(recorder.http_url, enabled)))
            try:
                data["enabled" if enabled else "disabled"] = answers(server.url, recorder)
                if enabled:
                    recorder.reset()
                    data["client"] = client_output(server.url, *CLIENT_ARGS)
            finally:
                server.close()
    finally:
        recorder.close()
    EXPECTED.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
