"""``kapa``'s flag parsing follows Go's ``flag`` package (Go 1.19, the version the
``kapacitor`` 1.5.7 client is built with), and its usage printer Go's PrintDefaults."""

from __future__ import annotations

import io
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapa_core.cli.kapa.flags import (
    BoolValue,
    FlagError,
    FlagSet,
    HelpRequested,
    IntValue,
    go_quote,
    parse_bool,
)
from kapa_core.cli.kapa.tasks import DBRPValue, define_flags


def flag_set(out: io.StringIO | None = None) -> FlagSet:
    flags = FlagSet("test", exit_on_error=False, output=out or io.StringIO())
    flags.string("tick", "", "Path to the TICKscript")
    flags.bool("no-reload", False, "Do not reload")
    flags.int("n", 0, "a number")
    flags.duration("every", 0, "how often")
    return flags


@pytest.mark.parametrize(("args", "rest"), [
    (["-tick", "a.tick", "x"], ["x"]),
    (["--tick", "a.tick", "x"], ["x"]),
    (["-tick=a.tick", "x", "-n", "1"], ["x", "-n", "1"]),  # stops at the first argument
    (["--tick=a=b"], []),
    (["-no-reload", "x"], ["x"]),
    (["-", "-tick", "a"], ["-", "-tick", "a"]),  # a lone "-" is an argument
    (["--", "-tick", "a"], ["-tick", "a"]),  # "--" ends the flags and is dropped
    ([], []),
    (["-tick", "-no-reload"], []),  # a string flag takes the next word, whatever it is
])
def test_arguments_after_the_flags(args: list[str], rest: list[str]) -> None:
    flags = flag_set()
    assert flags.parse(args) == rest


def test_values_are_set() -> None:
    flags = flag_set()
    flags.parse(["-tick", "a.tick", "--no-reload=false", "-n=0x10", "-every", "1m30s"])
    assert flags.flags["tick"].value.string() == "a.tick"
    assert flags.flags["no-reload"].value.string() == "false"
    assert flags.flags["n"].value.string() == "16"
    assert flags.flags["every"].value.string() == "1m30s"
    assert flags.is_set("n") and flags.is_set("no-reload")


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_go_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_go_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "tRuE", "", "2", " true", "on"])
def test_other_bool_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)


@pytest.mark.parametrize(("args", "message"), [
    (["-x"], "flag provided but not defined: -x"),
    (["--nope=1"], "flag provided but not defined: -nope"),
    (["-no-reload=yes"], 'invalid boolean value "yes" for -no-reload: parse error'),
    (["-tick"], "flag needs an argument: -tick"),
    (["-n", "x"], 'invalid value "x" for flag -n: parse error'),
    (["-n", "99999999999999999999"],
     'invalid value "99999999999999999999" for flag -n: value out of range'),
    (["-every", "5"], 'invalid value "5" for flag -every: parse error'),
    (["---tick"], "bad flag syntax: ---tick"),
    (["-=x"], "bad flag syntax: -=x"),
])
def test_errors_are_worded_as_go_then_the_usage(args: list[str], message: str) -> None:
    out = io.StringIO()
    flags = flag_set(out)
    with pytest.raises(FlagError) as raised:
        flags.parse(args)
    assert str(raised.value) == message
    assert out.getvalue().startswith(message + "\nUsage of test:\n  -every duration\n")


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["-help", "x"]])
def test_help_prints_the_usage(args: list[str]) -> None:
    out = io.StringIO()
    flags = flag_set(out)
    with pytest.raises(HelpRequested):
        flags.parse(args)
    assert out.getvalue().startswith("Usage of test:\n")


def test_exit_codes_as_go_exit_on_error() -> None:
    flags = FlagSet("x", output=io.StringIO())
    with pytest.raises(SystemExit) as raised:
        flags.parse(["-x"])
    assert raised.value.code == 2
    with pytest.raises(SystemExit) as raised:
        flags.parse(["-h"])
    assert raised.value.code == 0


def test_print_defaults_layout() -> None:
    flags = FlagSet("x", output=io.StringIO())
    flags.string("url", "", "The URL")
    flags.string("name", "def", "a `file` to read")
    flags.bool("v", False, "verbose")
    flags.bool("on", True, "enabled")
    flags.int("count", 3, "how many")
    flags.string("multi", "", "line one\nline two")
    assert flags.defaults_text() == (
        "  -count int\n    \thow many (default 3)\n"
        "  -multi string\n    \tline one\n    \tline two\n"
        '  -name file\n    \ta file to read (default "def")\n'
        "  -on\n    \tenabled (default true)\n"
        "  -url string\n    \tThe URL\n"
        "  -v\tverbose\n")


def test_define_usage_is_kapacitors() -> None:
    flags, _ = define_flags()
    assert flags.defaults_text() == (
        '  -dbrp value\n    \tA database and retention policy pair of the form "db"."rp" '
        "the quotes are optional. The flag can be specified multiple times.\n"
        "  -file string\n    \tOptional path to a YAML or JSON template task file. If id "
        "is given in the task file, it must match the Task id given on the command line.\n"
        "  -no-reload\n    \tDo not reload the task even if it is enabled\n"
        "  -template string\n    \tOptional template ID\n"
        "  -tick string\n    \tPath to the TICKscript\n"
        "  -type string\n    \tThe task type (stream|batch)\n"
        "  -vars string\n    \tOptional path to a JSON vars file\n")


@pytest.mark.parametrize(("texts", "expected"), [
    (["db.rp"], [{"db": "db", "rp": "rp"}]),
    (['"my.db"."my.rp"'], [{"db": "my.db", "rp": "my.rp"}]),
    (['"a\\"b".rp'], [{"db": 'a"b', "rp": "rp"}]),
    (["a.b", "c.d"], [{"db": "a", "rp": "b"}, {"db": "c", "rp": "d"}]),
    (["db.rp.x"], [{"db": "db", "rp": "rp.x"}]),
])
def test_dbrp_values(texts: list[str], expected: list[dict[str, str]]) -> None:
    value = DBRPValue()
    for text in texts:
        value.set(text)
    assert value.items == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "dbrp cannot be empty"),
    ("nodot", "does not contain a '.', it must be in the form \"dbname\".\"rpname\" where "
              "the quotes are optional."),
    ('"db"rp', "dbrp must specify retention policy, do you have a missing or extra '.'?"),
])
def test_bad_dbrp_values(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace(
            "?", r"\?").replace("(", r"\(") + "$"):
        DBRPValue().set(text)


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\t\x01é\u200b') == '"a\\"b\\\\c\\n\\t\\x01é\\u200b"'


names = st.text(string.ascii_letters + "-_", min_size=1, max_size=8).filter(
    lambda n: not n.startswith("-") and n not in ("h", "help"))
words = st.text(string.ascii_letters + string.digits + "=-. ", max_size=10)


@given(st.lists(st.tuples(names, words), max_size=5), st.lists(words, max_size=4))
def test_defined_string_flags_round_trip(pairs: list[tuple[str, str]],
                                         rest: list[str]) -> None:
    """Any defined string flags, in either form, then any arguments: every value lands
    in its flag and the arguments come back unchanged when the first is not a flag."""
    flags = FlagSet("p", exit_on_error=False, output=io.StringIO())
    for name in {n for n, _ in pairs}:
        flags.string(name, "", "")
    args: list[str] = []
    last: dict[str, str] = {}
    for i, (name, value) in enumerate(pairs):
        dashes = "--" if i % 2 else "-"
        if i % 3 == 0:
            args.append(f"{dashes}{name}={value}")
        else:
            args.extend([f"{dashes}{name}", value])
        last[name] = value
    if rest and rest[0].startswith("-") and rest[0] != "-":
        rest = ["x", *rest]
    assert flags.parse(args + rest) == rest
    for name, value in last.items():
        assert flags.flags[name].value.string() == value


@given(st.booleans(), st.sampled_from(["1", "t", "T", "TRUE", "true", "True", "0", "f",
                                       "F", "FALSE", "false", "False"]))
def test_bool_flag_forms(default: bool, text: str) -> None:
    flags = FlagSet("b", exit_on_error=False, output=io.StringIO())
    value = flags.bool("x", default, "")
    flags.parse([f"-x={text}", "arg"])
    assert value.value is parse_bool(text)
    alone = BoolValue(default)
    alone.set("true")
    assert alone.value is True


def test_int_value_forms() -> None:
    value = IntValue()
    for text, number in [("10", 10), ("-0x1f", -31), ("0o17", 15), ("0b101", 5)]:
        value.set(text)
        assert value.value == number


# -- the values kapa prints as the Go client prints them ----------------------------------
#: time.Time from JSON, .Format(time.RFC822) and .Local().Format(time.RFC822), printed by
#: Go 1.19 in three zones.
GO_RFC822 = {
    "UTC": [
        ("2026-12-05T07:30:00.123456789Z", "05 Dec 26 07:30 UTC", "05 Dec 26 07:30 UTC"),
        ("0001-01-01T00:00:00Z", "01 Jan 01 00:00 UTC", "01 Jan 01 00:00 UTC"),
        ("2026-07-01T10:00:00+02:00", "01 Jul 26 10:00 +0200", "01 Jul 26 08:00 UTC"),
        ("2026-01-01T10:00:00-05:30", "01 Jan 26 10:00 -0530", "01 Jan 26 15:30 UTC"),
    ],
    "Europe/Paris": [
        ("2026-12-05T07:30:00.123456789Z", "05 Dec 26 07:30 UTC", "05 Dec 26 08:30 CET"),
        ("0001-01-01T00:00:00Z", "01 Jan 01 00:00 UTC", "01 Jan 01 00:09 LMT"),
        ("2026-07-01T10:00:00+02:00", "01 Jul 26 10:00 CEST", "01 Jul 26 10:00 CEST"),
        ("1999-12-31T23:59:59.5Z", "31 Dec 99 23:59 UTC", "01 Jan 00 00:59 CET"),
    ],
    "America/New_York": [
        ("0001-01-01T00:00:00Z", "01 Jan 01 00:00 UTC", "31 Dec 00 19:03 LMT"),
        ("2026-07-01T10:00:00+02:00", "01 Jul 26 10:00 +0200", "01 Jul 26 04:00 EDT"),
        ("2026-01-01T10:00:00-05:30", "01 Jan 26 10:00 -0530", "01 Jan 26 10:30 EST"),
    ],
}


@pytest.mark.parametrize("zone", sorted(GO_RFC822))
def test_times_print_as_go_rfc822(zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from kapa_core.cli.kapa.output import rfc822

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for text, as_is, local in GO_RFC822[zone]:
            assert (rfc822(text), rfc822(text, local=True)) == (as_is, local), text
    finally:
        monkeypatch.undo()
        time.tzset()


def test_go_json_and_humanize() -> None:
    from kapa_core.cli.kapa.output import go_json, humanize_bytes, join_path

    assert go_json({"b": [1.0, 1.5, 1e21, 1e-7, True, None], "a": "<&>"}) == (
        '{"a":"\\u003c\\u0026\\u003e","b":[1,1.5,1e+21,1e-7,true,null]}')
    assert [humanize_bytes(n) for n in (0, 9, 10, 999, 1000, 1500, 10_500, 2_000_000)] == [
        "0 B", "9 B", "10 B", "999 B", "1.0 kB", "1.5 kB", "10 kB", "2.0 MB"]
    assert join_path("/kapacitor/v1/tasks", "") == "/kapacitor/v1/tasks"
    assert join_path("/kapacitor/v1/tasks", "../x/./y") == "/kapacitor/v1/x/y"
