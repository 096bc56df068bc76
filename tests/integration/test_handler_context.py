"""The one handler contract, through the real daemon: a handler is made again exactly when
its own section is overridden (its config or its running service changed), never because
another section was, and handlers' HTTP requests share a kept-alive connection without a
cookie jar."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, ServedHTTP, wait_until
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"


@pytest.fixture
def recorder() -> Iterator[HTTPRecorder]:
    with HTTPRecorder(status=200) as r:
        yield r


def made(daemon: DaemonProcess, kind: str) -> int:
    """How many times the daemon made a handler of ``kind``."""
    return sum('msg="alert handler made"' in line and f" kind={kind} " in line
               for line in daemon.log().splitlines())


def override(daemon: DaemonProcess, path: str, values: dict[str, Any]) -> None:
    response = httpx.post(f"{daemon.url}{API}/config/{path}", json={"set": values})
    assert response.status_code == 204, response.text


def test_override_remakes_only_the_handlers_of_that_section(recorder) -> None:
    config = {"slack": [{"enabled": True, "workspace": "team", "default": True,
                         "url": recorder.url + "/slack", "channel": "#one"}],
              "alerta": {"enabled": True, "url": recorder.url + "/alerta",
                         "token": "tkn", "environment": "prod"},
              "httppost": [{"endpoint": "hook", "url": recorder.url + "/post"}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as daemon:
        define(daemon, """
stream|from().measurement('cpu')
  |alert().crit(lambda: "v" > 1).id('cpu').slack().alerta().post().endpoint('hook')
""")
        write(daemon, "cpu v=5 1\ncpu v=6 2\n")
        recorder.wait_for(6)
        # made once each, on first use; a second event uses the same handlers
        assert [made(daemon, k) for k in ("slack", "alerta", "post")] == [1, 1, 1]

        # [slack] has no service: its new config alone makes its handler again; the
        # other sections' config objects are rebuilt equal, their handlers stay.
        override(daemon, "slack/team", {"channel": "#two"})
        write(daemon, "cpu v=7 3\n")
        requests = recorder.wait_for(9)
        assert [made(daemon, k) for k in ("slack", "alerta", "post")] == [2, 1, 1]
        slack = [r.json()["channel"] for r in requests if r.route == "/slack"]
        assert slack == ["#one", "#one", "#two"]

        # [alerta] has a service: the override re-opens it and its handler is made
        # again with the new config and the new service; slack's and post's are not.
        override(daemon, "alerta/", {"environment": "staging"})
        write(daemon, "cpu v=8 4\n")
        requests = recorder.wait_for(12)
        assert [made(daemon, k) for k in ("slack", "alerta", "post")] == [2, 2, 1]
        alerta = [r.json()["environment"] for r in requests if r.route == "/alerta/alert"]
        assert alerta == ["prod", "prod", "prod", "staging"]

        # an override of a section no handler here uses changes nothing
        override(daemon, "pushover/", {"token": "x"})
        write(daemon, "cpu v=9 5\n")
        recorder.wait_for(15)
        assert [made(daemon, k) for k in ("slack", "alerta", "post")] == [2, 2, 1]


class KeepAliveServer(ServedHTTP):
    """HTTP/1.1 with keep-alive: answers 200 with a cookie and records, per request, the
    client's (host, port) and the Cookie header it sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[str, int], str | None]] = []
        lock = threading.Lock()
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    seen.append((self.client_address, self.headers.get("Cookie")))
                self.send_response(200)
                self.send_header("Set-Cookie", "session=abc; Path=/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)


def test_handler_requests_share_one_kept_alive_connection_and_no_cookies() -> None:
    with KeepAliveServer() as server, DaemonProcess({"http": {"log-enabled": False}}) as d:
        define(d, f"""
stream|from().measurement('m')
  |alert().crit(lambda: TRUE).id('m').post('{server.url}/a')
""")
        write(d, "\n".join(f"m v={i} {i + 1}" for i in range(20)))
        wait_until(lambda: len(server.seen) >= 20, what="20 posts")
    assert len({address for address, _ in server.seen}) == 1
    assert {cookie for _, cookie in server.seen} == {None}
