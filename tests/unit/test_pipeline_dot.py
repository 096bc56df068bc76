"""The DOT of a pipeline as Kapacitor 1.5.7 draws it (each expected text was taken from
kapacitord 1.5.7 with the same script)."""

from __future__ import annotations

from kapa_core.pipeline.evaluate import evaluate


def dot(script: str, kind: str = "stream", stats=None, **kw) -> str:
    return evaluate(script, kind, {}, dbrps=[("db", "rp")]).pipeline.dot("t", stats, **kw)


def test_batch_task_has_no_batch_root_and_walks_later_queries_first() -> None:
    script = ("var q = batch|query('SELECT mean(v) FROM db.rp.m').period(10s).every(10s)\n"
              "q|log()\nq|httpOut('x')\n"
              "batch|query('SELECT * FROM db.rp.n').period(5s).every(5s)|stats(1m)|log()")
    assert dot(script, "batch") == ("digraph t {\nquery4 -> noop6;\nquery1 -> log2;\n"
                                    "query1 -> http_out3;\nstats5 -> log7;\n}")


def test_join_takes_an_id_per_parent() -> None:
    script = ("var a = stream|from().measurement('a')\nvar b = stream|from().measurement('b')\n"
              "a|join(b).as('a', 'b')|eval(lambda: \"a.v\").as('v')|httpOut('o')")
    assert dot(script) == ("digraph t {\nstream0 -> from1;\nstream0 -> from2;\n"
                           "from2 -> join4;\nfrom1 -> join4;\njoin4 -> eval5;\n"
                           "eval5 -> http_out6;\n}")


def test_deadman_numbers_its_stats_node_before_the_noop() -> None:
    assert dot("stream|from().measurement('m')|deadman(0.0, 1m)") == (
        "digraph t {\nstream0 -> from1;\nfrom1 -> noop3;\nstats2 -> derivative4;\n"
        "derivative4 -> alert5;\n}")


def test_running_dot_lists_statistics_but_not_emitted() -> None:
    stats = {"stream0": {"avg_exec_time_ns": 0, "collected": 3, "emitted": 3, "errors": 0,
                         "working_cardinality": 0},
             "from1": {"avg_exec_time_ns": 1500, "collected": 3, "emitted": 2, "errors": 1,
                       "working_cardinality": 0},
             "log2": {"avg_exec_time_ns": 2_000_000, "emitted": 2, "errors": 0,
                      "working_cardinality": 1}}
    script = "stream|from().measurement('m')|log()"
    assert dot(script, stats=stats, throughput=1.5) == (
        'digraph t {\ngraph [throughput="1.50 points/s"];\n'
        '\nstream0 [avg_exec_time_ns="0s" errors="0" working_cardinality="0" ];\n'
        'stream0 -> from1 [processed="3"];\n'
        '\nfrom1 [avg_exec_time_ns="1.5µs" errors="1" working_cardinality="0" ];\n'
        'from1 -> log2 [processed="2"];\n'
        '\nlog2 [avg_exec_time_ns="2ms" errors="0" working_cardinality="1" ];\n}')
    assert dot(script, stats=stats, throughput=0.0, labels=True) == (
        'digraph t {\ngraph [label="Throughput: 0.00 points/s" forcelabels=true '
        'pad="0.8,0.5"];\n'
        '\nstream0 [xlabel="avg_exec_time_ns=0s\\rerrors=0\\rworking_cardinality=0"];\n'
        'stream0 -> from1 [label="processed=3"];\n'
        '\nfrom1 [xlabel="avg_exec_time_ns=1.5µs\\rerrors=1\\rworking_cardinality=0"];\n'
        'from1 -> log2 [label="processed=2"];\n'
        '\nlog2 [xlabel="avg_exec_time_ns=2ms\\rerrors=0\\rworking_cardinality=1"];\n}')


def test_a_long_chain_is_drawn_without_recursion() -> None:
    script = "stream|from().measurement('m')" + "|log()" * 5000
    text = dot(script)
    assert text.count("->") == 5001 and text.endswith("log5001;\n}")
