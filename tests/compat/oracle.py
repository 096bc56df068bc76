"""Take expected outputs from the real Kapacitor 1.5.7, or compare kapa-core with them.

    python -m tests.compat.oracle --kapacitord /path/to/kapacitord [PATTERN...]
        runs the cases (all, or those whose name matches a glob PATTERN such as
        'window/*') on a throw-away Kapacitor and writes its answers into the case files;
    python -m tests.compat.oracle --report [PATTERN...]
        runs them on a throw-away kapa-core and prints each case whose output differs.

Kapacitor itself is built from its tag v1.5.7 (see tests/compat/README.md). Batch cases
need ``influxd`` on the PATH; stream cases need nothing else.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.compat.casefile import Case, all_cases, save
from tests.compat.runner import Recorder, matches, run_until_equal, run_until_stable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


KAPACITOR_CONF = """\
hostname = "localhost"
data_dir = "{dir}/data"
skip-config-overrides = true
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[replay]
  dir = "{dir}/replay"
[storage]
  boltdb = "{dir}/kapacitor.db"
[task]
  dir = "{dir}/tasks"
[load]
  enabled = false
[logging]
  file = "{dir}/kapacitor.log"
  level = "ERROR"
[reporting]
  enabled = false
[stats]
  enabled = false
[[influxdb]]
  enabled = {influx_enabled}
  name = "default"
  default = true
  urls = ["{influx_url}"]
  disable-subscriptions = true
"""


class Kapacitor:
    """The real kapacitord on a free loopback port with a throw-away config."""

    def __init__(self, binary: str, influx_url: str | None = None,
                 extra_conf: str = "") -> None:
        """``extra_conf`` is TOML appended to the config (service sections a check
        needs, such as ``[slack]`` pointed at a recorder); ``{dir}`` in it is the
        throw-away directory."""
        self.dir = tempfile.mkdtemp(prefix="kapacitor-oracle-")
        self.port = free_port()
        conf = Path(self.dir, "kapacitor.conf")
        conf.write_text(KAPACITOR_CONF.format(
            dir=self.dir, port=self.port, influx_enabled=str(bool(influx_url)).lower(),
            influx_url=influx_url or "http://127.0.0.1:8086")
            + extra_conf.replace("{dir}", self.dir))
        self.proc = subprocess.Popen([binary, "-config", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/kapacitor/v1/ping").status_code == 204:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.close()
        raise RuntimeError("kapacitord did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def selected(patterns: list[str]) -> list[Case]:
    cases = all_cases()
    if not patterns:
        return cases
    return [c for c in cases if any(fnmatch.fnmatch(c.name, p) for p in patterns)]


def show_diff(name: str, got: dict, expected: dict) -> str:
    a = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    b = json.dumps(got, indent=1, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, f"{name} (Kapacitor)", f"{name} (kapa-core)",
                                          lineterm=""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat.oracle",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help="globs of case names (default: all)")
    parser.add_argument("--kapacitord", help="path of a kapacitord 1.5.7 binary")
    parser.add_argument("--report", action="store_true",
                        help="run on kapa-core and print the differing cases")
    parser.add_argument("--missing", action="store_true",
                        help="with --kapacitord: only cases that have no expected output yet")
    parser.add_argument("--quiet", "-q", action="store_true", help="only the summary")
    args = parser.parse_args(argv)
    cases = selected(args.patterns)
    if args.missing:
        cases = [c for c in cases if not c.expected]
    if not cases:
        print("no case matches", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="compat-"))
    recorder = Recorder()
    influx = None
    if any(c.get("type") == "batch" for c in cases):
        from tests.compat.influx import InfluxServer
        influx = InfluxServer().start()
    try:
        if args.report:
            return report(cases, recorder, workdir, influx, args.quiet)
        if not args.kapacitord:
            parser.error("give --kapacitord or --report")
        server = Kapacitor(args.kapacitord, influx.url if influx else None)
        try:
            for i, case in enumerate(cases, 1):
                if case.get("kapa_core_differs"):
                    print(f"[{i}/{len(cases)}] {case.name}: kept (kapa_core_differs)")
                    continue
                if influx and case.get("type") == "batch":
                    influx.load(case)
                case.expected = run_until_stable(server.url, case, recorder, workdir)
                save(case)
                print(f"[{i}/{len(cases)}] {case.name}: {', '.join(case.expected) or '-'}",
                      flush=True)
        finally:
            server.close()
        return 0
    finally:
        recorder.close()
        if influx:
            influx.close()
        shutil.rmtree(workdir, ignore_errors=True)


def report(cases: list[Case], recorder: Recorder, workdir: Path, influx, quiet: bool) -> int:
    from kapa_core.testing import DaemonProcess

    config: dict = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"}}
    if influx:
        config["influxdb"] = [{"enabled": True, "name": "default", "default": True,
                               "urls": [influx.url], "disable-subscriptions": True}]
    failed = 0
    with DaemonProcess(config) as daemon:
        for case in cases:
            if not case.expected:
                print(f"{case.name}: no expected output yet")
                continue
            if influx and case.get("type") == "batch":
                influx.load(case)
            got = run_until_equal(daemon.url, case, recorder, workdir, case.expected,
                                  timeout=3)
            if not matches(got, case.expected):
                failed += 1
                print(f"DIFFERS {case.name}" if quiet else
                      show_diff(case.name, got, case.expected))
    print(f"{len(cases) - failed} of {len(cases)} cases equal", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
