"""Live logs: GET /kapacitor/v1preview/logs followed by several readers at once, with
tag filters, JSON or logfmt, a reader that never reads, disconnects, and the real
``kapacitor logs`` / ``kapacitor watch`` client against kapa-core."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import h11
import httpx
import pytest
import trio

from kapa_core.http.logs_api import LogsAPI
from kapa_core.http.router import Router
from kapa_core.http.server import HTTPServer
from kapa_core.logs import LogBroadcast, LogFollower, Logger
from kapa_core.testing import DaemonProcess, wait_until

KAPACITOR_CLIENT = "/opt/kbin/kapacitor"
LOGS = "/kapacitor/v1preview/logs"
V1 = "/kapacitor/v1"
TASK = "stream\n    |from()\n        .measurement('{m}')\n    |log(){level}\n"

# kapacitord 1.5.7's answers, taken from the real daemon.
KAPACITOR_DUPLICATE = (400, "text/plain; charset=utf-8",
                       b'{\n    "error": "query params cannot contain duplicate params"\n}')
KAPACITOR_HEAD = {"content-type": "application/logfmt", "transfer-encoding": "chunked"}
KAPACITOR_JSON_HEAD = {"content-type": "application/json", "transfer-encoding": "chunked"}
KAPACITOR_FIRST_LINE_KEYS = ["ts", "lvl", "msg", "service", "id", "content-type"]


class Follower:
    """One reader of the live log on a raw socket (h11 decodes the chunks); ``read``
    False leaves every byte unread, as a stuck client does."""

    def __init__(self, url: str, query: str = "", *, accept: str | None = None,
                 read: bool = True, receive_buffer: int | None = None) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect((host, int(port)))
        self.conn = h11.Connection(h11.CLIENT)
        headers = [("host", host)] + ([("accept", accept)] if accept else [])
        target = LOGS + (f"?{query}" if query else "")
        self.sock.sendall(self.conn.send(h11.Request(method="GET", target=target,
                                                     headers=headers)))
        self.sock.sendall(self.conn.send(h11.EndOfMessage()))
        self.response: h11.Response | None = None
        self.lines: list[str] = []
        self.ended = False  # the server ended the body properly (last chunk)
        self._partial = b""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if read:
            self.start_reading()

    def start_reading(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    return
                self.conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Response):
                self.response = event
            elif isinstance(event, h11.Data):
                text = self._partial + bytes(event.data)
                *whole, self._partial = text.split(b"\n")
                with self._lock:
                    self.lines += [line.decode() for line in whole]
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
                return
            elif isinstance(event, h11.ConnectionClosed):
                return

    def seen(self, text: str = "") -> list[str]:
        with self._lock:
            return [line for line in self.lines if text in line]

    def wait_for(self, text: str, count: int = 1, timeout: float = 15) -> list[str]:
        return wait_until(lambda: len(self.seen(text)) >= count and self.seen(text),
                          timeout, f"{count} lines with {text!r}; got {self.seen()[-5:]}")

    def headers(self) -> dict[str, str]:
        assert self.response is not None
        return {k.decode().lower(): v.decode() for k, v in self.response.headers}

    def close(self) -> None:
        with _suppress():
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._thread is not None:
            self._thread.join(5)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    # INFO: the debug lines a follower asks for must not reach the log file
    d = DaemonProcess({"logging": {"level": "INFO"}}).start()
    try:
        yield d
    finally:
        d.stop()


def define(url: str, task: str, m: str, level: str = "") -> None:
    r = httpx.post(url + V1 + "/tasks", timeout=30, json={
        "id": task, "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": TASK.format(m=m, level=level), "status": "enabled"})
    assert r.status_code == 200, r.text


def write(url: str, lines: list[str]) -> None:
    r = httpx.post(url + "/write", params={"db": "db", "rp": "rp", "precision": "s"},
                   content="\n".join(lines), timeout=30)
    assert r.status_code == 204, r.text


def logfmt_keys(line: str) -> list[str]:
    keys, i = [], 0
    while i < len(line):
        j = line.index("=", i)
        keys.append(line[i:j])
        i = j + 1
        if line[i:i + 1] == '"':
            i += 1
            while line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
        while i < len(line) and line[i] != " ":
            i += 1
        i += 1
    return keys


def test_the_stream_starts_as_kapacitors(daemon: DaemonProcess) -> None:
    plain = Follower(daemon.url)
    as_json = Follower(daemon.url, accept="application/json")
    try:
        first = plain.wait_for("created log session")[0]
        assert {k: plain.headers()[k] for k in KAPACITOR_HEAD} == KAPACITOR_HEAD
        assert plain.headers()["x-kapacitor-version"] and plain.headers()["request-id"]
        assert "content-length" not in plain.headers()
        assert plain.seen()[0] == first  # the session's own line comes first
        assert logfmt_keys(first) == KAPACITOR_FIRST_LINE_KEYS
        assert "lvl=info" in first and "service=sessions" in first
        line = json.loads(as_json.wait_for("created log session")[0])
        assert {k: as_json.headers()[k] for k in KAPACITOR_JSON_HEAD} == KAPACITOR_JSON_HEAD
        assert list(line)[:6] == KAPACITOR_FIRST_LINE_KEYS
        assert line["content-type"] == "application/json"
        # numbers stay numbers in JSON lines
        httpx.get(daemon.url + V1 + "/ping")
        access = json.loads(as_json.wait_for('"/kapacitor/v1/ping"')[0])
        assert access["status"] == 204 and access["service"] == "http"
    finally:
        plain.close()
        as_json.close()


def test_bad_queries(daemon: DaemonProcess) -> None:
    r = httpx.get(daemon.url + LOGS + "?task=a&task=b")
    assert (r.status_code, r.headers["content-type"], r.content) == KAPACITOR_DUPLICATE
    # only the preview path exists, as in Kapacitor
    assert httpx.get(daemon.url + V1 + "/logs").status_code == 404


def test_followers_with_different_filters(daemon: DaemonProcess) -> None:
    define(daemon.url, "cpu_log", "cpu")
    define(daemon.url, "mem_log", "mem")
    define(daemon.url, "debug_log", "dbg", ".level('DEBUG')")
    followers = {
        "cpu": Follower(daemon.url, "task=cpu_log"),
        "mem_node": Follower(daemon.url, "task=mem_log&node=log2"),
        "errors": Follower(daemon.url, "lvl=error"),
        "info_up_http": Follower(daemon.url, "lvl=info%2B&service=http"),
        "debug": Follower(daemon.url, "task=debug_log&lvl=debug"),
        "debug_hidden": Follower(daemon.url, "task=debug_log&lvl=info%2B"),
        "json_cpu": Follower(daemon.url, "task=cpu_log", accept="application/json"),
    }
    try:
        time.sleep(0.3)  # every follower registered before the points arrive
        write(daemon.url, ["cpu value=1 1", "mem value=2 1", "dbg value=3 1"])
        followers["cpu"].wait_for("value=1")
        followers["mem_node"].wait_for("value=2")
        followers["debug"].wait_for("value=3")
        followers["json_cpu"].wait_for('"task":"cpu_log"')
        followers["info_up_http"].wait_for("/write?db=db")
        time.sleep(0.3)
        assert all("task=cpu_log" in line for line in followers["cpu"].seen())
        assert all("task=mem_log" in line and "node=log2" in line
                   for line in followers["mem_node"].seen())
        assert all(" lvl=error " in line for line in followers["errors"].seen())
        assert all("service=http" in line and "lvl=debug" not in line
                   for line in followers["info_up_http"].seen())
        assert followers["debug_hidden"].seen() == []
        debug = followers["debug"].seen()
        assert debug and all("lvl=debug" in line for line in debug)
        assert all(json.loads(line)["task"] == "cpu_log"
                   for line in followers["json_cpu"].seen())
        # a follower gets debug lines; the log file (level INFO) does not
        assert not [line for line in daemon.lines if line.split(" ")[1:2] == ["lvl=debug"]]
    finally:
        for follower in followers.values():
            follower.close()


def test_a_follower_that_never_reads(daemon: DaemonProcess) -> None:
    define(daemon.url, "burst", "burst")
    before = len([line for line in daemon.lines if "created log session" in line])
    stuck = Follower(daemon.url, "task=burst", read=False, receive_buffer=4096)
    steady = Follower(daemon.url, "task=burst")
    try:
        daemon.wait_for_text("created log session", count=before + 2)
        batches, size = 8, 2500
        total = batches * size
        for b in range(batches):
            write(daemon.url, [f"burst,b={b} value={i} {i + 1}" for i in range(size)])
            # the daemon keeps answering while one follower is stuck
            assert httpx.get(daemon.url + V1 + "/ping", timeout=5).status_code == 204
            # the other one keeps up (waited for, so a busy test machine cannot make
            # this reader the slow one)
            steady.wait_for("msg=point", (b + 1) * size, timeout=30)
        assert not steady.seen("log lines dropped")
        # now the stuck one reads: what waited, then how many it lost
        stuck.start_reading()
        notice = stuck.wait_for("log lines dropped")[0]
        dropped = int(notice.rsplit("dropped=", 1)[1].split()[0])
        assert dropped > 0 and "lvl=warn" in notice and "service=sessions" in notice
        wait_until(lambda: len(stuck.seen("msg=point")) + dropped >= total or None, 10,
                   "every line either delivered or counted as dropped")
        assert len(stuck.seen("msg=point")) + dropped == total
    finally:
        stuck.close()
        steady.close()


def test_an_alert_nodes_handler_lines_carry_its_task_and_node(daemon: DaemonProcess) -> None:
    script = ("stream\n    |from()\n        .measurement('al')\n    |alert()\n"
              "        .crit(lambda: TRUE)\n        .post('http://127.0.0.1:1/refused')\n")
    r = httpx.post(daemon.url + V1 + "/tasks", timeout=30, json={
        "id": "alerting", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": script, "status": "enabled"})
    assert r.status_code == 200, r.text
    follower = Follower(daemon.url, "task=alerting&node=alert2&lvl=error")
    try:
        time.sleep(0.3)
        write(daemon.url, ["al value=1 1"])
        line = follower.wait_for("alert handler failed")[0]
        assert "handler=" in line and "127.0.0.1:1" in line
    finally:
        follower.close()


def test_disconnect_ends_the_session(daemon: DaemonProcess) -> None:
    define(daemon.url, "gone", "gone", ".level('DEBUG')")
    before = len([line for line in daemon.lines if "deleted log session" in line])
    created = len([line for line in daemon.lines if "created log session" in line])
    follower = Follower(daemon.url, "task=gone")
    daemon.wait_for_text("created log session", count=created + 1)
    follower.close()
    daemon.wait_for_text("deleted log session", count=before + 1)
    # the debug lines stop being produced for nobody: none reach the file either
    write(daemon.url, ["gone value=1 1"])
    httpx.get(daemon.url + V1 + "/ping")
    time.sleep(0.3)
    assert not [line for line in daemon.lines if line.split(" ")[1:2] == ["lvl=debug"]]


async def test_daemon_stop_ends_the_streams_properly() -> None:
    """The HTTP server's shutdown ends each stream with its last chunk at once."""
    router = Router()
    LogsAPI(LogBroadcast()).register(router)
    server = HTTPServer(router, host="127.0.0.1", port=0, version="1.5.7",
                        logger=Logger("http"), shutdown_timeout=30)
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(server.serve)
        url = f"http://{host}:{port}"
        follower = await trio.to_thread.run_sync(lambda: Follower(url))
        await trio.to_thread.run_sync(follower.wait_for, "created log session")
        started = trio.current_time()
        await server.shutdown()
        assert trio.current_time() - started < 5
        await trio.to_thread.run_sync(
            lambda: wait_until(lambda: follower.ended or None, 5, "the last chunk"))
        follower.close()


def test_a_full_queue_counts_and_reports_dropped_lines() -> None:
    rings: list[int] = []
    follower = LogFollower([("task", "t")], capacity=3, wake=lambda: rings.append(1))
    broadcast = LogBroadcast()
    broadcast.add(follower)
    try:
        log = Logger("task_master", task="t")
        for i in range(5):
            log.info("point", n=i)
        Logger("task_master", task="other").info("point")
        assert rings == [1]  # one wake-up until the queue is taken
        lines, dropped = follower.take()
        assert [line.rsplit("n=", 1)[1] for line in lines] == ["0", "1", "2"]
        assert dropped == 2 and follower.dropped_total == 2
        assert follower.take() == ([], 0)
        log.info("point", n=5)
        assert rings == [1, 1]
        note = broadcast.note(follower, logging.WARNING, "dropped", dropped=2)
        assert " lvl=warn msg=dropped dropped=2" in note
    finally:
        broadcast.remove(follower)
    assert broadcast not in logging.getLogger("kapa_core").handlers


def test_two_daemons_in_one_process_each_stream_their_own_lines() -> None:
    import contextvars

    from kapa_core.logs import set_owner
    first, second = object(), object()
    mine = LogFollower([("service", "two")])
    theirs = LogFollower([("service", "two")])
    broadcasts = [LogBroadcast(owner=first), LogBroadcast(owner=second)]
    broadcasts[0].add(mine)
    broadcasts[1].add(theirs)
    try:
        def log_as(owner: object, n: int) -> None:
            set_owner(owner)
            Logger("two").info("line", n=n)
        contextvars.copy_context().run(log_as, first, 1)
        contextvars.copy_context().run(log_as, second, 2)
        Logger("two").info("line", n=3)  # logged outside any daemon: for every follower
        assert [line.rsplit("n=", 1)[1] for line in mine.take()[0]] == ["1", "3"]
        assert [line.rsplit("n=", 1)[1] for line in theirs.take()[0]] == ["2", "3"]
    finally:
        broadcasts[0].remove(mine)
        broadcasts[1].remove(theirs)


# -- the real kapacitor client ------------------------------------------------------------
needs_client = pytest.mark.skipif(not os.access(KAPACITOR_CLIENT, os.X_OK),
                                  reason=f"no kapacitor 1.5.7 client at {KAPACITOR_CLIENT}")


def run_client(url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
    return subprocess.Popen([KAPACITOR_CLIENT, "-url", url, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def interrupt(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


def stopped_cleanly(code: int, err: str) -> bool:
    """Whether ``kapacitor logs``/``watch`` ended cleanly on SIGINT. Kapacitor 1.5.7's
    client closes its line channel on SIGINT while its reader may still be sending a
    line, and then panics (``client/v1/client.go:730``, in ``Logs.func1``), about one
    run in eight here, against kapa-core or anything else: that race is the client's,
    not an answer of the server's, so it counts as a clean stop."""
    return (code, err) == (0, "") or (
        code == 2 and err.startswith("panic: send on closed channel")
        and "client/v1.(*Client).Logs.func1" in err)


@needs_client
def test_kapacitor_logs_and_watch_follow_kapa_core(daemon: DaemonProcess) -> None:
    define(daemon.url, "watched", "watched")
    before = len([line for line in daemon.lines if "created log session" in line])
    logs = run_client(daemon.url, "logs", "service=http", "lvl=info+")
    watch = run_client(daemon.url, "watch", "watched", "node=log2")
    try:
        daemon.wait_for_text("created log session", count=before + 2)
        write(daemon.url, ["watched value=7 1"])
        httpx.get(daemon.url + V1 + "/ping")
        time.sleep(0.5)
    finally:
        logs_code, logs_out, logs_err = interrupt(logs)
        watch_code, watch_out, watch_err = interrupt(watch)
    assert stopped_cleanly(logs_code, logs_err), (logs_code, logs_err)
    assert "uri=/kapacitor/v1/ping" in logs_out and all(
        "service=http" in line for line in logs_out.splitlines())
    assert stopped_cleanly(watch_code, watch_err), (watch_code, watch_err)
    lines = watch_out.splitlines()
    assert lines and all("task=watched" in line and "node=log2" in line for line in lines)
    assert any("value=7" in line for line in lines)


@needs_client
def test_kapacitor_logs_errors(daemon: DaemonProcess) -> None:
    proc = run_client(daemon.url, "logs", "a=b=c")
    out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out) == (3, "")  # the client exits 3 on errors
    assert "bad keyvalue pair: 'a=b=c'" in err


# -- kapa's logs and watch ------------------------------------------------------------------
def run_kapa(url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
    return subprocess.Popen([sys.executable, "-m", "kapa_core.cli.kapa", "-url", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def test_kapa_logs_and_watch_follow_until_interrupted(daemon: DaemonProcess) -> None:
    define(daemon.url, "kapa_watched", "kapa_watched")
    before = len([line for line in daemon.lines if "created log session" in line])
    logs = run_kapa(daemon.url, "logs", "service=http", "lvl=info+")
    watch = run_kapa(daemon.url, "watch", "kapa_watched")
    try:
        daemon.wait_for_text("created log session", count=before + 2)
        write(daemon.url, ["kapa_watched value=8 1"])
        httpx.get(daemon.url + V1 + "/ping")
        time.sleep(0.5)
    finally:
        logs_code, logs_out, logs_err = interrupt(logs)
        watch.send_signal(signal.SIGTERM)  # SIGTERM ends it as quietly as Ctrl-C
        watch_out, watch_err = watch.communicate(timeout=10)
    assert stopped_cleanly(logs_code, logs_err), (logs_code, logs_err)
    assert "uri=/kapacitor/v1/ping" in logs_out and all(
        "service=http" in line for line in logs_out.splitlines())
    assert (watch.returncode, watch_err) == (0, "")
    lines = watch_out.splitlines()
    assert lines and all("task=kapa_watched" in line for line in lines)
    assert any("value=8" in line for line in lines)


KAPACITOR_REFUSED = ('failed to retrieve logs: Get "http://127.0.0.1:1/kapacitor/v1preview/'
                     'logs?a=1&lvl=info%2B": dial tcp 127.0.0.1:1: connect: connection '
                     'refused\n')


def test_kapa_logs_errors_as_kapacitor() -> None:
    proc = run_kapa("http://127.0.0.1:1", "logs", "a=1", "lvl=info+")
    assert proc.communicate(timeout=30) == ("", KAPACITOR_REFUSED)
    assert proc.returncode == 3
    # a refused status: the Go client's "bad status code"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    proc = run_kapa(f"http://127.0.0.1:{server.getsockname()[1]}", "watch", "t")
    assert proc.communicate(timeout=30) == ("", "failed to retrieve logs: bad status "
                                                "code 400\n")
    assert proc.returncode == 3
    thread.join(5)
    server.close()
