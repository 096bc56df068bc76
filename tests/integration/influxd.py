"""A real InfluxDB 1.x (Debian package ``influxdb``) for tests, on free loopback ports.

    with InfluxD() as influx:            # always killed on exit, even when a test fails
        influx.query("CREATE DATABASE x")
        influx.stop(); influx.start()   # same ports, same data: outage tests
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class InfluxD:
    def __init__(self, *, auth: bool = False, https_cert: str = "", https_key: str = "",
                 shared_secret: str = "", ready_timeout: float = 30.0) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="influxd-test-")
        self.dir = Path(self._tmp.name)
        self.port = free_port()
        self.rpc_port = free_port()
        self.auth = auth
        self.https = bool(https_cert)
        scheme = "https" if self.https else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        https = (f'https-enabled = true\n  https-certificate = "{https_cert}"\n'
                 f'  https-private-key = "{https_key}"\n') if self.https else ""
        self.config = self.dir / "influxdb.conf"
        self.config.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{self.dir}/meta"
[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {str(auth).lower()}
  shared-secret = "{shared_secret}"
  log-enabled = false
  {https}
[monitor]
  store-enabled = false
[subscriber]
  insecure-skip-verify = true
""")

    def start(self) -> InfluxD:
        self.log = open(self.dir / "influxd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([INFLUXD, "-config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + "/ping", verify=False, timeout=1).status_code == 204:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("influxd did not start:\n" + self.output())

    def output(self) -> str:
        return (self.dir / "influxd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def query(self, q: str, *, auth: tuple[str, str] | None = None, **params: Any) -> Any:
        response = httpx.post(self.url + "/query", params={"q": q, **params}, auth=auth,
                              verify=False, timeout=10)
        response.raise_for_status()
        return response.json()

    def create_admin(self, user: str, password: str) -> None:
        self.query(f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._tmp.cleanup()

    def __enter__(self) -> InfluxD:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
