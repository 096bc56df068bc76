import pytest

from kapa_core.models.duration import HOUR, MILLISECOND, MINUTE, SECOND, Duration


@pytest.mark.parametrize(("text", "ns"), [
    ("0s", 0), ("0", 0), ("10s", 10 * SECOND), ("1m0s", MINUTE), ("1h30m", 90 * MINUTE),
    ("1.5s", 1500 * MILLISECOND), ("500ms", 500 * MILLISECOND), ("2us", 2000),
    ("2µs", 2000), ("-1m", -MINUTE), ("1h0m0s", HOUR), ("3ns", 3),
])
def test_parse_go_durations(text: str, ns: int) -> None:
    assert Duration.parse(text) == ns


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (10 * SECOND, "10s"), (MINUTE, "1m0s"), (90 * MINUTE, "1h30m0s"),
    (1500 * MILLISECOND, "1.5s"), (500 * MILLISECOND, "500ms"), (1500, "1.5µs"), (7, "7ns"),
    (-MINUTE, "-1m0s"), (HOUR + 1, "1h0m0.000000001s"),
])
def test_format_like_go(ns: int, text: str) -> None:
    assert str(Duration(ns)) == text


@pytest.mark.parametrize("text", ["", "10", "1d", "s", "1x", "1m 2s", "--1s"])
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        Duration.parse(text)


def test_tick_durations_allow_days_and_weeks() -> None:
    assert Duration.parse("1d", tick=True) == 24 * HOUR
    assert Duration.parse("2w", tick=True) == 14 * 24 * HOUR


@pytest.mark.parametrize(("text", "ns"), [
    ("2562047h47m16.854775807s", 2**63 - 1), ("9223372036854775807ns", 2**63 - 1),
    ("-2562047h47m16.854775808s", -(2**63)), ("1." + "9" * 5000 + "s", 1_999_999_999),
    ("0." + "0" * 60 + "1s", 0),
])
def test_the_int64_range_is_accepted_to_its_ends(text: str, ns: int) -> None:
    assert Duration.parse(text) == ns


@pytest.mark.parametrize("text", ["2562047h47m16.854775808s", "9223372036854775808ns",
                                  "3000000h", "-3000000h", "9" * 5000 + "h",
                                  "9223372036854775807ns1ns", "15251w"])
def test_out_of_int64_range_is_refused_like_go(text: str) -> None:
    # Go's time.ParseDuration: `time: invalid duration "3000000h"`.
    with pytest.raises(ValueError, match=r"invalid duration .*out of range"):
        Duration.parse(text, tick=True)


def test_1e308ns_is_not_a_duration() -> None:
    with pytest.raises(ValueError, match="invalid duration '1e308ns'"):
        Duration.parse("1e308ns")
