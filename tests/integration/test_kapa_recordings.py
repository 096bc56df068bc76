"""``kapa record|replay|replay-live|backup|list|delete recordings|replays`` against a
kapa-core daemon, compared with what the real ``kapacitor`` 1.5.7 client printed
against kapacitord for the same sequence (tests/integration/kapa_recordings_expected.json;
ids, dates and sizes normalised).

Re-record the expected answers (needs /opt/kbin/kapacitor and /opt/kbin/kapacitord)::

    .venv/bin/python -m tests.integration.test_kapa_recordings --record
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.cli.kapa.main import run as kapa_run
from kapa_core.testing import DaemonProcess, wait_until

EXPECTED = Path(__file__).with_name("kapa_recordings_expected.json")
KAPACITOR_CLIENT = "/opt/kbin/kapacitor"
KAPACITORD = "/opt/kbin/kapacitord"
KAPA = [sys.executable, "-m", "kapa_core.cli.kapa"]
V1 = "/kapacitor/v1"
NO_SERVER = "http://127.0.0.1:1"
TASK = "rec_task"
SCRIPT = ("stream\n    |from()\n        .measurement('cpu')\n    |window()\n"
          "        .period(10s)\n        .every(10s)\n    |count('value')\n")

#: Argument checks and usage texts: no server needed (run in-process for kapa).
OFFLINE: list[list[str]] = [
    ["record"], ["record", "x"], ["record", "stream"], ["record", "stream", "-task", "x"],
    ["record", "stream", "-task", "x", "-duration", "1x"],
    ["record", "stream", "-bogus"], ["record", "stream", "-h"],
    ["record", "batch", "-task", "x"],
    ["record", "batch", "-task", "x", "-start", "2015-09-01"],
    ["record", "batch", "-task", "x", "-start", "2015-13-01T00:00:00Z"],
    ["record", "batch", "-task", "x", "-start", "2015-09-01T00:00:00Zjunk"],
    ["record", "batch", "-task", "x", "-past", "1h", "-start", "2015-09-01T00:00:00Z"],
    ["record", "query", "-query", "x"],
    ["replay"], ["replay", "-recording", "r"], ["replay-live"], ["replay-live", "x"],
    ["replay-live", "batch", "-task", "x"], ["replay-live", "query", "-task", "x"],
    ["backup"], ["help", "record"], ["help", "replay"], ["help", "replay-live"],
    ["help", "backup"], ["help", "watch"], ["help", "logs"], ["watch"],
    ["logs", "a=b=c"], ["delete", "recordings"], ["list", "recordings"],
    ["record", "stream", "-task", "x", "-duration", "1s"],
]

#: (name, arguments, what runs meanwhile) against a server, in this order.
STEPS: list[tuple[str, list[str], str]] = [
    ("record stream", ["record", "stream", "-task", TASK, "-duration", "500ms",
                       "-recording-id", "rs1"], "write"),
    ("record stream no-wait", ["record", "stream", "-task", TASK, "-duration", "500ms",
                               "-no-wait", "-recording-id", "rs2"], "write-until:rs2"),
    ("record existing id", ["record", "stream", "-task", TASK, "-duration", "500ms",
                            "-recording-id", "rs1"], ""),
    ("record unknown task", ["record", "stream", "-task", "nope", "-duration", "1s"], ""),
    ("record batch of a stream task", ["record", "batch", "-task", TASK, "-past", "1h"], ""),
    ("record query without InfluxDB", ["record", "query", "-query",
                                       "select value from db.rp.cpu", "-type", "stream"], ""),
    ("list recordings", ["list", "recordings"], ""),
    ("list recordings by pattern", ["list", "recordings", "rs*", "nope"], ""),
    ("replay", ["replay", "-task", TASK, "-recording", "rs1", "-replay-id", "rp1"], ""),
    ("replay at recording time", ["replay", "-task", TASK, "-recording", "rs1",
                                  "-replay-id", "rp2", "-rec-time"], ""),
    ("replay no-wait", ["replay", "-task", TASK, "-recording", "rs1", "-replay-id", "rp3",
                        "-no-wait"], "replay-done:rp3"),
    ("replay unknown recording", ["replay", "-task", TASK, "-recording", "nope"], ""),
    ("replay unknown task", ["replay", "-task", "nope", "-recording", "rs1"], ""),
    ("replay-live query without InfluxDB", ["replay-live", "query", "-task", TASK,
                                            "-query", "select value from db.rp.cpu"], ""),
    ("list replays", ["list", "replays"], ""),
    ("delete replays", ["delete", "replays", "rp1", "rp*"], ""),
    ("delete recordings", ["delete", "recordings", "rs2", "nope"], ""),
    ("list recordings after delete", ["list", "recordings"], ""),
    ("list replays after delete", ["list", "replays", "rp*"], ""),
    ("backup", ["backup", "kapacitor.db"], ""),
    ("backup into a missing directory", ["backup", "missing/kapacitor.db"], ""),
]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SIZE = re.compile(r"(?<= )\d+(?:\.\d)? [kMGTPE]?B +(?=\d\d [A-Z][a-z]{2} \d\d )")
_DATE = re.compile(r"\d\d [A-Z][a-z]{2} \d\d \d\d:\d\d [A-Z]+ *$", re.MULTILINE)


def normalise(text: str, workdir: str = "") -> str:
    """Volatile parts out: ids, sizes (compression differs), dates, the work folder."""
    if workdir:
        text = text.replace(workdir, "<dir>")
    text = _UUID.sub("<uuid>", text)
    text = _SIZE.sub(lambda m: "<size>".ljust(len(m.group(0))), text)
    text = _DATE.sub(lambda m: "<date>".ljust(len(m.group(0))), text)
    lines = text.split("\n")
    if lines and lines[0].startswith("ID "):  # rows of equal dates come in either order
        lines = [lines[0], *sorted(line for line in lines[1:] if line), ""]
    return "\n".join(lines)


class Writer:
    """Writes a ``cpu`` point with the current time every 100 ms (a stream recording
    ends at the first point after its stop time)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        with httpx.Client(timeout=10) as c:
            while not self.stop.is_set():
                n += 1
                c.post(self.url + "/write", params={"db": "db", "rp": "rp", "precision": "ms"},
                       content=f"cpu value={n} {time.time_ns() // 1_000_000}")
                self.stop.wait(0.1)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def setup_task(url: str) -> None:
    r = httpx.post(url + V1 + "/tasks", timeout=30, json={
        "id": TASK, "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": SCRIPT, "status": "enabled"})
    assert r.status_code == 200, r.text


def _status(url: str, kind: str, item: str) -> Any:
    r = httpx.get(f"{url}{V1}/{kind}/{item}", timeout=10)
    return r.json().get("status")


def run_steps(client: Sequence[str] | None, url: str, workdir: str) -> list[dict[str, Any]]:
    """The sequence with ``client`` (a command line: the kapacitor binary, ``KAPA``) or,
    with None, kapa run in this process, against ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
    results = []
    for name, args, meanwhile in STEPS:
        with contextlib.ExitStack() as stack:
            if meanwhile.startswith("write"):
                stack.enter_context(Writer(url))
            if client is None:
                with contextlib.chdir(workdir):
                    code, out, err = kapa_in_process(args, url)
                proc = subprocess.CompletedProcess(args, code, out, err)
            else:
                proc = subprocess.run([*client, "-url", url, *args], cwd=workdir, env=env,
                                      capture_output=True, text=True, timeout=60)
            if meanwhile.startswith("write-until:"):
                recording = meanwhile.split(":", 1)[1]
                wait_until(lambda: _status(url, "recordings", recording) != "running"
                           or None, 20, f"recording {recording} finished")
        if meanwhile.startswith("replay-done:"):
            replay = meanwhile.split(":", 1)[1]
            wait_until(lambda: _status(url, "replays", replay) != "running" or None, 20)
        results.append({"step": name, "args": args, "code": proc.returncode,
                        "stdout": normalise(proc.stdout, workdir),
                        "stderr": normalise(proc.stderr, workdir)})
    return results


def run_offline_kapacitor() -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
    out = []
    for args in OFFLINE:
        proc = subprocess.run([KAPACITOR_CLIENT, "-url", NO_SERVER, *args], env=env,
                              capture_output=True, text=True, timeout=30)
        out.append({"args": args, "code": proc.returncode, "stdout": proc.stdout,
                    "stderr": proc.stderr})
    return out


def kapa_in_process(args: list[str], url: str = NO_SERVER) -> tuple[int, str, str]:
    """``kapa -url URL args...`` run by this process: its exit code, stdout, stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = kapa_run(["-url", url, *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, stdout.getvalue(), stderr.getvalue()


def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXPECTED.read_text(encoding="utf-8"))
    return data


# -- the tests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    d = DaemonProcess({"logging": {"level": "INFO"}}).start()
    try:
        setup_task(d.url)
        yield d
    finally:
        d.stop()


@pytest.mark.parametrize("case", expected()["offline"], ids=lambda c: " ".join(c["args"]))
def test_usage_and_argument_errors_as_kapacitor(case: dict[str, Any]) -> None:
    code, out, err = kapa_in_process(case["args"])
    assert (code, out, err) == (case["code"], case["stdout"], case["stderr"])


def test_the_sequence_prints_what_kapacitor_prints(daemon: DaemonProcess,
                                                    tmp_path: Path) -> None:
    # kapa's code run in this process (a process per step is slow on a busy machine);
    # the tests below run it as the `kapa` program.
    got = run_steps(None, daemon.url, str(tmp_path))
    want = expected()["steps"]
    assert [g["step"] for g in got] == [w["step"] for w in want]
    for g, w in zip(got, want):
        assert (g["code"], g["stdout"], g["stderr"]) == (w["code"], w["stdout"],
                                                         w["stderr"]), g["step"]
    backup = tmp_path / "kapacitor.db"
    assert backup.stat().st_size > 0 and backup.read_bytes()[:16] == b"SQLite format 3\0"


def read_pty(master: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def run_on_terminal(args: list[str], cwd: str) -> tuple[int, str, str]:
    """``kapa`` with stdout on a pseudo-terminal and stderr on a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*KAPA, *args], stdout=slave, stderr=subprocess.PIPE, cwd=cwd)
    os.close(slave)
    try:
        out = read_pty(master, proc)
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, out.decode(), err.decode()


def test_progress_bars_on_a_terminal(daemon: DaemonProcess, tmp_path: Path) -> None:
    with Writer(daemon.url):
        code, out, err = run_on_terminal(
            ["-url", daemon.url, "record", "stream", "-task", TASK, "-duration", "500ms",
             "-recording-id", "rs_tty"], str(tmp_path))
    assert (code, out.replace("\r\n", "\n")) == (0, "rs_tty\n")
    frames = err.rstrip("\n").split("\r")
    assert frames[0] == "" and err.endswith("\n"), err
    assert frames[1].startswith("recording rs_tty [....") and frames[1].endswith("%"), err
    assert frames[-1].strip() == "recording rs_tty [" + "#" * 30 + "] 100%", err
    code, out, err = run_on_terminal(["-url", daemon.url, "replay", "-task", TASK,
                                      "-recording", "rs_tty", "-replay-id", "rp_tty"],
                                     str(tmp_path))
    assert (code, out.replace("\r\n", "\n")) == (0, "rp_tty\n")
    assert "replay rp_tty [" + "#" * 30 + "] 100%" in err and err.endswith("\n"), err
    code, out, err = run_on_terminal(["-url", daemon.url, "backup", "b.db"], str(tmp_path))
    size = (tmp_path / "b.db").stat().st_size
    assert (code, out) == (0, "")
    assert err.startswith("\rbackup b.db [") and err.endswith("\n"), err
    assert f"] 100% {_human(size)} of {_human(size)}" in err, err


def _human(size: int) -> str:
    from kapa_core.cli.kapa.output import humanize_bytes
    return humanize_bytes(size)


def test_no_progress_bar_when_stdout_is_not_a_terminal(daemon: DaemonProcess,
                                                       tmp_path: Path) -> None:
    proc = subprocess.run([*KAPA, "-url", daemon.url, "backup", "c.db"], cwd=tmp_path,
                          capture_output=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_backup_shorter_than_announced_fails(tmp_path: Path) -> None:
    """A body cut before its Content-Length is Go's size check failing."""
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 40)
        conn.close()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    proc = subprocess.run([*KAPA, "-url", f"http://127.0.0.1:{port}", "backup", "d.db"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    thread.join(5)
    server.close()
    assert (proc.returncode, proc.stdout) == (3, "")
    assert proc.stderr == "failed to save backup: unexpected EOF\n"


needs_client = pytest.mark.skipif(not os.access(KAPACITOR_CLIENT, os.X_OK),
                                  reason=f"no kapacitor 1.5.7 client at {KAPACITOR_CLIENT}")


@needs_client
def test_the_kapacitor_client_gets_the_same_from_kapa_core(daemon: DaemonProcess) -> None:
    """The real client runs the sequence against kapa-core (a second task and ids)."""
    with tempfile.TemporaryDirectory() as workdir:
        # a fresh state for the sequence: what the first run left is deleted
        for kind in ("replays", "recordings"):
            for item in httpx.get(f"{daemon.url}{V1}/{kind}").json()[kind]:
                httpx.delete(f"{daemon.url}{V1}/{kind}/{item['id']}")
        got = run_steps([KAPACITOR_CLIENT], daemon.url, workdir)
    for g, w in zip(got, expected()["steps"]):
        assert (g["code"], g["stdout"], g["stderr"]) == (w["code"], w["stdout"],
                                                         w["stderr"]), g["step"]


# -- recording the expected answers ------------------------------------------------------------
def record() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.compat.oracle import Kapacitor
    kapacitord = Kapacitor(KAPACITORD)
    try:
        setup_task(kapacitord.url)
        with tempfile.TemporaryDirectory() as workdir:
            steps = run_steps([KAPACITOR_CLIENT], kapacitord.url, workdir)
    finally:
        kapacitord.close()
    data = {"about": "kapacitor 1.5.7 client against kapacitord 1.5.7 (see "
                     "test_kapa_recordings.py); ids, sizes and dates normalised",
            "offline": run_offline_kapacitor(), "steps": steps}
    EXPECTED.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    print(f"wrote {EXPECTED}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
    else:
        print(__doc__)
