"""Sideload sources as Kapacitor's sideload service keeps them: one cache per directory
shared by the tasks reading it (read when the first starts, not again when another
starts), ``POST /kapacitor/v1/sideload/reload`` reading every open source again, a failed
read keeping the files read before the broken one.

The expected data was taken from the real Kapacitor 1.5.7 (kapacitord) on the same
scripts, files and points; regenerate it with

    python -m tests.integration.test_sideload_sources --kapacitord BIN
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration


def script(root: Path, field: str) -> str:
    return f"""
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |sideload()
        .source('file://{root}')
        .order('hosts/{{{{.host}}}}.yml', 'zone.yml')
        .field('{field}', 1)
        .tag('zone', 'none')
    |httpOut('out')
"""


def shared_and_reloaded(url: str, root: Path) -> dict[str, object]:
    """Two tasks on one directory, files changed between their starts, reloads that
    fail and succeed; the outputs after each step."""
    (root / "hosts").mkdir(parents=True)
    (root / "hosts" / "a.yml").write_text("cap: 10\nlimit: 5\n")
    (root / "zone.yml").write_text("zone: eu\n")
    out: dict[str, object] = {}
    stamp = iter(range(31536000, 31536100))

    def write_and_read(step: str) -> None:
        t = next(stamp)
        c.post("/write?db=mydb&rp=myrp&precision=s",
               content=f"cpu,host=a v={t - 31536000} {t}".encode()).raise_for_status()
        time.sleep(0.4)
        for task in ("first", "second"):
            r = c.get(f"/kapacitor/v1/tasks/{task}/out")
            out[f"{step} {task}"] = r.text if r.status_code == 200 else r.status_code

    def reload(step: str) -> None:
        r = c.post("/kapacitor/v1/sideload/reload")
        error = r.json().get("error", "") if r.content else ""
        out[f"{step} reload"] = [r.status_code, error.replace(str(root), "ROOT")]

    with httpx.Client(base_url=url, timeout=30) as c:
        task = {"type": "stream", "status": "enabled", "dbrps": [{"db": "mydb", "rp": "myrp"}]}
        c.post("/kapacitor/v1/tasks", json={"id": "first", "script": script(root, "cap"),
                                            **task}).raise_for_status()
        write_and_read("1")
        (root / "hosts" / "a.yml").write_text("cap: 20\nlimit: 6\n")
        c.post("/kapacitor/v1/tasks", json={"id": "second", "script": script(root, "limit"),
                                            **task}).raise_for_status()
        write_and_read("2 second task started")
        reload("3")
        write_and_read("3")
        (root / "zone.yml").write_text("zone: [us,\n")  # walked after hosts/a.yml
        (root / "hosts" / "a.yml").write_text("cap: 30\nlimit: 7\n")
        reload("4 broken")
        write_and_read("4")
        (root / "zone.yml").write_text("zone: us\n")
        reload("5 fixed")
        write_and_read("5")
        c.delete("/kapacitor/v1/tasks/first")
        c.delete("/kapacitor/v1/tasks/second")
    return out


# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED: dict[str, object] = {
    '1 first':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"eu"},"columns":["time","cap","v"],"values":[["1971-01-01T00:00:00Z",10,0]]}]}',
    '1 second':
        404,
    '2 second task started first':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"eu"},"columns":["time","cap","v"],"values":[["1971-01-01T00:00:01Z",10,1]]}]}',
    '2 second task started second':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"eu"},"columns":["time","limit","v"],"values":[["1971-01-01T00:00:01Z",5,1]]}]}',
    '3 first':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"eu"},"columns":["time","cap","v"],"values":[["1971-01-01T00:00:02Z",20,2]]}]}',
    '3 reload':
        [204, ''],
    '3 second':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"eu"},"columns":["time","limit","v"],"values":[["1971-01-01T00:00:02Z",6,2]]}]}',
    '4 broken reload':
        [500, 'failed to update source "ROOT": failed to update sideload cache for source "ROOT": failed to unmarshal yaml values "ROOT/zone.yml": error converting YAML to JSON: yaml: line 1: did not find expected node content'],
    '4 first':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"none"},"columns":["time","cap","v"],"values":[["1971-01-01T00:00:03Z",30,3]]}]}',
    '4 second':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"none"},"columns":["time","limit","v"],"values":[["1971-01-01T00:00:03Z",7,3]]}]}',
    '5 first':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"us"},"columns":["time","cap","v"],"values":[["1971-01-01T00:00:04Z",30,4]]}]}',
    '5 fixed reload':
        [204, ''],
    '5 second':
        '{"series":[{"name":"cpu","tags":{"host":"a","zone":"us"},"columns":["time","limit","v"],"values":[["1971-01-01T00:00:04Z",7,4]]}]}',
}


@pytest.fixture
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"http": {"log-enabled": False}, "logging": {"level": "ERROR"}}) as d:
        yield d


def test_sources_like_kapacitor(daemon: DaemonProcess, tmp_path: Path) -> None:
    assert shared_and_reloaded(daemon.url, tmp_path / "src") == EXPECTED


def main(argv: list[str]) -> int:
    from tests.compat.oracle import Kapacitor

    server = Kapacitor(argv[argv.index("--kapacitord") + 1])
    try:
        out = shared_and_reloaded(server.url, Path(tempfile.mkdtemp()) / "src")
    finally:
        server.close()
    print(json.dumps(out, indent=4, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
