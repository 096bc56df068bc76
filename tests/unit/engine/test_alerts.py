"""The alert node: levels, state changes, flapping, history, handlers' events."""

from __future__ import annotations

from kapa_core.testing import run_script

S = 1_000_000_000


def values(*vs: float, host: str = "a", every: int = 1) -> str:
    return "\n".join(f"cpu,host={host} v={v} {i * every * S}" for i, v in enumerate(vs))


LEVELS = """stream|from()|alert()
    .info(lambda: "v" > 10)
    .warn(lambda: "v" > 20)
    .crit(lambda: "v" > 30)"""


def test_levels_from_the_highest_matching_expression() -> None:
    run = run_script(LEVELS, values(5, 15, 25, 35, 5))
    assert run.levels() == ["INFO", "WARNING", "CRITICAL", "OK"]


def test_ok_at_the_start_fires_nothing() -> None:
    run = run_script(LEVELS, values(1, 2, 3))
    assert run.alerts == []
    assert run.stats("alert")["alerts_triggered"] == 0


def test_without_state_changes_only_every_non_ok_point_fires() -> None:
    run = run_script(LEVELS, values(35, 35, 35))
    assert run.levels() == ["CRITICAL"] * 3
    assert run.stats("alert")["crits_triggered"] == 3


def test_state_changes_only() -> None:
    run = run_script(LEVELS + ".stateChangesOnly()", values(35, 35, 25, 25, 5, 5))
    assert run.levels() == ["CRITICAL", "WARNING", "OK"]


def test_state_changes_only_with_an_interval_fires_again_when_it_expires() -> None:
    run = run_script(LEVELS + ".stateChangesOnly(10s)", values(35, 35, 35, 35, every=5))
    assert [e.state.time // S for e in run.alerts] == [0, 10]


def test_no_recoveries_drops_the_ok_events() -> None:
    run = run_script(LEVELS + ".noRecoveries()", values(35, 5, 35))
    assert run.levels() == ["CRITICAL", "CRITICAL"]


def test_events_carry_changed_and_previous_level() -> None:
    run = run_script(LEVELS, values(35, 35, 5))
    assert [(str(e.previous_level), e.changed) for e in run.alerts] == [
        ("OK", True), ("CRITICAL", False), ("CRITICAL", True)]


def test_id_and_message_templates() -> None:
    run = run_script(LEVELS + """.id('{{ .Name }}/{{ index .Tags "host" }}')
        .message('{{ .ID }} is {{ .Level }} at {{ index .Fields "v" }}')""",
                     values(35))
    (event,) = run.alerts
    assert event.id == "cpu/a"
    assert event.state.message == "cpu/a is CRITICAL at 35"


def test_levels_are_kept_per_group() -> None:
    data = values(35, 35, host="a") + "\n" + values(5, 35, host="b")
    run = run_script("stream|from().groupBy('host')|alert().crit(lambda: \"v\" > 30)"
                     ".stateChangesOnly()", data)
    assert sorted((e.tags["host"], str(e.level)) for e in run.alerts) == [
        ("a", "CRITICAL"), ("b", "CRITICAL")]
    assert run.stats("alert")["working_cardinality"] == 2


def test_reset_expression_holds_the_level_until_it_is_true() -> None:
    run = run_script("stream|from()|alert().crit(lambda: \"v\" > 30)"
                     ".critReset(lambda: \"v\" < 10).stateChangesOnly()",
                     values(35, 20, 20, 5))
    assert run.levels() == ["CRITICAL", "OK"]
    assert run.alerts[1].state.time == 3 * S


def test_flapping_suppresses_events() -> None:
    flipping = values(*[35 if i % 2 else 5 for i in range(12)])
    plain = run_script("stream|from()|alert().crit(lambda: \"v\" > 30)", flipping)
    flapping = run_script("stream|from()|alert().crit(lambda: \"v\" > 30)"
                          ".flapping(0.25, 0.5).history(6)", flipping)
    assert len(plain.alerts) == 11
    assert len(flapping.alerts) < len(plain.alerts)


def test_duration_of_an_alert() -> None:
    run = run_script(LEVELS, values(35, 35, 35, 5, every=10))
    assert [e.state.duration // S for e in run.alerts] == [0, 10, 20, 30]


def test_annotations_on_the_points_passed_on() -> None:
    run = run_script(LEVELS + ".levelTag('level').idField('id').durationField('d')",
                     values(35, 5))
    out = run.points("alert")
    assert [p.tags["level"] for p in out] == ["CRITICAL", "OK"]
    assert out[0].fields["id"] == "cpu:nil"


def test_handlers_written_in_the_script_get_every_event() -> None:
    run = run_script(LEVELS + ".log('/tmp/alerts.log').post('http://127.0.0.1:1/x')",
                     values(35, 5), handler_kinds="installed")
    assert [(h.kind, str(h.event.level)) for h in run.handled()] == [
        ("log", "CRITICAL"), ("post", "CRITICAL"), ("log", "OK"), ("post", "OK")]
    assert run.handled("log")[0].options["path"] == "/tmp/alerts.log"


def test_topic_events_share_state() -> None:
    run = run_script(LEVELS + ".topic('ops')", values(35, 5))
    assert run.levels() == ["CRITICAL", "OK"]


def test_inhibitor_drops_events_of_its_category() -> None:
    script = """
var data = stream|from().groupBy('host')
data|alert().category('host').inhibit('system', 'host').crit(lambda: "v" > 30)
data|alert().category('system').crit(lambda: "w" > 1)
"""
    run = run_script(script, "cpu,host=a v=35,w=2 0\ncpu,host=a v=35,w=2 1000000000")
    assert run.stats("alert2")["alerts_triggered"] == 2
    assert run.stats("alert3")["alerts_inhibited"] == 2


def test_inhibitor_of_its_own_category_drops_its_own_non_ok_events() -> None:
    # the inhibitor is set before the event is checked; the recovery clears it first
    run = run_script("stream|from().groupBy('host')|alert().category('sys')"
                     ".inhibit('sys', 'host').crit(lambda: \"v\" > 30)",
                     values(35, 40, 5) + "\n" + values(1, 2, host="b"))
    assert run.levels() == ["OK"]
    assert run.stats("alert")["alerts_inhibited"] == 2


def test_inhibited_events_still_pass_their_points_on() -> None:
    run = run_script("stream|from()|alert().category('sys').inhibit('sys')"
                     ".crit(lambda: \"v\" > 30).levelTag('level')", values(35, 5))
    assert [p.tags["level"] for p in run.points("alert")] == ["CRITICAL", "OK"]


def test_inhibit_without_tags_and_with_the_empty_category() -> None:
    two_hosts = values(35, 35, 5) + "\n" + values(1, 40, 40, host="b")
    lone = run_script("stream|from().groupBy('host')|alert().category('sys')"
                      ".inhibit('sys').crit(lambda: \"v\" > 30)", two_hosts)
    # a's recovery comes while b is critical: every event of the node is inhibited
    assert lone.levels() == [] and lone.stats("alert")["alerts_inhibited"] == 5
    empty = run_script("stream|from().groupBy('host')|alert().inhibit('', 'host')"
                       ".crit(lambda: \"v\" > 30)", two_hosts)
    assert empty.levels() == ["OK"]
