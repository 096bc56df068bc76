"""Graphite lines through the template engine of the ``[[graphite]]`` listener.

The table (graphite_kapacitor.json) was recorded from Kapacitor 1.5.7 by
``python -m tests.compat.graphite_oracle``: each line's point as a task received it,
the parse error Kapacitor logged, or nothing (a NaN, dropped silently); and the start
error kapacitord gives for bad templates and tags.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from pathlib import Path

import pytest
from kapa_plugins.inputs.graphite import GraphiteConfig
from kapa_plugins.inputs.graphite_templates import (
    GraphiteError,
    GraphiteParser,
    UnsupportedValue,
    tag_pairs,
    validate,
)
from kapa_plugins.inputs.netinput import LineBuffer, go_float, go_int

from kapa_core.errors import ConfigError

TABLE = json.loads((Path(__file__).parent / "graphite_kapacitor.json").read_text("utf-8"))
NOW = 1_700_000_000_123_456_789


def ns(stamp: str) -> int:
    """An RFC 3339 UTC time as Kapacitor writes it, in nanoseconds."""
    if stamp == "now":
        return NOW
    main, _, frac = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(dt.datetime.fromisoformat(main).timetuple())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def outcomes() -> list[tuple[str, dict, dict]]:
    return [pytest.param(case, outcome, id=f"{case['name']}: {outcome['line']}")
            for case in TABLE["cases"] for outcome in case["outcomes"]]


def parser_for(case: dict) -> GraphiteParser:
    return GraphiteParser(case.get("templates", []), separator=case.get("separator", "."),
                          tags=tag_pairs(case.get("tags", [])))


@pytest.mark.parametrize(("case", "outcome"), outcomes())
def test_lines_map_as_kapacitor_maps_them(case: dict, outcome: dict) -> None:
    parser = parser_for(case)
    line = outcome["line"]
    if "point" in outcome:
        expected = outcome["point"]
        name, tags, fields, stamp = parser.parse(line, now_ns=NOW)
        assert (name, tags, fields, stamp) == (expected["name"], expected["tags"],
                                               expected["fields"], ns(expected["time"]))
    elif "error" in outcome:
        with pytest.raises(GraphiteError) as raised:
            parser.parse(line, now_ns=NOW)
        assert str(raised.value) == outcome["error"]
    else:  # a NaN: refused, and the listener drops it without a log line
        with pytest.raises(UnsupportedValue) as raised:
            parser.parse(line, now_ns=NOW)
        assert raised.value.value != raised.value.value


def test_the_table_covers_points_errors_and_nan() -> None:
    kinds = {next(k for k in ("point", "error", "dropped") if k in o)
             for c in TABLE["cases"] for o in c["outcomes"]}
    assert kinds == {"point", "error", "dropped"}
    assert sum(len(c["outcomes"]) for c in TABLE["cases"]) > 60


@pytest.mark.parametrize("bad", TABLE["bad_configs"],
                         ids=[json.dumps(b["config"]) for b in TABLE["bad_configs"]])
def test_bad_templates_and_tags_are_refused_with_kapacitors_words(bad: dict) -> None:
    config = bad["config"]
    expected = bad["error"].removeprefix("graphite: ")
    with pytest.raises(ValueError) as raised:
        validate(config.get("templates", []), config.get("tags", []))
    assert str(raised.value) == expected
    with pytest.raises(ConfigError) as refused:
        GraphiteConfig(templates=config.get("templates", []),
                       tags=config.get("tags", [])).validate()
    assert refused.value.message == expected
    assert refused.value.path == ("tags" if "tags" in config else "templates")


@pytest.mark.parametrize(("protocol", "ok"), [("tcp", True), ("udp", True), ("UDP", True),
                                              ("", True), ("sctp", False)])
def test_protocol_is_read_as_influxdb_reads_it(protocol: str, ok: bool) -> None:
    config = GraphiteConfig(protocol=protocol)
    if ok:
        config.validate()
    else:
        with pytest.raises(ConfigError, match="unrecognized Graphite input protocol sctp"):
            config.validate()


def test_apply_template_gives_measurement_tags_and_field() -> None:
    parser = GraphiteParser(["servers.* .host.measurement.field*"], separator="_",
                            tags={"dc": "x"})
    assert parser.apply_template("servers.h1.cpu.user.total") == (
        "cpu", {"host": "h1", "dc": "x"}, "user_total")
    assert parser.apply_template("other.path") == ("other.path", {"dc": "x"}, "")


@pytest.mark.parametrize(("text", "value"), [
    ("1", 1.0), ("-2.5e3", -2500.0), (".5", 0.5), ("7.", 7.0), ("0x1p-2", 0.25),
    ("1_000", 1000.0), ("NaN", float("nan")), ("-Inf", float("-inf")),
    ("abc", None), ("1e400", None), ("", None), ("1__0", None), ("\u0661", None),
    ("0x1", None), ("1,5", None)])
def test_go_float(text: str, value: float | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="strconv.ParseFloat"):
            go_float(text)
    elif value != value:
        assert go_float(text) != go_float(text)
    else:
        assert go_float(text) == value


@pytest.mark.parametrize(("text", "value"), [
    ("1356998400", 1356998400), ("-5", -5), ("+7", 7), ("9223372036854775807", 2**63 - 1),
    ("9223372036854775808", None), ("1_0", None), ("1.0", None), ("\u0661", None),
    (" 1", None), ("", None)])
def test_go_int(text: str, value: int | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="strconv.ParseInt"):
            go_int(text)
    else:
        assert go_int(text) == value


def test_line_buffer_gives_whole_lines_and_drops_long_ones() -> None:
    lines = LineBuffer(limit=10)
    assert lines.feed(b"a 1\nb 2") == (b"a 1", 0)
    assert lines.feed(b"2\nc") == (b"b 22", 0)
    assert lines.feed(b"") == (b"", 0)
    assert lines.feed(b"3\n") == (b"c3", 0)
    # an over-long line, however it arrives, is dropped up to its newline
    assert lines.feed(b"x" * 8) == (b"", 0)
    assert lines.feed(b"x" * 8) == (b"", 1)
    assert lines.feed(b"x" * 1000) == (b"", 0)
    assert lines.feed(b"xx\nd 4\n") == (b"d 4", 0)
    assert lines.feed(b"y" * 9) == (b"", 0)
    assert lines.feed(b"yy\ne 5\nf") == (b"e 5", 1)
    assert lines.rest() == b"f"
    assert lines.feed(b"g" * 20 + b"\nh 6\n") == (b"g" * 20 + b"\nh 6", 0)  # one read
    assert lines.feed(b"i 7\n" + b"z" * 11) == (b"i 7", 1)
    assert lines.rest() == b""


def test_line_buffer_memory_stays_bounded() -> None:
    lines = LineBuffer(limit=65536)
    chunk = b"x" * 65536
    for _ in range(200):  # 13 MB without a newline
        lines.feed(chunk)
        assert len(lines.pending) <= 65536
    assert lines.feed(b"\nok 1\n") == (b"ok 1", 0)
