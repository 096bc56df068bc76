"""InfluxDB 2.x / Cloud through the 1.x compatibility API, as its Kapacitor guide sets it
up: an API token as the password (or as `token`), subscriptions disabled, batch queries on
/query and influxDBOut on /write.

No InfluxDB 2.x can be installed here, so a local server stands in for it: it answers the
compatibility endpoints only for the token, the way 2.x does (HTTP Basic with any user name
and the token as password, or ``Authorization: Token <token>``), and records requests.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from kapa_core.testing import DaemonProcess, ServedHTTP, wait_until
from tests.integration.test_alerts import wait_for

pytestmark = pytest.mark.integration
TOKEN = "v2-api-token=="


class Compat2x(ServedHTTP):
    """/ping, /query and /write of InfluxDB 2.x's 1.x compatibility API."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.written: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if header == f"Token {TOKEN}":
                    return True
                if header.startswith("Basic "):
                    _, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    return password == TOKEN
                return False

            def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
                self.send_response(status)
                self.send_header("X-Influxdb-Version", "v2.7.4")
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else b""
                params.update({k: v[-1] for k, v in parse_qs(body.decode(errors="replace"))
                               .items()} if url.path == "/query" else {})
                server.requests.append({"path": url.path, "params": params,
                                        "auth": self.headers.get("Authorization", ""),
                                        "encoding": self.headers.get("Content-Encoding")})
                if url.path == "/ping":
                    return self._answer(204)
                if not self._authorized():
                    return self._answer(401, b'{"code":"unauthorized","message":'
                                             b'"unauthorized access"}',
                                        Content_Type="application/json")
                if url.path == "/query":
                    result = {"results": [{"statement_id": 0, "series": [{
                        "name": "requests", "columns": ["time", "error_percent"],
                        "values": [[1_700_000_000_000_000_000, 0.25]]}]}]}
                    return self._answer(200, json.dumps(result).encode(),
                                        Content_Type="application/json")
                if url.path == "/write":
                    data = gzip.decompress(body) if self.headers.get(
                        "Content-Encoding") == "gzip" else body
                    server.written.extend(data.decode().splitlines())
                    return self._answer(204)
                return self._answer(404)

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def influx2() -> Iterator[Compat2x]:
    with Compat2x() as server:
        yield server


@pytest.mark.parametrize("credentials", [
    {"username": "influxdb-username", "password": TOKEN},
    {"token": TOKEN},
])
def test_the_2x_guide_batch_task_and_write_back(influx2, credentials) -> None:
    config = {"influxdb": [{"enabled": True, "name": "cloud", "default": True,
                            "urls": [influx2.url], "disable-subscriptions": True,
                            **credentials}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        # The guide's TICKscript, with the schedule a batch query needs.
        response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
            "id": "errors", "type": "batch", "status": "enabled",
            "dbrps": [{"db": "my-db", "rp": "my-rp"}],
            "script": """
batch
  |query('SELECT errors / total AS error_percent from requests')
    .period(1m)
    .every(500ms)
  |influxDBOut()
    .database('my-db')
    .retentionPolicy('my-rp')
    .measurement('errors')
    .tag('kapacitor', 'true')
    .tag('version', '0.2')
    .flushInterval(100ms)
"""})
        assert response.status_code == 200, response.text
        assert wait_for(lambda: influx2.written, timeout=20), daemon.log()[-2000:]
    assert influx2.written[0] == ("errors,kapacitor=true,version=0.2 error_percent=0.25 "
                                  "1700000000000000000")
    query = next(r for r in influx2.requests if r["path"] == "/query")
    assert query["params"]["db"] == "my-db" and query["params"]["rp"] == "my-rp"
    assert "from requests WHERE time >= " in query["params"]["q"]
    write = next(r for r in influx2.requests if r["path"] == "/write")
    assert write["params"]["db"] == "my-db" and write["params"]["rp"] == "my-rp"
    assert write["encoding"] == "gzip"
    expected = (f"Token {TOKEN}" if "token" in credentials else "Basic " + base64.b64encode(
        f"influxdb-username:{TOKEN}".encode()).decode())
    assert {r["auth"] for r in influx2.requests if r["path"] != "/ping"} == {expected}


def test_a_wrong_token_is_reported(influx2) -> None:
    config = {"influxdb": [{"enabled": True, "urls": [influx2.url], "password": "wrong",
                            "username": "u", "disable-subscriptions": True}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
            "id": "q", "type": "batch", "status": "enabled",
            "dbrps": [{"db": "my-db", "rp": "my-rp"}],
            "script": "batch|query('SELECT v FROM m').period(1m).every(300ms)|httpOut('o')"})
        daemon.wait_for_log(r"(?i)unauthori[sz]ed|authori[sz]ation failed")
        wait_until(lambda: httpx.get(daemon.url + "/kapacitor/v1/tasks/q").json()["stats"][
            "node-stats"]["query1"], what="query_errors >= 1",
            until=lambda stats: stats["query_errors"] >= 1)
