"""The real daemon for tests, and helpers around it.

``DaemonProcess`` runs the real ``kapa-core`` daemon as a subprocess on a free loopback
port with its own data directory, and always stops it, even when the test fails::

    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        httpx.post(daemon.url + "/write?db=db", content=b"m v=1")

The daemon writes its log and statistics asynchronously, so a check on them must wait for
what it expects, with a deadline, rather than look once: ``wait_for_log(regex)``,
``wait_for_text(substring)`` and ``wait_until(check)`` poll and fail with the last thing
they saw.

``plugin_manager(module)`` loads only the given plugin modules (no entry points).
"""

from __future__ import annotations

import json
import os
import re
import select
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from kapa_core.plugins import Plugins, load_plugins

_READY = re.compile(r"^kapa-core \S+ ready: API on https?://(\S+)")
_T = TypeVar("_T")


def _tail(text: str, lines: int = 60) -> str:
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) if kept else "(nothing)"


def wait_until(probe: Callable[[], _T], timeout: float = 20.0, what: str = "", *,
               until: Callable[[_T], Any] | None = None, interval: float = 0.05) -> _T:
    """Poll ``probe`` until its value is truthy (or satisfies ``until``); return the value.

    After ``timeout`` seconds it raises ``AssertionError`` naming ``what`` and showing
    the last value ``probe`` returned (or the exception it last raised), so that e.g.
    ``wait_until(lambda: stats(), until=lambda s: s["points"] >= 3)`` shows the figures.
    """
    deadline = time.monotonic() + timeout
    while True:
        last: _T | Exception
        try:
            value = probe()
        except Exception as exc:  # e.g. a server not answering yet: try again
            last = exc
        else:
            last = value
            done: object
            try:
                done = until(value) if until is not None else value
            except Exception:  # e.g. a statistic not there yet: not done
                done = False
            if done:
                return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what or probe}; last seen: "
                f"{last!r}") from (last if isinstance(last, BaseException) else None)
        time.sleep(interval)


def plugin_manager(*modules: ModuleType) -> Plugins:
    """Plugins loaded from ``modules`` only, as the daemon would register them."""
    return load_plugins(modules, entry_points=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(type(value).__name__)


def to_toml(config: Mapping[str, Any]) -> str:
    """A small TOML writer for test configurations (tables, arrays of tables, values)."""
    lines = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in config.items()
             if not isinstance(v, Mapping | list) or (isinstance(v, list) and not any(
                 isinstance(e, Mapping) for e in v))]
    for name, value in config.items():
        if isinstance(value, Mapping):
            lines.append(f"[{json.dumps(name)}]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and any(isinstance(e, Mapping) for e in value):
            for element in value:
                lines.append(f"[[{json.dumps(name)}]]")
                lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in element.items()]
    return "\n".join(lines) + "\n"


class DaemonProcess:
    """The real daemon in a subprocess, on 127.0.0.1 with a free port.

    ``config`` is a dict (merged over a test base: port 0 on loopback, a temporary
    data_dir, InfluxDB disabled, logs to STDERR) or TOML text used as is. ``args`` are
    extra command-line flags; ``env`` extra environment variables. ``data_dir`` lets a
    second daemon reuse the first one's data (restart tests).
    """

    def __init__(self, config: Mapping[str, Any] | str | None = None, *,
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 data_dir: str | None = None, ready_timeout: float = 30.0,
                 use_config_flag: bool = True) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kapa-test-")
        self.dir = Path(self._tmp.name)
        self.data_dir = data_dir or str(self.dir / "data")
        self.config_path = str(self.dir / "kapacitor.conf")
        if isinstance(config, str):
            text = config
        else:
            merged: dict[str, Any] = {
                "data_dir": self.data_dir,
                "http": {"bind-address": "127.0.0.1:0"},
                "influxdb": [{"enabled": False}],
                "logging": {"file": "STDERR", "level": "DEBUG"},
            }
            for key, value in (config or {}).items():
                if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            text = to_toml(merged)
        Path(self.config_path).write_text(text, encoding="utf-8")
        self.args = list(args)
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.use_config_flag = use_config_flag
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        self.stdout_lines: list[str] = []
        self.url = ""
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------
    def command(self) -> list[str]:
        """The daemon's command line."""
        cmd = [sys.executable, "-m", "kapa_core.cli.daemon", "run"]
        if self.use_config_flag:
            cmd += ["-config", self.config_path]
        return cmd + self.args

    def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
        env["HOME"] = str(self.dir)  # keep ~/.kapacitor out of the user's home
        env.update(self.env)
        self.lines = []
        self.stdout_lines = []
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=env, cwd=str(self.dir))
        ready = threading.Event()
        self._reader = threading.Thread(target=self._pump, args=(ready,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(5)  # the rest of its output
                self.kill()
                raise RuntimeError("kapa-core did not become ready; its log:\n" +
                                   "\n".join(self.lines))
        return self

    def _pump(self, ready: threading.Event) -> None:
        """Collect stdout and stderr lines in one thread.

        When the "ready" line arrives on stdout, whatever the daemon logged to stderr
        before printing it is already in the stderr pipe: it is read before ``start()``
        returns, so ``log()`` holds every line logged up to "kapa-core ready".
        """
        assert self.proc is not None
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        out, err = self.proc.stdout.fileno(), self.proc.stderr.fileno()
        sinks = {out: self.stdout_lines, err: self.lines}
        partial = {out: b"", err: b""}

        def take(fd: int) -> bool:
            """Read what ``fd`` has; store whole lines. False at end of file."""
            chunk = os.read(fd, 65536)
            if chunk:
                *whole, partial[fd] = (partial[fd] + chunk).split(b"\n")
            else:  # end of file: a last line without a newline still counts
                whole, partial[fd] = [partial[fd]] if partial[fd] else [], b""
            fresh = [line.decode("utf-8", "replace").rstrip("\r") for line in whole]
            with self._lock:
                sinks[fd].extend(fresh)
            if fd == out and not ready.is_set():
                for line in fresh:
                    if match := _READY.search(line):
                        drain_stderr()
                        host, _, port = match.group(1).rpartition(":")
                        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
                        scheme = "https" if "https://" in line else "http"
                        self.url = f"{scheme}://{host}:{port}"
                        ready.set()
                        break
            return bool(chunk)

        def drain_stderr() -> None:
            while err in selector.get_map() and select.select([err], [], [], 0)[0]:
                if not take(err):
                    selector.unregister(err)

        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            selector.register(err, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    if key.fd in selector.get_map() and not take(key.fd):
                        selector.unregister(key.fd)

    def peak_rss_kb(self) -> int:
        """The daemon's peak resident memory so far (``VmHWM``), in kB."""
        assert self.proc is not None, "the daemon is not running"
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 20.0, *, count: int = 1) -> str:
        """The first log line matching the regex ``pattern``, waiting up to ``timeout``.

        With ``count``, waits for that many matching lines and returns the last of them.
        Fails with the end of the log once the deadline passes, or as soon as the daemon
        has exited and its whole log has been read without a match.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            finished = self._reader is not None and not self._reader.is_alive()
            with self._lock:
                found = [line for line in self.lines if regex.search(line)]
            if len(found) >= count:
                return found[count - 1]
            if finished or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        wanted = "a log line" if count == 1 else f"{count} log lines (saw {len(found)})"
        why = "the daemon exited" if finished else f"after {timeout:g}s"
        raise AssertionError(f"{why}: no {wanted} matching {pattern!r}; end of the log:\n"
                             f"{_tail(self.log())}")

    def wait_for_text(self, text: str, timeout: float = 20.0, *, count: int = 1) -> str:
        """Like ``wait_for_log`` for a plain substring ``text`` rather than a regex."""
        return self.wait_for_log(re.escape(text), timeout, count=count)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the daemon and wait for it to exit; returns its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        finally:
            self._finish()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._finish()

    def _finish(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def close(self) -> None:
        try:
            self.kill()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_cli(*args: str, env: Mapping[str, str] | None = None, cwd: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``kapa-core <args>`` to completion and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "kapa_core.cli.daemon", *args],
                          capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


__all__ = ["DaemonProcess", "plugin_manager", "run_cli", "signal", "to_toml", "wait_until"]
