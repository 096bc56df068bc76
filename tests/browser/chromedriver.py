"""The chromedriver process and the Chromium it starts: launch on a free port, and a
cleanup that leaves no process behind, whatever state the browser is in.

Everything the pair writes lives under one fresh temporary directory: the profile
(``--user-data-dir``) and a ``HOME`` of their own, which is where Chromium's crash
handler keeps its database (``~/.config/chromium/Crash Reports``) and where NSS and dconf
would otherwise write into the developer's home.

Why the cleanup is more than ending chromedriver: chromedriver does not stop Chromium
when it is terminated (the browser outlives it, reparented to init), and Chromium's crash
handlers (``chrome_crashpad_handler``) detach into sessions of their own. So chromedriver
starts in a new session whose process group Chromium and its helpers inherit, the group
is signalled as a whole, and any process still naming the temporary directory on its
command line (the crash handlers: ``--database=<HOME>/...``) is ended too. A watchdog
process does the same if the test process dies without cleaning up (killed by a CI
timeout, say), so that no Chromium outlives the run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")


# Waits for its standard input to end, which happens when the process that started it
# dies, however it dies (even SIGKILL, when no atexit or finally runs), and then ends
# chromedriver's process group and removes the temporary directory. A clean stop ends
# the watchdog first. (/bin/sh is dash here, whose kill takes no "--".)
_WATCHDOG = 'read -r _; kill -TERM "-$1"; sleep 1; kill -KILL "-$1"; rm -rf "$2"'


class DriverStartError(RuntimeError):
    """chromedriver did not start or did not become ready; the message has its log."""


def free_port() -> int:
    """A loopback port nothing listens on now (the caller retries if it is taken)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DriverProcess:
    """One running chromedriver, its temporary directory and every process under it.

    ``stop()`` is idempotent and is also registered to run at interpreter exit, so a test
    run that is interrupted between tests still ends its browsers.
    """

    def __init__(self, *, chromedriver: Path = CHROMEDRIVER, ready_timeout: float = 15.0
                 ) -> None:
        if not chromedriver.exists():
            raise DriverStartError(
                f"{chromedriver} not found: install Debian's chromium and chromium-driver "
                "(scripts/test does)")
        self.root = Path(tempfile.mkdtemp(prefix="kapa-core-browser-"))
        self.profile = self.root / "profile"
        home = self.root / "home"
        home.mkdir()
        self.log_path = self.root / "chromedriver.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self.pid = 0
        env = {**os.environ, "HOME": str(home)}
        atexit.register(self.stop)
        try:
            for _attempt in range(3):  # another process may take the free port first
                self.port = free_port()
                with self.log_path.open("ab") as log:
                    self._process = subprocess.Popen(
                        [str(chromedriver), f"--port={self.port}"], stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                #: chromedriver's process id, also its process group's (kept after stop)
                self.pid = self._process.pid
                self._watchdog = subprocess.Popen(
                    ["/bin/sh", "-c", _WATCHDOG, "kapa-core-browser-watchdog", str(self.pid),
                     str(self.root)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
                if self._wait_ready(ready_timeout):
                    break
                self._end_processes()
            else:
                raise DriverStartError(f"chromedriver did not start:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The end of chromedriver's own output (both streams), for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no chromedriver log)"
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self, timeout: float) -> bool:
        """Polls ``GET /status`` until chromedriver reports ready; False if it exited."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0, trust_env=False) as client:  # loopback, no proxy
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                try:
                    if client.get(f"{self.url}/status").json()["value"]["ready"]:
                        return True
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    pass
                time.sleep(0.02)
        return False

    def stray_pids(self) -> list[int]:
        """Processes still alive that belong to this browser: in chromedriver's process
        group, or naming the temporary directory on their command line."""
        marker = str(self.root).encode()
        group = self._process.pid if self._process is not None else None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended while we looked
            # stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses
            state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
            if state == "Z":
                continue  # a zombie has ended; only its parent's wait() is missing
            if int(pgrp) == group or marker in cmdline:
                found.append(pid)
        return found

    def _end_processes(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:  # ended first: on its own it would end the group
            watchdog.kill()
            watchdog.wait()
            assert watchdog.stdin is not None
            watchdog.stdin.close()
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        # Chromium ends on the group's SIGTERM, and its crash handlers once it has gone.
        deadline = time.monotonic() + 3
        while self.stray_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self.stray_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Ends chromedriver, Chromium and its helpers, and removes the temporary files."""
        self._end_processes()
        self._process = None
        atexit.unregister(self.stop)
        shutil.rmtree(self.root, ignore_errors=True)
