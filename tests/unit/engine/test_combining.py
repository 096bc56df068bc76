"""groupBy, flatten, combine, join, union and barrier nodes."""

from __future__ import annotations

from kapa_core.models.batch import Batch
from kapa_core.testing import run_script

S = 1_000_000_000


def test_group_by_sets_the_group_and_its_dimensions() -> None:
    run = run_script("stream|from().groupBy('host')",
                     "cpu,host=a,dc=x v=1 0\ncpu,host=b,dc=x v=2 0")
    groups = [(p.group, p.dims) for p in run.points("from")]
    assert groups == [("host=a", ("host",)), ("host=b", ("host",))]


def test_group_by_measurement_adds_the_name() -> None:
    run = run_script("stream|from().groupBy('host').groupByMeasurement()",
                     "cpu,host=a v=1 0\nmem,host=a v=2 0")
    assert [p.group for p in run.points("from")] == ["cpu\nhost=a", "mem\nhost=a"]


def test_group_by_node_regroups() -> None:
    run = run_script("stream|from().groupBy('host')|groupBy('dc')|window().period(10s)"
                     ".every(10s)|count('v')",
                     "cpu,host=a,dc=x v=1 0\ncpu,host=b,dc=x v=2 0\ncpu,host=c,dc=y v=3 0\n"
                     "cpu,host=a,dc=x v=1 10000000000\ncpu,host=c,dc=y v=1 10000000000")
    got = sorted((p.tags["dc"], p.fields["count"]) for p in run.points("count"))
    assert got == [("x", 2), ("y", 1)]


def test_join_on_time_prefixes_the_fields() -> None:
    script = """
var errors = stream|from().measurement('errors')
var requests = stream|from().measurement('requests')
errors|join(requests).as('e', 'r')|eval(lambda: "e.value" / "r.value").as('rate')
"""
    data = ("errors value=1 0\nrequests value=4 0\n"
            "errors value=3 10000000000\nrequests value=6 10000000000\n"
            "errors value=0 20000000000")
    run = run_script(script, data)
    assert run.fields("eval", "rate") == [0.25, 0.5]
    (first, *_) = run.points("join")
    assert set(first.fields) == {"e.value", "r.value"}


def test_join_with_tolerance_matches_close_times() -> None:
    script = """
var a = stream|from().measurement('a')
var b = stream|from().measurement('b')
a|join(b).as('a', 'b').tolerance(1s)
"""
    data = ("a v=1 0\nb v=2 400000000\na v=3 5000000000\nb v=4 5400000000\n"
            "a v=0 20000000000\nb v=0 20000000000")
    run = run_script(script, data)
    assert [(p.fields["a.v"], p.fields["b.v"]) for p in run.points("join")][:2] == [
        (1.0, 2.0), (3.0, 4.0)]


def test_join_of_grouped_streams_matches_groups() -> None:
    script = """
var cpu = stream|from().measurement('cpu').groupBy('host')
var mem = stream|from().measurement('mem').groupBy('host')
cpu|join(mem).as('c', 'm')
"""
    data = ("cpu,host=a v=1 0\nmem,host=a v=10 0\ncpu,host=b v=2 0\nmem,host=b v=20 0\n"
            "cpu,host=a v=0 10000000000\nmem,host=a v=0 10000000000\n"
            "cpu,host=b v=0 10000000000\nmem,host=b v=0 10000000000")
    run = run_script(script, data)
    pairs = sorted((p.tags["host"], p.fields["c.v"], p.fields["m.v"])
                   for p in run.points("join") if p.time == 0)
    assert pairs == [("a", 1.0, 10.0), ("b", 2.0, 20.0)]


def test_join_on_the_parents_own_grouping_joins_nothing() -> None:
    # as Kapacitor 1.5.7 (compat case join/on_same_grouping): a message grouped by
    # exactly the .on() tags only waits for a more specific one, which never comes
    script = """
var cpu = stream|from().measurement('cpu').groupBy('host')
var mem = stream|from().measurement('mem').groupBy('host')
cpu|join(mem).as('c', 'm').on('host')
"""
    data = ("cpu,host=a v=1 0\nmem,host=a v=10 0\n"
            "cpu,host=a v=2 10000000000\nmem,host=a v=20 10000000000\n"
            "cpu,host=a v=0 20000000000\nmem,host=a v=0 20000000000")
    run = run_script(script, data)
    assert run.points("join") == [] and run.stats("join")["collected"] == 6


def test_join_on_a_subset_of_the_grouping_takes_the_specific_tags() -> None:
    script = """
var cpu = stream|from().measurement('cpu').groupBy('host', 'core')
var total = stream|from().measurement('total').groupBy('host')
cpu|join(total).as('c', 't').on('host')
"""
    data = ("cpu,host=a,core=0 v=1 0\ncpu,host=a,core=1 v=2 0\ntotal,host=a v=10 0\n"
            "cpu,host=a,core=0 v=0 10000000000\ntotal,host=a v=0 10000000000")
    run = run_script(script, data)
    got = sorted((p.tags["core"], p.fields["c.v"], p.fields["t.v"])
                 for p in run.points("join") if p.time == 0)
    assert got == [("0", 1.0, 10.0), ("1", 2.0, 10.0)]


def test_union_passes_both_parents_renamed() -> None:
    script = """
var a = stream|from().measurement('a')
var b = stream|from().measurement('b')
a|union(b).rename('both')
"""
    # a message is passed on once every parent has sent something as late (time order)
    run = run_script(script, "a v=1 0\nb v=2 1000000000\na v=3 2000000000\nb v=0 3000000000")
    assert [(p.name, p.fields["v"]) for p in run.points("union")] == [
        ("both", 1.0), ("both", 2.0), ("both", 3.0)]


def test_flatten_merges_groups_of_a_time() -> None:
    script = "stream|from()|flatten().on('host').tolerance(1s)"
    data = ("cpu,host=a v=1 0\ncpu,host=b v=2 0\n"
            "cpu,host=a v=3 10000000000\ncpu,host=b v=4 10000000000\n"
            "cpu,host=a v=0 20000000000")
    run = run_script(script, data)
    assert [p.fields for p in run.points("flatten")] == [{"a.v": 1.0, "b.v": 2.0},
                                                         {"a.v": 3.0, "b.v": 4.0}]


def test_combine_pairs_points_of_the_same_time() -> None:
    script = ("stream|from()|combine(lambda: \"kind\" == 'x', lambda: \"kind\" == 'y')"
              ".as('x', 'y')")
    data = "m kind=\"x\",v=1 0\nm kind=\"y\",v=2 0\nm kind=\"x\",v=3 1000000000"
    run = run_script(script, data)
    (p,) = run.points("combine")[:1]
    assert p.fields["x.v"] == 1.0 and p.fields["y.v"] == 2.0


def test_barrier_marks_groups_that_went_quiet() -> None:
    run = run_script("stream|from().groupBy('host')|barrier().idle(5s)|window().period(1m)"
                     ".every(1m)", "cpu,host=a v=1 0\ncpu,host=a v=2 1000000000")
    assert run.stats("barrier")["collected"] == 2


def test_window_after_group_by_emits_one_batch_per_group() -> None:
    run = run_script("stream|from().groupBy('host')|window().period(10s).every(10s)",
                     "cpu,host=a v=1 0\ncpu,host=b v=2 0\ncpu,host=a v=0 10000000000\n"
                     "cpu,host=b v=0 10000000000")
    out = run.outputs("window")
    assert all(isinstance(b, Batch) for b in out)
    assert sorted(b.group for b in out if isinstance(b, Batch)) == ["host=a", "host=b"]


def test_join_fill_stands_in_for_the_missing_side() -> None:
    script = """
var a = stream|from().measurement('a')
var b = stream|from().measurement('b')
a|join(b).as('a', 'b').fill(0.0)
"""
    data = ("a v=1 0\nb v=2 0\na v=3 10000000000\nb v=9 20000000000\n"
            "a v=0 30000000000\nb v=0 30000000000")
    run = run_script(script, data)
    got = [(p.time // S, p.fields["a.v"], p.fields["b.v"]) for p in run.points("join")]
    assert got[:3] == [(0, 1.0, 2.0), (10, 3.0, 0.0), (20, 0.0, 9.0)]


def test_union_of_three_parents_passes_everything_in_time_order() -> None:
    script = """
var a = stream|from().measurement('a')
var b = stream|from().measurement('b')
var c = stream|from().measurement('c')
a|union(b, c)
"""
    data = ("a v=1 0\nb v=2 1000000000\nc v=3 2000000000\n"
            "a v=4 3000000000\nb v=5 3000000000\nc v=6 3000000000")
    out = run_script(script, data).points("union")
    assert [p.time // S for p in out] == [0, 1, 2, 3, 3, 3]
    assert sorted(p.fields["v"] for p in out) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_group_by_star_takes_every_tag_sorted() -> None:
    run = run_script("stream|from().groupBy(*)", "cpu,host=a,dc=x v=1 0")
    assert [(p.group, p.dims) for p in run.points("from")] == [("dc=x,host=a",
                                                                 ("dc", "host"))]
