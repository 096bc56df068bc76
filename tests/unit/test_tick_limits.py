"""TICKscript limits: ``[task] max-script-size`` before lexing, ``max-nodes`` while lexing
and while the pipeline is built; long chains need no recursion."""

from __future__ import annotations

import time

import pytest

from kapa_core.config.core_sections import TaskConfig
from kapa_core.errors import TickError
from kapa_core.pipeline.evaluate import evaluate
from kapa_core.tick import limits
from kapa_core.tick.format import format_script
from kapa_core.tick.lexer import tokenize
from kapa_core.tick.parser import parse

HEAD = 'dbrp "db"."rp"\nstream|from()'


def test_defaults_come_from_the_task_section() -> None:
    assert limits.current() == limits.ScriptLimits(TaskConfig().max_script_size,
                                                   TaskConfig().max_nodes)
    assert limits.current() == limits.ScriptLimits(1_048_576, 10_000)


def test_a_script_over_the_size_limit_is_refused_before_lexing() -> None:
    script = HEAD + "|log()" * 3_000_000  # 18 MB
    started = time.perf_counter()
    with pytest.raises(TickError) as err:
        parse(script)
    assert time.perf_counter() - started < 0.5
    assert str(err.value) == (f"script too large: {len(script)} bytes, more than [task] "
                              "max-script-size = 1048576")


def test_size_is_counted_in_utf8_bytes_and_zero_lifts_it() -> None:
    script = "var s = '" + "é" * 300 + "'\n" + HEAD
    with limits.using(limits.ScriptLimits(max_script_size=400)), \
            pytest.raises(TickError, match=rf"{len(script.encode())} bytes, more than"):
        parse(script)
    assert len(script) < 400 < len(script.encode())
    with limits.using(limits.ScriptLimits(max_script_size=0)):
        parse(script)
    with limits.using(limits.ScriptLimits(max_script_size=len(script.encode()))):
        parse(script)


def test_the_lexer_stops_at_the_node_too_many() -> None:
    script = HEAD + "|log()" * 3_000_000
    started = time.perf_counter()
    with limits.using(limits.ScriptLimits(max_script_size=0)), \
            pytest.raises(TickError) as err:
        parse(script)
    assert time.perf_counter() - started < 1.0
    assert (err.value.line, err.value.column) == (2, 60002)
    assert err.value.message == "too many nodes: more than [task] max-nodes = 10000"


def test_the_node_count_includes_the_source_and_udfs() -> None:
    with pytest.raises(TickError, match=r"max-nodes = 3"):
        tokenize("stream|from()@udf()|log()", max_nodes=3)
    assert tokenize("stream|from()@udf()", max_nodes=3)
    assert tokenize("var s = '|||' // |||\nstream|from()", max_nodes=2)  # text: no nodes


def test_nodes_made_by_properties_are_counted_while_building() -> None:
    with limits.using(limits.ScriptLimits(max_nodes=4)):
        evaluate(HEAD + "|log()|log()", "stream")  # stream, from, log, log
        with pytest.raises(TickError, match=r"^line 2 char 15: too many nodes: more than "
                           r"\[task\] max-nodes = 4$"):
            evaluate(HEAD + "|deadman(1.0, 10s)", "stream")  # stats, derivative, alert


def test_a_chain_at_the_limit_builds_without_recursion() -> None:
    script = HEAD + "|log()" * 9_998  # 10,000 nodes: stream, from and the logs
    evaluated = evaluate(script, "stream")
    assert len(evaluated.pipeline.nodes) == 10_000
    assert format_script(script).count("\n    |log()") == 9_998
    with pytest.raises(TickError, match="max-nodes = 10000"):
        evaluate(script + "|log()", "stream")


def test_tokens_and_syntax_nodes_have_no_instance_dict() -> None:
    token = tokenize("stream")[0]
    assert not hasattr(token, "__dict__")
    assert not hasattr(parse(HEAD).statements[1], "__dict__")
