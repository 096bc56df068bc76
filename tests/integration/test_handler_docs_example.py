"""The handler plugin printed in docs/plugins.md runs as written: installed as a package
(a module and its entry point), it adds the [webhook] section and the ``webhook`` kind,
used from TICKscript and as a topic handler, through the real daemon."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def docs_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (code,) = [b for b in blocks if "class WebhookHandler" in b]
    return code


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "kapa_webhook.py").write_text(docs_example(), encoding="utf-8")
    dist = tmp_path / "kapa_webhook-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kapa-webhook\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text("[kapa_core.plugins]\nwebhook = kapa_webhook\n")
    return tmp_path


def test_docs_handler_example_runs(site: Path) -> None:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    with HTTPRecorder(status=200) as recorder:
        config = {"webhook": {"enabled": True, "url": recorder.url + "/hook",
                              "token": "tkn"}, "http": {"log-enabled": False}}
        with DaemonProcess(config, env={"PYTHONPATH": path}) as daemon:
            created = httpx.post(daemon.url + "/kapacitor/v1/alerts/topics/ops/handlers",
                                 json={"id": "w", "kind": "webhook",
                                       "options": {"channel": "#topic"}})
            assert created.status_code == 200, created.text
            define(daemon, """
stream|from().measurement('cpu')
  |alert().crit(lambda: "v" > 1).message('cpu {{ .Level }}').webhook().channel('#ops')
  |alert().warn(lambda: "v" > 1).message('topic {{ .Level }}').topic('ops')
""")
            write(daemon, "cpu v=5 1\n")
            requests = recorder.wait_for(2)
    bodies = sorted((r.json() for r in requests), key=lambda b: b["channel"])
    hostname = bodies[0]["from"]
    assert hostname
    assert bodies == [{"channel": "#ops", "level": "CRITICAL", "text": "cpu CRITICAL",
                       "from": hostname},
                      {"channel": "#topic", "level": "WARNING", "text": "topic WARNING",
                       "from": hostname}]
    assert {r.headers["authorization"] for r in requests} == {"Bearer tkn"}
    assert {r.route for r in requests} == {"/hook"}
