"""The pieces of ``batch|query()`` that need no server: cron expressions, the query text
sent to InfluxDB, result parsing, result series to batches, and definition-time checks."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from kapa_core.engine.cron import CronError
from kapa_core.engine.cron import parse as cron
from kapa_core.engine.nodes.query import check, go_truncate, series_to_batch
from kapa_core.errors import TickError
from kapa_core.influxdb.query import QueryFailed, Series, parse_response
from kapa_core.influxdb.select_query import QueryTextError, SelectQuery, TimeGroup
from kapa_core.pipeline.evaluate import evaluate

S = 1_000_000_000


def wall(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=dt.UTC)


# -- cron ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "after", "expected"), [
    # 5 fields: minute hour dom month dow
    ("0 0 29 2 *", wall(2013, 8, 29, 9, 28), wall(2016, 2, 29)),
    ("*/15 * * * *", wall(2024, 1, 1, 10, 7, 30), wall(2024, 1, 1, 10, 15)),
    # 6 fields: the sixth is the year (cronexpr), not a leading second
    ("30 12 1 1 * 2030", wall(2024, 5, 1), wall(2030, 1, 1, 12, 30)),
    # 7 fields: second first, year last
    ("*/2 * * * * * *", wall(2024, 1, 1, 0, 0, 0, 500000),
     wall(2024, 1, 1, 0, 0, 2)),
    ("5 * * * * * *", wall(2024, 1, 1, 0, 0, 5), wall(2024, 1, 1, 0, 1, 5)),
    ("0 12 * * 5L", wall(2024, 1, 1), wall(2024, 1, 26, 12)),
    ("0 12 * * fri#2", wall(2024, 1, 1), wall(2024, 1, 12, 12)),
    ("0 0 LW * *", wall(2024, 3, 1), wall(2024, 3, 29)),
    ("0 0 1W * *", wall(2024, 5, 20), wall(2024, 6, 3)),
    ("0 0 L 2 *", wall(2023, 1, 1), wall(2023, 2, 28)),
    ("0 0 1 * MON", wall(2024, 1, 1, 1), wall(2024, 1, 8)),  # dom or dow
    ("0 9 * JAN-MAR 7", wall(2024, 3, 31, 10), wall(2025, 1, 5, 9)),
    ("@hourly", wall(2024, 5, 20, 1, 2, 3), wall(2024, 5, 20, 2)),
    ("@weekly", wall(2024, 5, 20), wall(2024, 5, 26)),
])
def test_cron_next(expr: str, after: dt.datetime, expected: dt.datetime) -> None:
    assert cron(expr).next_wall(after) == expected


def test_cron_without_future_time() -> None:
    assert cron("* * * * * 1980").next_wall(wall(2024, 1, 1)) is None


@pytest.mark.parametrize(("expr", "message"), [
    ("* * * *", "missing field"), ("61 * * * *", "syntax error in minute field: '61'"),
    ("* 24 * * *", "hour field"), ("*/0 * * * *", "invalid interval"),
    ("* * * * foo", "day-of-week field: 'foo'"), ("* * 32 * *", "day-of-month field"),
    ("* * * 13 *", "month field"),
])
def test_cron_errors(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        cron(expr)


# -- the query text -------------------------------------------------------------------------
def test_time_range_group_by_and_fill_are_added() -> None:
    q = SelectQuery('SELECT mean("v") FROM "db"."autogen"."cpu"', [TimeGroup(10 * S),
                                                                     "host"], 0)
    assert q.render(1_700_000_000 * S, 1_700_000_060 * S) == (
        'SELECT mean("v") FROM "db"."autogen"."cpu" WHERE '
        "time >= '2023-11-14T22:13:20Z' AND time < '2023-11-14T22:14:20Z' "
        'GROUP BY time(10s, 0s), "host" fill(0)')
    assert q.grouped_by_time


def test_own_condition_is_parenthesized_and_other_clauses_kept() -> None:
    q = SelectQuery("select a/b, mean(x) from db.rp./cp.*/ where host = 'a' or host=~/b\\/c/"
                    " group by host fill(none) order by time desc limit 10 "
                    "tz('Europe/Paris');", ["*"])
    assert q.render(0, 1500 * 1_000_000) == (
        "select a/b, mean(x) from db.rp./cp.*/ WHERE (host = 'a' or host=~/b\\/c/) AND "
        "time >= '1970-01-01T00:00:00Z' AND time < '1970-01-01T00:00:01.5Z' GROUP BY * "
        "fill(none) ORDER BY time desc LIMIT 10 tz('Europe/Paris')")
    assert not q.grouped_by_time


def test_parentheses_are_skipped_and_align_group_sets_the_offset() -> None:
    q = SelectQuery("SELECT max(v) AS \"from (x)\" FROM m WHERE (x = 1 OR (y > 2)) "
                    "AND time > 0 GROUP BY time(1m) fill(1)", [TimeGroup(60 * S, 5 * S)],
                    "previous", align_group=True)
    assert q.render(61 * S, 121 * S) == (
        "SELECT max(v) AS \"from (x)\" FROM m WHERE ((x = 1 OR (y > 2)) AND time > 0) "
        "AND time >= '1970-01-01T00:01:01Z' AND time < '1970-01-01T00:02:01Z' "
        "GROUP BY time(1m, 1s) fill(previous)")
    plain = SelectQuery("SELECT v FROM m", [TimeGroup(90 * S, -5 * S)], 1.5)
    assert plain.render(0, S).endswith("GROUP BY time(90s, -5s) fill(1.5)")


@pytest.mark.parametrize(("text", "message"), [
    ("SELECT a, b c FROM m", "found c, expected FROM at line 1, char 13"),
    ('SELECT mean(v) + 1 AS x, max(v) "y" FROM m', "found y, expected FROM at line 1, char 33"),
    ("SELECT * 'str' FROM m", "found str, expected FROM at line 1, char 9"),
    ("SELECT v limit 1", "found LIMIT, expected FROM at line 1, char 10"),
    ("SELECT v FROM WHERE x = 1", "found WHERE, expected identifier at line 1, char 15"),
    ("SELECT v FROM ", "found EOF, expected identifier at line 1, char 16"),
    ("SELECT v FROM m WHERE host = ", "found EOF, expected identifier, string, number, bool "
     "at line 1, char 31"),
    ("SELECT v FROM m WHERE a = 1 b", "found b, expected ; at line 1, char 29"),
    ("SELECT v FROM m LIMIT x", "found x, expected integer at line 1, char 23"),
    ("SELECT max(v)::float FROM m", "found ::, expected FROM at line 1, char 14"),
])
def test_parse_errors_name_what_influxql_found_and_where(text: str, message: str) -> None:
    with pytest.raises(QueryTextError, match=f"^{re.escape(message)}$"):
        SelectQuery(text)


def test_valid_expressions_are_read_to_their_end() -> None:
    for text in ["SELECT v::float, count(distinct(v)) FROM m WHERE time > now() - 1h",
                 "SELECT v FROM m WHERE \"host\" =~ /^a$/ AND (b = 1 OR c::tag = 'it\\'s')",
                 "SELECT v FROM m WHERE a % 2 = -1 GROUP BY host LIMIT 10 SOFFSET 1",
                 "SELECT v FROM m WHERE x = true ORDER BY time DESC tz('Europe/Paris')"]:
        SelectQuery(text)


def test_kapacitors_influxql_has_no_subqueries() -> None:
    with pytest.raises(QueryTextError, match=r"^found \(, expected identifier at line 2, "
                       r"char 6$"):
        SelectQuery("SELECT max(m)\nFROM (SELECT mean(v) AS m FROM a.b.c GROUP BY time(1m))")


@pytest.mark.parametrize(("text", "message"), [
    ("SELECT derivative(mean(v), 1s) FROM m", "derivative aggregate requires a GROUP BY "
     "interval"),
    ("SELECT moving_average(v, 2) FROM m GROUP BY time(1m)", "aggregate function "
     "required inside the call to moving_average"),
    ("SELECT holt_winters(v, 2, 0) FROM m", "must use aggregate function with holt_winters"),
    ("SELECT v FROM m WHERE time > 0 GROUP BY time(1m)", "GROUP BY requires at least one "
     "aggregate function"),
    ("SELECT mean(v) FROM m WHERE x = 1 GROUP BY time(1m)", "aggregate functions with "
     "GROUP BY time require a WHERE time clause"),
])
def test_transformations_are_checked_on_the_query_text(text: str, message: str) -> None:
    with pytest.raises(QueryTextError, match=message):
        SelectQuery(text)
    SelectQuery("SELECT derivative(mean(v), 1s) FROM m WHERE time > 0 GROUP BY time(10s), "
                "host")
    SelectQuery("SELECT derivative(v, 1s), cumulative_sum(v) FROM m")


@pytest.mark.parametrize(("text", "message"), [
    ("DROP DATABASE x", 'not a select statement "DROP DATABASE x"'),
    ("SELECT 1", "^found EOF, expected FROM at line 1, char 10$"),
    ("SELECT v FROM m; DROP DATABASE x", "single select statement, got 2"),
    ('SELECT "v FROM m', "unterminated quoted identifier"),
    ("SELECT v FROM m WHERE", "found EOF, expected identifier, string"),
    ("SELECT (v FROM m", r"found FROM, expected \) at line 1, char 11"),
    ("SELECT v FROM m WHERE (x = 1", "unbalanced"),
    ("SELECT mean(v FROM m", r"found FROM, expected \) at line 1, char 15"),
    ("SELECT count(distinct v), f(a, b) FROM m WHERE )", "unbalanced"),
])
def test_query_text_errors(text: str, message: str) -> None:
    with pytest.raises(QueryTextError, match=message):
        SelectQuery(text)


# -- results and batches ---------------------------------------------------------------------
def test_response_errors() -> None:
    with pytest.raises(QueryFailed, match="database not found"):
        parse_response({"results": [{"statement_id": 0, "error": "database not found: x"}]})
    with pytest.raises(QueryFailed, match="error parsing query"):
        parse_response({"error": "error parsing query: found -"})
    with pytest.raises(QueryFailed, match="no results"):
        parse_response({"nothing": 1})
    assert parse_response({"results": [{"statement_id": 0}]}) == [[]]


def test_series_become_batches_like_kapacitor() -> None:
    [[series]] = parse_response({"results": [{"series": [{
        "name": "cpu", "tags": {"host": "a", "dc": "x"}, "columns": ["time", "mean", "s"],
        "values": [[10, 1, "up"], [20, None, None], [30, 2.5, True]]}]}]})
    batch = series_to_batch(series, by_name=False, stop=99, grouped_by_time=False)
    # Not grouped by time: the batch time is the end of the query window, as Kapacitor.
    assert (batch.name, batch.group, batch.dims, batch.tmax) == ("cpu", "dc=x,host=a",
                                                                 ("dc", "host"), 99)
    assert [(p.time, p.fields) for p in batch.points] == [(10, {"mean": 1.0, "s": "up"}),
                                                          (30, {"mean": 2.5, "s": True})]
    assert type(batch.points[0].fields["mean"]) is float
    grouped = series_to_batch(series, by_name=True, stop=99, grouped_by_time=True)
    assert grouped.tmax == 30 and grouped.group == "cpu\ndc=x,host=a"
    empty = series_to_batch(Series("m", {}, ["time", "v"], [[5, None]]), False, 77, False)
    assert empty.points == [] and empty.tmax == 77 and empty.group == ""


def test_go_truncate_counts_from_go_zero_time() -> None:
    assert go_truncate(1_700_000_001_500_000_000, S) == 1_700_000_001 * S
    assert go_truncate(1_700_000_001 * S, 60 * S) == 1_699_999_980 * S
    # 7s does not divide a day: Go's multiples of 7s are not multiples since 1970.
    assert go_truncate(700 * S, 7 * S) == 696 * S  # 700 is a multiple of 7 since 1970


# -- checks when the node starts (Kapacitor defines such tasks, refuses to start them) ----
@pytest.mark.parametrize(("props", "message"), [
    ("", "must define one of 'every' or 'cron'"),
    (".period(1s)", "must define one of 'every' or 'cron'"),
    (".period(1s).every(1s).cron('* * * * *')", "must not set both"),
    (".period(1s).every(-1s)", "'every' duration must must non-negative"),
    (".cron('61 * * * *')", "61"),
    (".period(1s).every(1s).fill('zero')", "unexpected fill option zero"),
    (".period(1s).every(1s).groupBy(time(1s), time(2s))", "more than one time dimension"),
    (".period(1s).every(1s).groupBy(1)", "invalid dimension type:int64"),
])
def test_query_node_checks(props: str, message: str) -> None:
    evaluated = evaluate(f"batch|query('SELECT v FROM m'){props}", "batch")
    with pytest.raises(ValueError, match=message):
        check(evaluated.pipeline.nodes[1])


def test_a_query_without_period_is_fine() -> None:
    evaluated = evaluate("batch|query('SELECT v FROM m').every(10s)", "batch")
    assert check(evaluated.pipeline.nodes[1]).render(0, 0).startswith("SELECT v FROM m")


def test_query_node_properties() -> None:
    evaluated = evaluate("""
batch|query('SELECT v FROM "d"."r"."m"')
    .period(5m).every(30s).align().alignGroup().offset(1m)
    .groupBy(time(1m, -5s), 'host', *).groupByMeasurement().fill('linear').cluster('c2')
""", "batch")
    node = evaluated.pipeline.nodes[1]
    assert node.name == "query1"
    assert (node.period, node.every, node.offset, node.cluster) == (300 * S, 30 * S,
                                                                    60 * S, "c2")
    assert node.align and node.align_group and node.group_by_measurement
    assert node.group_dimensions() == [TimeGroup(60 * S, -5 * S), "host", "*"]
    assert evaluate("batch|query('SELECT v FROM m').cron('@daily')", "batch")
    with pytest.raises(TickError, match=r"no method or property \"query\" on \*pipeline.StreamNode"):
        evaluate("stream|query('SELECT v FROM m')", "stream")


def test_sources_name_their_database_and_retention_policy() -> None:
    assert SelectQuery('SELECT v FROM "db"."rp"."m", d2..m2 WHERE x = 1').sources() == [
        ("db", "rp"), ("d2", "")]
    assert SelectQuery('SELECT v FROM m, rp.m, /c.*/').sources() == [None, None, None]


def test_replay_windows_follow_kapacitors_ticker() -> None:
    from types import SimpleNamespace

    from kapa_core.engine.replay import go_round, query_windows

    node = SimpleNamespace(cron=None, every=10 * S, align=False, offset=0, period=10 * S)
    # From start, each tick is the previous one plus every; a tick equal to stop runs.
    assert list(query_windows(node, 3 * S, 33 * S, 100 * S)) == [
        (3 * S, 13 * S), (13 * S, 23 * S), (23 * S, 33 * S)]
    node.align, node.offset = True, 2 * S
    # Aligned ticks are rounded (halves up) to multiples of every; offset moves windows.
    assert list(query_windows(node, 5 * S, 33 * S, 100 * S)) == [
        (8 * S, 18 * S), (18 * S, 28 * S)]
    assert go_round(15 * S, 10 * S) == 20 * S and go_round(14 * S, 10 * S) == 10 * S
    # A window ending after now is not queried.
    assert list(query_windows(node, 5 * S, 60 * S, 30 * S)) == [
        (8 * S, 18 * S), (18 * S, 28 * S)]


def test_a_query_reads_only_the_dbrps_of_its_task() -> None:
    from kapa_core.engine.nodes.query import check_dbrps

    check_dbrps(SelectQuery('SELECT v FROM "d"."r"."m", m2'), [("d", "r")])
    with pytest.raises(ValueError, match=r'not allowed to request data from "d"\.""$'):
        check_dbrps(SelectQuery('SELECT v FROM d..m'), [("d", "r")])


def test_influxdb_errors_kapacitors_parser_finds_first() -> None:
    from kapa_core.engine.replay import parser_error

    statement = "SELECT FROM m WHERE time >= '1971-01-01T00:00:00Z'"
    assert parser_error("mixing aggregate and non-aggregate queries is not supported",
                        statement, 13) == ("failed to parse InfluxQL query: mixing "
                                           "aggregate and non-aggregate queries is not "
                                           "supported")
    found = ("http://i:8086 answered HTTP 400: error parsing query: found FROM, expected "
             "identifier, string, number, bool at line 1, char 8")
    assert parser_error(found, statement, 13) == (
        "failed to parse InfluxQL query: found FROM, expected identifier, string, number, "
        "bool at line 1, char 8")
    # A position in what kapa-core added to the text is not the task's error.
    assert parser_error(found.replace("char 8", "char 20"), statement, 13) is None
    assert parser_error("database not found: x", statement, 13) is None
