"""Processing a script grows linearly with its size.

Lexing, parsing, evaluating, formatting, drawing the DOT and building the runtime nodes
of a script four times as large must take about four times the steps, whatever makes it
large: many chains, long chains, long lambdas, long strings, long comments. The steps
are the Python function calls made (counted with a profile hook), not seconds, so the
test does not depend on how busy the machine is. A quadratic step (one scan of every
node for each node, say) shows as a ratio of 16 at these sizes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from kapa_core.engine.build import build_nodes
from kapa_core.logs import Logger
from kapa_core.pipeline.evaluate import evaluate
from kapa_core.tick import limits, parser
from kapa_core.tick.format import format_program
from kapa_core.tick.lexer import tokenize


def many_chains(n: int) -> str:
    return "".join(f"// chain {i}\nvar s{i} = 'v{i}'\nstream\n    |from()\n"
                   f"        .measurement('m_{i}')\n"
                   f"    |where(lambda: \"x\" > {i} AND \"host\" != s{i})\n"
                   f"    |eval(lambda: \"x\" * 2.5)\n        .as('y')\n"
                   f"    |httpOut('o_{i}')\n\n" for i in range(n))


def long_chain(n: int) -> str:
    return ("stream\n    |from()\n        .measurement('m')\n"
            + "    |eval(lambda: \"x\" + 1.0)\n        .as('x')\n" * n
            + "    |httpOut('out')\n")


def long_lambdas(n: int) -> str:
    terms = " OR ".join(f"\"x\" > {k}" for k in range(n))
    return "".join(f"stream\n    |from()\n        .measurement('m{i}')\n"
                   f"    |where(lambda: {terms})\n    |httpOut('o{i}')\n" for i in range(3))


def long_texts(n: int) -> str:
    comment = "// a long comment line that explains a lot\n" * n
    text = "it\\'s a long text " * n
    return (f"{comment}var s = '{text}'\n{comment}var t = '''{text}'''\n{comment}"
            "stream\n    |from()\n    |eval(lambda: s, lambda: t)\n        .as('a', 'b')\n"
            "    |httpOut('o')\n")


def calls(step: Callable[[], object]) -> int:
    """The Python and built-in function calls ``step`` makes."""
    count = 0

    def hook(frame: object, event: str, arg: object) -> None:
        nonlocal count
        if event == "call" or event == "c_call":
            count += 1

    sys.setprofile(hook)
    try:
        step()
    finally:
        sys.setprofile(None)
    return count


def steps(script: str) -> dict[str, int]:
    """The calls of each stage of defining, showing and starting ``script``."""
    with parser._kept_lock:
        parser._kept.clear()  # parse it afresh
    with limits.using(limits.ScriptLimits(0, 0)):
        counts = {"lex": calls(lambda: tokenize(script))}
        program = parser.parse(script)
        counts["parse"] = calls(lambda: parser.Parser(script).program())
        evaluated = evaluate(script, "stream", {}, dbrps=[("db", "rp")], program=program)
        counts["evaluate"] = calls(lambda: evaluate(script, "stream", {}, dbrps=[("db", "rp")],
                                                    program=program))
        counts["format"] = calls(lambda: format_program(program))
        counts["dot"] = calls(lambda: evaluated.pipeline.dot("t"))
        log = Logger("test")
        counts["build"] = calls(lambda: build_nodes(evaluated.pipeline, log))
    return counts


@pytest.mark.parametrize(("shape", "size"), [(many_chains, 40), (long_chain, 100),
                                             (long_lambdas, 60), (long_texts, 200)],
                         ids=["many_chains", "long_chain", "long_lambdas", "long_texts"])
def test_four_times_the_script_takes_about_four_times_the_steps(shape, size) -> None:
    small, large = steps(shape(size)), steps(shape(4 * size))
    assert len(shape(4 * size)) > 3.5 * len(shape(size))
    for stage, count in small.items():
        assert large[stage] <= 4.4 * count + 50, (stage, count, large[stage])
