"""How long the task API takes with a large TICKscript.

    python benchmarks/bench_large_script.py [--mb 5] [--shape chains]

Generates a script of about ``--mb`` megabytes, then against the real daemon (with the
script size and node limits lifted) times: defining the task (disabled, then enabling
it), reading it back raw and formatted, drawing its DOT, and listing the tasks. Each
step should grow linearly with the size: run it with ``--mb 1`` and ``--mb 5`` to compare.
Kapacitor 1.5.7 defines a 5 MB task in about 0.4 s and reads it back in about 0.13 s; here
reading and listing are served from kept results (under 1 s for 5 MB), defining parses
and evaluates the script (about 6 s per MB on a busy 2-core machine).

Shapes:

* ``chains`` — many short statements ``var sN = stream|from()...|where()|eval()``
  with a comment each;
* ``long_chain`` — one chain of many ``|eval()`` nodes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_core.testing import DaemonProcess


def chains(size: int) -> str:
    parts = []
    total = 0
    i = 0
    while total < size:
        text = (f"// statement {i}: host h{i % 97}\n"
                f"var s{i} = stream\n    |from()\n        .measurement('m{i % 13}')\n"
                f"        .where(lambda: \"host\" == 'h{i % 97}' AND \"value\" > {i % 50})\n"
                f"    |eval(lambda: \"value\" * 2.5 + {i})\n        .as('v{i}')\n\n")
        parts.append(text)
        total += len(text)
        i += 1
    return "".join(parts)


def long_chain(size: int) -> str:
    head = "stream\n    |from()\n        .measurement('m')\n"
    link = "    |eval(lambda: \"value\" + 1.0)\n        .as('value')\n"
    return head + link * max(1, (size - len(head)) // len(link))


SHAPES = {"chains": chains, "long_chain": long_chain}


def timed(label: str, call) -> httpx.Response:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    print(f"  {label:<28} {elapsed:8.3f} s  status {response.status_code}, "
          f"{len(response.content) / 1e6:.1f} MB", flush=True)
    if response.status_code >= 300:
        print("   ", response.text[:300])
    return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--shape", choices=sorted(SHAPES), nargs="+", default=sorted(SHAPES))
    args = parser.parse_args()
    config = {"http": {"log-enabled": False, "max-body-size": 0},
              "logging": {"level": "ERROR"}, "task": {"max-script-size": 0, "max-nodes": 0}}
    with DaemonProcess(config) as daemon, httpx.Client(timeout=600) as client:
        tasks = daemon.url + "/kapacitor/v1/tasks"
        for shape in args.shape:
            for mb in args.mb:
                script = SHAPES[shape](int(mb * 1_000_000))
                task_id = f"{shape}_{mb:g}mb".replace(".", "_")
                print(f"{shape}, {len(script) / 1e6:.2f} MB of script:")
                body = {"id": task_id, "type": "stream", "script": script,
                        "dbrps": [{"db": "db", "rp": "rp"}], "status": "disabled"}
                timed("create (disabled)", lambda: client.post(tasks, json=body))
                timed("enable", lambda: client.patch(f"{tasks}/{task_id}",
                                                     json={"status": "enabled"}))
                timed("get (raw, dot)", lambda: client.get(
                    f"{tasks}/{task_id}", params={"script-format": "raw"}))
                timed("get (formatted, dot)", lambda: client.get(f"{tasks}/{task_id}"))
                timed("list (formatted, dot)", lambda: client.get(tasks))
                timed("list ids only", lambda: client.get(tasks, params={"fields": "id"}))
                timed("delete", lambda: client.delete(f"{tasks}/{task_id}"))


if __name__ == "__main__":
    main()
