"""kapacitorLoopback with tasks reading what it writes back: measurement and tag
overrides, batches from a window, aggregates, two loops in a chain, the task's own
database under another retention policy. Each scenario is run with
tests.compat.scenarios_misc.run (several tasks, then one write).

The expected data was taken from the real Kapacitor 1.5.7 (kapacitord) on the same
scripts and points; regenerate it with

    python -m tests.integration.test_loopback_tasks --kapacitord BIN
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from kapa_core.testing import DaemonProcess
from tests.compat.scenarios_misc import Scenario, run

pytestmark = pytest.mark.integration

DBRP = [("mydb", "myrp")]
POINTS = ("mydb", "myrp", """\
cpu,host=a,dc=x value=1,s="one",b=true,i=3i 31536000
cpu,host=b,dc=x value=2,s="two",b=false,i=4i 31536001
cpu,host=a,dc=y value=3,s="three",b=true,i=5i 31536002
cpu,host=b,dc=y value=4 31536011
cpu,host=a,dc=x value=5 31536012
mem,host=a free=10i 31536003
""")


def read(measurement: str, group_by: str) -> str:
    return f"""
stream
    |from()
        .database('lb')
        .retentionPolicy('lbrp')
        .measurement('{measurement}')
        .groupBy({group_by})
    |httpOut('out')
"""


SCENARIOS = [
  Scenario("measurement_tags", "", [
    ("loop", """
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |kapacitorLoopback()
        .database('lb')
        .retentionPolicy('lbrp')
        .measurement('cpu2')
        .tag('src', 'loop')
        .tag('host', 'renamed')
""", DBRP), ("read", read('cpu2', "'host', 'src'"), [("lb", "lbrp")])], stats=["loop", "read"], points=POINTS),
  Scenario("batches", "", [
    ("loop", """
stream
    |from()
        .measurement('cpu')
        .groupBy('dc')
    |window()
        .period(10s)
        .every(10s)
    |kapacitorLoopback()
        .database('lb')
        .retentionPolicy('lbrp')
        .measurement('ignored')
        .tag('k', 'v')
""", DBRP), ("read", read('cpu', "*"), [("lb", "lbrp")])], stats=["loop", "read"], points=POINTS),
  Scenario("aggregate", "", [
    ("loop", """
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |window()
        .period(10s)
        .every(10s)
    |mean('value')
    |kapacitorLoopback()
        .database('lb')
        .retentionPolicy('lbrp')
""", DBRP), ("read", read('cpu', "*"), [("lb", "lbrp")])], stats=["loop", "read"], points=POINTS),
  Scenario("chain_two_loops", "", [
    ("loop1", """
stream
    |from()
        .measurement('mem')
    |kapacitorLoopback()
        .database('lb')
        .retentionPolicy('lbrp')
""", DBRP), ("loop2", """
stream
    |from()
        .measurement('mem')
    |eval(lambda: "free" * 2)
        .as('double')
    |kapacitorLoopback()
        .database('lb2')
        .retentionPolicy('lbrp2')
""", [("lb", "lbrp")]), ("read", """
stream
    |from()
        .measurement('mem')
    |httpOut('out')
""", [("lb2", "lbrp2")])], stats=["loop1", "loop2", "read"], points=POINTS),
  Scenario("same_db_other_rp", "", [
    ("loop", """
stream
    |from()
        .measurement('cpu')
        .where(lambda: "host" == 'a')
    |kapacitorLoopback()
        .database('mydb')
        .retentionPolicy('other')
        .measurement('cpu_a')
""", DBRP), ("read", """
stream
    |from()
        .measurement('cpu_a')
    |httpOut('out')
""", [("mydb", "other")])], stats=["loop", "read"], points=POINTS),
]

# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED: dict[str, dict[str, object]] = {
    'measurement_tags': {
        'loop stats':
            '{"from1": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "kapacitor_loopback2": {"collected": 5, "emitted": 0, "errors": 0, "points_written": 5, "working_cardinality": 0}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}}',
        'loop error':
            '',
        'read httpOut':
            '{"series":[{"name":"cpu2","tags":{"dc":"x","host":"renamed","src":"loop"},"columns":["time","value"],"values":[["1971-01-01T00:00:12Z",5]]}]}',
        'read stats':
            '{"from1": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "http_out2": {"collected": 5, "emitted": 0, "errors": 0, "working_cardinality": 1}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}}',
        'read error':
            '',
    },
    'batches': {
        'loop stats':
            '{"from1": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "kapacitor_loopback3": {"collected": 1, "emitted": 0, "errors": 0, "points_written": 2, "working_cardinality": 0}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "window2": {"collected": 5, "emitted": 1, "errors": 0, "working_cardinality": 2}}',
        'loop error':
            '',
        'read httpOut':
            '{"series":[{"name":"cpu","tags":{"dc":"x","host":"a","k":"v"},"columns":["time","b","i","s","value"],"values":[["1971-01-01T00:00:00Z",true,3,"one",1]]},{"name":"cpu","tags":{"dc":"x","host":"b","k":"v"},"columns":["time","b","i","s","value"],"values":[["1971-01-01T00:00:01Z",false,4,"two",2]]}]}',
        'read stats':
            '{"from1": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}, "http_out2": {"collected": 2, "emitted": 0, "errors": 0, "working_cardinality": 2}, "stream0": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}}',
        'read error':
            '',
    },
    'aggregate': {
        'loop stats':
            '{"from1": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "kapacitor_loopback4": {"collected": 2, "emitted": 0, "errors": 0, "points_written": 2, "working_cardinality": 0}, "mean3": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 2}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}, "window2": {"collected": 5, "emitted": 2, "errors": 0, "working_cardinality": 2}}',
        'loop error':
            '',
        'read httpOut':
            '{"series":[{"name":"cpu","tags":{"host":"b"},"columns":["time","mean"],"values":[["1971-01-01T00:00:11Z",2]]},{"name":"cpu","tags":{"host":"a"},"columns":["time","mean"],"values":[["1971-01-01T00:00:10Z",2]]}]}',
        'read stats':
            '{"from1": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}, "http_out2": {"collected": 2, "emitted": 0, "errors": 0, "working_cardinality": 2}, "stream0": {"collected": 2, "emitted": 2, "errors": 0, "working_cardinality": 0}}',
        'read error':
            '',
    },
    'chain_two_loops': {
        'loop1 stats':
            '{"from1": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}, "kapacitor_loopback2": {"collected": 1, "emitted": 0, "errors": 0, "points_written": 1, "working_cardinality": 0}, "stream0": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}}',
        'loop1 error':
            '',
        'loop2 stats':
            '{"eval2": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 1}, "from1": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}, "kapacitor_loopback3": {"collected": 1, "emitted": 0, "errors": 0, "points_written": 1, "working_cardinality": 0}, "stream0": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}}',
        'loop2 error':
            '',
        'read httpOut':
            '{"series":[{"name":"mem","tags":{"host":"a"},"columns":["time","double"],"values":[["1971-01-01T00:00:03Z",20]]}]}',
        'read stats':
            '{"from1": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}, "http_out2": {"collected": 1, "emitted": 0, "errors": 0, "working_cardinality": 1}, "stream0": {"collected": 1, "emitted": 1, "errors": 0, "working_cardinality": 0}}',
        'read error':
            '',
    },
    'same_db_other_rp': {
        'loop stats':
            '{"from1": {"collected": 5, "emitted": 3, "errors": 0, "working_cardinality": 0}, "kapacitor_loopback2": {"collected": 3, "emitted": 0, "errors": 0, "points_written": 3, "working_cardinality": 0}, "stream0": {"collected": 5, "emitted": 5, "errors": 0, "working_cardinality": 0}}',
        'loop error':
            '',
        'read httpOut':
            '{"series":[{"name":"cpu_a","tags":{"dc":"x","host":"a"},"columns":["time","value"],"values":[["1971-01-01T00:00:12Z",5]]}]}',
        'read stats':
            '{"from1": {"collected": 3, "emitted": 3, "errors": 0, "working_cardinality": 0}, "http_out2": {"collected": 3, "emitted": 0, "errors": 0, "working_cardinality": 1}, "stream0": {"collected": 3, "emitted": 3, "errors": 0, "working_cardinality": 0}}',
        'read error':
            '',
    },
}


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"http": {"log-enabled": False}, "logging": {"level": "ERROR"}}) as d:
        yield d


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_loopback_like_kapacitor(daemon: DaemonProcess, scenario: Scenario) -> None:
    expected = EXPECTED[scenario.name]
    assert run(daemon.url, scenario, None, None, expected, timeout=10) == expected


def main(argv: list[str]) -> int:
    from tests.compat.oracle import Kapacitor

    server = Kapacitor(argv[argv.index("--kapacitord") + 1])
    try:
        out = {s.name: run(server.url, s, None, None) for s in SCENARIOS}
    finally:
        server.close()
    print(json.dumps(out, indent=4, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
