"""Which InfluxDB refusals of a replay's query are Kapacitor's task-start errors."""

from kapa_core.engine.replay import parser_error


def test_group_by_time_added_by_the_node_fails_the_replay_with_influxdbs_error() -> None:
    # A GROUP BY time() of the query's own text is refused before the replay starts; one
    # InfluxDB refuses comes from the node's .groupBy(time(...)), which Kapacitor's
    # parser never sees: the replay fails with "running replay: <InfluxDB's error>".
    statement = ("SELECT \"value\" FROM \"telegraf\".\"default\".packets WHERE time >= "
                 "'1971-01-01T00:00:00Z' AND time < '1971-01-01T00:00:10Z' GROUP BY "
                 "time(2s, 0s)")
    assert parser_error("GROUP BY requires at least one aggregate function",
                        statement, 45) is None


def test_mixing_aggregates_is_still_refused_as_when_the_task_starts() -> None:
    assert parser_error("mixing aggregate and non-aggregate queries is not supported",
                        "SELECT mean(v), v FROM a.b.c", 28) == (
        "failed to parse InfluxQL query: mixing aggregate and non-aggregate queries is not "
        "supported")
