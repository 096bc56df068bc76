"""Helpers for kapa-core's tests and for third-party plugin authors.

``DaemonProcess`` runs the real ``kapa-core`` daemon as a subprocess on a free loopback
port with its own data directory, and always stops it, even when the test fails::

    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        httpx.post(daemon.url + "/write?db=db", content=b"m v=1")

``plugin_manager(module)`` loads only the given plugin modules (no entry points).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from kapa_core.plugins import Plugins, load_plugins

_READY = re.compile(r"^kapa-core \S+ ready: API on https?://(\S+)")


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
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.stdout_lines: list[str] = []
        self.url = ""
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._out_reader: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAPACITOR_")}
        env["HOME"] = str(self.dir)  # keep ~/.kapacitor out of the user's home
        env.update(self.env)
        cmd = [sys.executable, "-m", "kapa_core.cli.daemon", "run"]
        if self.use_config_flag:
            cmd += ["-config", self.config_path]
        cmd += self.args
        self.lines = []
        self.stdout_lines = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, env=env,
                                     cwd=str(self.dir))
        ready = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(ready,), daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=self._read_stdout, args=(ready,),
                                            daemon=True)
        self._out_reader.start()
        deadline = time.monotonic() + self.ready_timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(2)
                self.kill()
                raise RuntimeError("kapa-core did not become ready; its log:\n" +
                                   "\n".join(self.lines))
        return self

    def _read(self, ready: threading.Event) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def _read_stdout(self, ready: threading.Event) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.stdout_lines.append(line)
            match = _READY.search(line)
            if match and not ready.is_set():
                host, _, port = match.group(1).rpartition(":")
                host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
                scheme = "https" if "https://" in line else "http"
                self.url = f"{scheme}://{host}:{port}"
                ready.set()

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """The first log line matching the regex ``pattern``, waiting up to ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if regex.search(line):
                        return line
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r}; log:\n{self.log()}")

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
        for reader in (self._reader, self._out_reader):
            if reader is not None:
                reader.join(5)

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


__all__ = ["DaemonProcess", "plugin_manager", "run_cli", "signal", "to_toml"]
