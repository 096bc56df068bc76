"""Formatting TICKscript the way Kapacitor does."""

from __future__ import annotations

from kapa_core.tick.format import format_script
from kapa_core.tick.parser import parse


def test_chains_properties_and_statements() -> None:
    script = ("// my task\ndbrp \"telegraf\".\"autogen\"\nvar period=10s\n"
              "stream|from().measurement('cpu').groupBy(*)|window().period(period)"
              ".every(10s)|mean('v').as('m')|httpOut('x')")
    assert format_script(script) == (
        "// my task\n"
        'dbrp "telegraf"."autogen"\n'
        "\n"
        "var period = 10s\n"
        "\n"
        "stream\n"
        "    |from()\n"
        "        .measurement('cpu')\n"
        "        .groupBy(*)\n"
        "    |window()\n"
        "        .period(period)\n"
        "        .every(10s)\n"
        "    |mean('v')\n"
        "        .as('m')\n"
        "    |httpOut('x')\n")


def test_lambdas_literals_and_parentheses() -> None:
    script = ("var x = lambda: (\"host\"=~/a\\/b/) AND \"v\">1.50 OR !\"ok\" AND "
              "\"n\" == 0755 AND \"s\" == 'it\\'s' AND \"f\" == 2.0")
    assert format_script(script) == (
        "var x = lambda: (\"host\" =~ /a\\/b/) AND \"v\" > 1.5 OR !\"ok\" AND "
        "\"n\" == 0755 AND \"s\" == 'it\\'s' AND \"f\" == 2.0\n")


def test_multiline_expressions_keep_their_break() -> None:
    script = "stream|from().where(lambda: \"a\" > 1 AND\n\"b\" < 2)"
    assert format_script(script) == (
        "stream\n    |from()\n        .where(lambda: \"a\" > 1 AND\n"
        "            \"b\" < 2)\n")


def test_formatting_is_stable_and_keeps_meaning() -> None:
    script = ("var data = stream|from().measurement('m')\n"
              "data|eval(lambda: \"v\" * 2.0).as('v2').tags('x')|httpOut('o')\n"
              "var t int\n")
    once = format_script(script)
    assert format_script(once) == once
    assert len(parse(once).statements) == len(parse(script).statements)


def test_comments_inside_chains_are_kept() -> None:
    script = "stream\n// pick cpu\n|from()\n// only idle\n.measurement('cpu')"
    assert format_script(script) == (
        "stream\n    // pick cpu\n    |from()\n        // only idle\n"
        "        .measurement('cpu')\n")


def test_comment_spacing_blocks_and_trailing_comments() -> None:
    script = ("// first block\n//   indented\n//\n\n// second block\nvar x = 1 //no space\n"
              "stream|from()\n  .measurement('m') // after a property\n  |log()\n// the end\n")
    assert format_script(script) == (
        "// first block\n"
        "//   indented\n"
        "//\n"
        "\n"
        "// second block\n"
        "var x = 1\n"
        "\n"
        "// no space\n"
        "stream\n"
        "    |from()\n"
        "        .measurement('m')\n"
        "    // after a property\n"
        "    |log()\n"
        "\n"
        "// the end\n"
        "\n")


def test_formatting_is_linear_in_the_script_size() -> None:
    # A long chain and many statements format without recursion.
    chain = "stream|from().measurement('m')" + "|eval(lambda: \"v\" + 1).as('v')" * 3000
    text = format_script(chain + "\n" + "var a = 1\n" * 3000)
    assert text.count("|eval(") == 3000 and text.count("var a = 1") == 3000
