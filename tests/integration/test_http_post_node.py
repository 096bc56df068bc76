"""The httpPost node with a configured [[httppost]] endpoint: its URL template, row
template, headers and basic auth, as Kapacitor 1.5.7 posts them."""

from __future__ import annotations

import base64

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder

pytestmark = pytest.mark.integration

V1 = "/kapacitor/v1"


def _task(daemon: DaemonProcess, task_id: str, script: str) -> None:
    r = httpx.post(daemon.url + V1 + "/tasks", json={
        "id": task_id, "dbrps": [{"db": "db", "rp": "rp"}], "status": "enabled",
        "script": script})
    assert r.status_code == 200, r.text


def _write(daemon: DaemonProcess, lines: str) -> None:
    r = httpx.post(daemon.url + "/write?db=db&rp=rp&precision=s", content=lines.encode())
    assert r.status_code == 204, r.text


def test_endpoint_url_and_row_templates_headers_and_auth() -> None:
    # The URL template reads the tag as ``.Tags.host``: Kapacitor 1.5.7 refuses to start
    # with ``{{index .Tags "host"}}`` (it executes the template on empty data to check it).
    with HTTPRecorder(status=200) as target:
        config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
                  "httppost": [
                      {"endpoint": "rows", "url": target.url + "/{{.Name}}/{{.Tags.host}}",
                       "headers": {"X-From": "endpoint", "X-Both": "endpoint"},
                       "basic-auth": {"username": "u", "password": "p"},
                       "row-template": "{{.Name}}:{{range .Values}}{{.value}}@{{.time.Unix}} "
                                       "{{end}}"},
                      {"endpoint": "plain", "url": target.url + "/plain"}]}
        with DaemonProcess(config) as daemon:
            _task(daemon, "rows", """
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |window()
        .period(10s)
        .every(10s)
    |httpPost()
        .endpoint('rows')
        .header('X-Both', 'node')
""")
            _task(daemon, "plain", "stream|from().measurement('mem')"
                                   "|httpPost().endpoint('plain')")
            _write(daemon, "cpu,host=a value=1 0\ncpu,host=a value=2.5 3\ncpu,host=a value=3 12\n"
                           "mem value=7i 0\n")
            wait_until(lambda: len(target.requests) == 2, what="two posts")
        by_path = {r.path: r for r in target.requests}
        rows = by_path["/cpu/a"]
        # A row template writes the body: no JSON content type; endpoint headers, then the
        # node's; the endpoint's basic auth.
        assert rows.body == b"cpu:1@0 2.5@3 "
        assert "content-type" not in rows.headers
        assert rows.headers["x-from"] == "endpoint"
        assert rows.headers["x-both"] == "node"
        assert rows.headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
        plain = by_path["/plain"]
        assert plain.headers["content-type"] == "application/json"
        assert plain.body == (b'{"series":[{"name":"mem","columns":["time","value"],'
                              b'"values":[["1970-01-01T00:00:00Z",7]]}]}\n')
