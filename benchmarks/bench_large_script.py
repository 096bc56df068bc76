"""How long the task API takes with large TICKscripts, kapa-core beside Kapacitor.

    python benchmarks/bench_large_script.py [--mb 5] [--shape chains long]
        [--list-tasks 50] [--list-kb 100] [--kapacitord /opt/kbin/kapacitord]

Generates a script of about ``--mb`` megabytes and times, against the real daemon (with
kapa-core's script size and node limits lifted), and against kapacitord 1.5.7 when
``--kapacitord`` is given:

* defining the task (disabled), reading it back raw and formatted (with its DOT),
  enabling it (PATCH), changing its script (PATCH), reading it again;
* defining a template of the same size with typed vars, and a task from it with vars;
* listing ``--list-tasks`` tasks of ``--list-kb`` kB each (formatted, with DOTs), and
  listing IDs only;
* restarting the daemon on the same store (until it answers a ping), then reading the
  large task and the list again (nothing kept in memory any more).

Each step should grow linearly with the size: run it with ``--mb 1`` and ``--mb 5`` to
compare. The figures of the machine the project is developed on are in CHANGELOG.md.

Shapes (``--shape``, several may be given):

* ``chains`` — thousands of short statements ``stream|from().measurement('m_i')
  |where(lambda: "x" > i AND "host" != 'h')|httpOut('o_i')``, a comment before each
  (three nodes per 200 bytes: Kapacitor 1.5.7 takes ~7 s per MB to define these);
* ``comments`` — four short chains after comment blocks of a quarter of the size each;
* ``strings`` — four string vars of a quarter of the size (with escaped quotes), each
  used by a short chain (Kapacitor defines 5 MB of these in ~0.2 s);
* ``lambdas`` — chains each with a lambda of 300 terms (Kapacitor is quadratic here:
  10 s for 1 MB).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_core.testing import DaemonProcess


def chains(size: int, salt: str = "") -> str:
    parts = []
    total = 0
    i = 0
    while total < size:
        text = (f"// chain {i}{salt}: values above {i % 50}\n"
                f"stream\n    |from()\n        .measurement('m_{i}')\n"
                f"    |where(lambda: \"x\" > {i % 50} AND \"host\" != 'h{i % 7}')\n"
                f"    |httpOut('o_{i}')\n\n")
        parts.append(text)
        total += len(text)
        i += 1
    return "".join(parts)


def comments(size: int, salt: str = "") -> str:
    """Four short chains, each after a comment block of a quarter of ``size``."""
    line = f"// a comment line{salt} that explains what the next chain does, at length\n"
    block = line * max(size // len(line) // 4, 1)
    return "".join(f"{block}stream\n    |from()\n        .measurement('m{i}')\n"
                   f"    |httpOut('o{i}')\n\n" for i in range(4))


def strings(size: int, salt: str = "") -> str:
    """Four string vars of a quarter of ``size`` each (with escaped quotes), each
    used by a short chain."""
    text = ("abc \\'def" + salt + " ") * max(size // 4 // (11 + len(salt)), 1)
    return "".join(f"var s{i} = '{text}'\n\nstream\n    |from()\n        .measurement('m{i}')\n"
                   f"    |eval(lambda: s{i})\n        .as('v')\n    |httpOut('o{i}')\n\n"
                   for i in range(4))


def lambdas(size: int, salt: str = "") -> str:
    """Chains each with a lambda of 300 terms (much longer left-nested lambdas are
    refused as nested too deeply)."""
    terms = " OR ".join(f"\"x\" > {k}" for k in range(300))
    parts = []
    total = 0
    i = 0
    while total < size:
        text = (f"// chain {i}{salt}\nstream\n    |from()\n        .measurement('m{i}')\n"
                f"    |where(lambda: {terms})\n    |httpOut('o{i}')\n\n")
        parts.append(text)
        total += len(text)
        i += 1
    return "".join(parts)


SHAPES: dict[str, Callable[..., str]] = {"chains": chains, "comments": comments,
                                         "strings": strings, "lambdas": lambdas}


def template_of(script: str) -> str:
    """``script`` with typed vars in front, for a template."""
    return ("var limit int\nvar name string\nvar period duration\n"
            "var crit = lambda: \"x\" > limit\n\n" + script)


TEMPLATE_VARS = {"limit": {"type": "int", "value": 3},
                 "name": {"type": "string", "value": "n"},
                 "period": {"type": "duration", "value": "10s"}}


class Kapacitord:
    """kapacitord 1.5.7 on a throw-away directory that survives restarts."""

    def __init__(self, binary: str) -> None:
        from tests.compat.oracle import Kapacitor
        self.server = Kapacitor(binary)
        self.url = self.server.url

    def restart(self) -> None:
        proc = self.server.proc
        proc.terminate()
        proc.wait(60)
        conf = Path(self.server.dir, "kapacitor.conf")
        self.server.proc = subprocess.Popen([proc.args[0], "-config", str(conf)],
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
        wait_ping(self.url)

    def close(self) -> None:
        self.server.close()


class KapaCore:
    """kapa-core with the script limits lifted, on a data directory that survives
    restarts."""

    CONFIG = {"http": {"log-enabled": False, "max-body-size": 0},
              "logging": {"level": "ERROR"}, "task": {"max-script-size": 0, "max-nodes": 0}}

    def __init__(self) -> None:
        self.data = tempfile.mkdtemp(prefix="bench-large-")
        self.daemon = DaemonProcess(self.CONFIG, data_dir=self.data, ready_timeout=600)
        self.daemon.start()
        self.url = self.daemon.url

    def restart(self) -> None:
        self.daemon.close()
        self.daemon = DaemonProcess(self.CONFIG, data_dir=self.data, ready_timeout=600)
        self.daemon.start()
        self.url = self.daemon.url
        wait_ping(self.url)

    def close(self) -> None:
        self.daemon.close()
        shutil.rmtree(self.data, ignore_errors=True)


def wait_ping(url: str) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/kapacitor/v1/ping").status_code == 204:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def timed(call: Callable[[], httpx.Response | None]) -> tuple[float, str]:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    note = ""
    if response is not None and response.status_code >= 300:
        note = f"status {response.status_code}: {response.text[:120]}"
    return elapsed, note


def steps(server, client: httpx.Client, script: str, other: str, listed: list[str]
          ) -> list[tuple[str, Callable[[], httpx.Response | None]]]:
    """The timed steps, in order, against ``server`` (its ``url`` may change at the
    restart)."""
    def tasks() -> str:
        return server.url + "/kapacitor/v1/tasks"

    def templates() -> str:
        return server.url + "/kapacitor/v1/templates"

    big = {"id": "big", "type": "stream", "script": script,
           "dbrps": [{"db": "db", "rp": "rp"}], "status": "disabled"}

    def define_listed() -> None:
        for n, text in enumerate(listed):
            client.post(tasks(), json={"id": f"l{n:03d}", "type": "stream", "script": text,
                                       "dbrps": [{"db": "db", "rp": "rp"}],
                                       "status": "disabled"}).raise_for_status()

    return [
        ("create (disabled)", lambda: client.post(tasks(), json=big)),
        ("get raw", lambda: client.get(tasks() + "/big", params={"script-format": "raw"})),
        ("get formatted", lambda: client.get(tasks() + "/big")),
        ("get formatted again", lambda: client.get(tasks() + "/big")),
        ("patch: enable", lambda: client.patch(tasks() + "/big",
                                               json={"status": "enabled"})),
        ("get (running)", lambda: client.get(tasks() + "/big")),
        ("patch: new script", lambda: client.patch(tasks() + "/big",
                                                   json={"script": other})),
        ("get after patch", lambda: client.get(tasks() + "/big")),
        ("template create (vars)", lambda: client.post(templates(), json={
            "id": "tpl", "type": "stream", "script": template_of(script)})),
        ("task from template", lambda: client.post(tasks(), json={
            "id": "fromtpl", "template-id": "tpl", "vars": TEMPLATE_VARS,
            "dbrps": [{"db": "db", "rp": "rp"}], "status": "disabled"})),
        ("get template", lambda: client.get(templates() + "/tpl")),
        (f"define {len(listed)} listed tasks", define_listed),
        (f"list {len(listed) + 3} tasks", lambda: client.get(tasks(),
                                                             params={"limit": 1000})),
        ("list ids only", lambda: client.get(tasks(), params={"fields": "id"})),
        ("restart (to ping)", server.restart),
        ("get after restart", lambda: client.get(tasks() + "/big")),
        ("list after restart", lambda: client.get(tasks(), params={"limit": 1000})),
        ("delete", lambda: client.delete(tasks() + "/big")),
    ]


def run(name: str, make: Callable[[], object], script: str, other: str,
        listed: list[str]) -> dict[str, tuple[float, str]]:
    """Times the steps against ``make()``, each shown on stderr as soon as it is done."""
    server = make()
    results = {}
    try:
        with httpx.Client(timeout=3600) as client:
            for label, call in steps(server, client, script, other, listed):
                results[label] = timed(call)
                print(f"  {name:<10} {label:<28} {results[label][0]:9.3f}s",
                      file=sys.stderr, flush=True)
            return results
    finally:
        server.close()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[5.0])
    parser.add_argument("--shape", choices=sorted(SHAPES), nargs="+", default=["chains"])
    parser.add_argument("--list-tasks", type=int, default=50)
    parser.add_argument("--list-kb", type=float, default=100)
    parser.add_argument("--kapacitord", help="also time this kapacitord 1.5.7 binary")
    args = parser.parse_args()
    for shape in args.shape:
        make_script = SHAPES[shape]
        listed = [make_script(int(args.list_kb * 1000), f" t{n}")
                  for n in range(args.list_tasks)]
        for mb in args.mb:
            script = make_script(int(mb * 1_000_000))
            other = make_script(int(mb * 1_000_000), " v2")
            print(f"{shape}, {len(script) / 1e6:.2f} MB of script; {len(listed)} listed "
                  f"tasks of {args.list_kb:g} kB", flush=True)
            results = {"kapa-core": run("kapa-core", KapaCore, script, other, listed)}
            if args.kapacitord:
                results["kapacitord"] = run("kapacitord", lambda: Kapacitord(
                    args.kapacitord), script, other, listed)
            names = list(results)
            print(f"  {'step':<28}" + "".join(f"{n:>12}" for n in names)
                  + ("       ratio" if len(names) == 2 else ""))
            for label in results["kapa-core"]:
                figures = [results[n][label][0] for n in names]
                line = f"  {label:<28}" + "".join(f"{f:11.3f}s" for f in figures)
                if len(figures) == 2:
                    line += f"{figures[0] / max(figures[1], 1e-6):11.1f}x"
                notes = [f"{n}: {results[n][label][1]}" for n in names
                         if results[n][label][1]]
                print(line + ("   " + "; ".join(notes) if notes else ""), flush=True)


if __name__ == "__main__":
    main()
