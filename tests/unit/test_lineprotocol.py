"""Line protocol parsing: every value type, escape, precision and error."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapa_core.models import lineprotocol
from kapa_core.models.lineprotocol import parse, pieces
from kapa_core.models.point import Point, to_line


@pytest.fixture(autouse=True, params=["compiled", "pure Python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both paths (the compiled one when the extension is built)."""
    if request.param == "compiled" and not lineprotocol.COMPILED:
        pytest.skip(lineprotocol.implementation())
    monkeypatch.setattr(lineprotocol, "COMPILED", request.param == "compiled")
    return str(request.param)


def one(line: str, **kwargs) -> Point:
    result = parse(line, now_ns=42, **kwargs)
    assert result.errors == [], result.errors
    (point,) = result.points
    return point


def error(line: str) -> str:
    result = parse(line, now_ns=42)
    assert result.points == []
    (err,) = result.errors
    return err.reason


def test_all_value_types() -> None:
    p = one('m f=1.5,neg=-2,exp=1e3,half=.5,i=12i,ni=-3i,u=7u,b=t,bb=FALSE,s="hi" 100')
    assert p.fields == {"f": 1.5, "neg": -2.0, "exp": 1000.0, "half": 0.5, "i": 12,
                        "ni": -3, "u": 7, "b": True, "bb": False, "s": "hi"}
    assert type(p.fields["f"]) is float and type(p.fields["i"]) is int
    assert p.time == 100


@pytest.mark.parametrize("text", ["t", "T", "true", "True", "TRUE"])
def test_true_forms(text: str) -> None:
    assert one(f"m b={text}").fields["b"] is True


@pytest.mark.parametrize("text", ["f", "F", "false", "False", "FALSE"])
def test_false_forms(text: str) -> None:
    assert one(f"m b={text}").fields["b"] is False


def test_escapes_in_names_tags_and_strings() -> None:
    p = one(r'my\ meas\,x,tag\ k\=1=va\,l\ ue fi\=eld="a \"q\" \\ b, c d" 5')
    assert p.name == "my meas,x"
    assert p.tags == {"tag k=1": "va,l ue"}
    assert p.fields == {"fi=eld": 'a "q" \\ b, c d'}
    assert p.time == 5


def test_tags_sorted_and_db_rp_set() -> None:
    p = one("cpu,z=1,a=2,m=3 v=1 1", database="db", retention_policy="rp")
    assert list(p.tags) == ["a", "m", "z"]
    assert (p.database, p.retention_policy) == ("db", "rp")


@pytest.mark.parametrize(("precision", "factor"), [
    ("n", 1), ("ns", 1), ("", 1), ("u", 1_000), ("µ", 1_000), ("ms", 1_000_000),
    ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000)])
def test_precisions(precision: str, factor: int) -> None:
    assert one("m v=1 7", precision=precision).time == 7 * factor


def test_bad_precision_raises() -> None:
    with pytest.raises(ValueError, match="invalid precision 'x'"):
        parse("m v=1", precision="x")


def test_missing_timestamp_is_now() -> None:
    assert one("m v=1").time == 42


def test_comments_blank_lines_and_crlf() -> None:
    result = parse("# comment\n\n   \n\t\0\nm v=1 1\nm v=2 2\n", now_ns=0)
    assert [p.fields["v"] for p in result.points] == [1.0, 2.0]
    assert result.errors == []
    # Kapacitor keeps the \r of a CRLF line in it: taken from kapacitord's answers
    result = parse("m v=1 1\r\nm v=2\r\n\r\n", now_ns=0)
    assert [(e.text, e.reason) for e in result.errors] == [
        ("m v=1 1\r", "bad timestamp"), ("m v=2\r", "invalid number"),
        ("\r", "missing fields")]


def test_last_duplicate_field_wins() -> None:
    assert one("m v=1,v=2").fields == {"v": 2.0}


@pytest.mark.parametrize(("line", "reason"), [
    ("m", "missing fields"),
    ("m ", "invalid field format"),
    ("m v=", "missing field value"),
    ("m =1", "missing field key"),
    ("m v", "invalid field format"),
    ("m,t v=1", "missing tag value"),
    ("m,t= v=1", "missing tag value"),
    ("m,=x v=1", "missing tag key"),
    (",t=1 v=1", "missing measurement"),
    ("m v=abc", "invalid boolean"),
    ("m v=1x", "invalid number"),
    ("m v=nan", "invalid number"),
    ("m v=1_0", "invalid number"),
    ("m v=1.5i", "invalid number"),
    ("m v=-1u", "invalid number"),
    ("m v=+1i", "invalid boolean"),
    ("m v=i", "invalid boolean"),
    ("m v=1ii", "invalid number"),
    ("m v=1e", "invalid float"),
    ("m v=1\"", "invalid number"),
    ("m v=1,", "invalid field format"),
    ("m,h=1=2 v=1", "invalid tag format"),
    ("m,h=1,h=2 v=1", "duplicate tags"),
    ("m,b=1,a=2,b=3 v=1", "duplicate tags"),
    (r"m,h=ab\ v=1", "invalid tag format"),
    (r"m\\ v=1 1", "invalid field format"),
    ("m v=1 -", 'strconv.ParseInt: parsing "-": invalid syntax'),
    ("m v=1 9223372036854775807", "time outside range -9223372036854775806 - 9223372036854775806"),
    ('m v="open', "unbalanced quotes"),
    ("m v=1 12x", "bad timestamp"),
    ("m v=1 1 2", "point is invalid"),
    ("m v=1 1\t", "bad timestamp"),
    ("m v=1e309", "invalid float"),
    ("m v=-1e309", "invalid float"),
    ("m v=" + "9" * 400, "invalid float"),
    ("m v=1E+400", "invalid float"),
    ("m v=NaN", "invalid number"),
    ("m v=-inf", "invalid number"),
    ("m v=-Infinity", "invalid number"),
    ("m v=inf", "invalid boolean"),
    ("m v=Infinity", "invalid boolean"),
    ("m v=+inf", "invalid boolean"),
    ("m v=+1", "invalid boolean"),
    ("m v=1 99999999999999999999",
     'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
    ("m v=99999999999999999999i", "unable to parse integer 99999999999999999999: "
     'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
    ("m v=9223372036854775808i", "unable to parse integer 9223372036854775808: "
     'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
])
def test_error_reasons(line: str, reason: str) -> None:
    assert error(line) == reason


@pytest.mark.parametrize("line", ["m v=1 ", "m v=1  ", "m v=1 \t", "m v=1\t ",
                                  "m,t=a v=1 ", 'm s="x" ', 'm s="a\\"b" '])
def test_blanks_after_the_fields_mean_no_timestamp(line: str) -> None:
    # InfluxDB's scanTime skips blanks, then finds no timestamp: the point gets "now".
    if line == "m v=1\t ":  # a tab inside the value is part of the number
        assert error(line) == "invalid number"
        return
    assert one(line).time == 42


@pytest.mark.parametrize(("line", "ts"), [("m v=1 \t7", 7), ("m v=1  7", 7),
                                          ("m v=1 7 ", 7), ("m v=1 \t 7  ", 7),
                                          ('m s="x" \t7', 7), ("m v=1 \x007", 7)])
def test_blanks_around_a_timestamp(line: str, ts: int) -> None:
    assert one(line).time == ts


def test_no_infinity_or_nan_from_a_write() -> None:
    result = parse("m a=1e308,b=-1e308,c=1e-400 1\nm v=1e309 2\nm v=nan 3\n", now_ns=0)
    assert [p.fields for p in result.points] == [{"a": 1e308, "b": -1e308, "c": 0.0}]
    assert [(e.line, e.reason) for e in result.errors] == [(2, "invalid float"),
                                                            (3, "invalid number")]


def test_bad_lines_are_numbered_and_good_lines_kept() -> None:
    result = parse("a v=1 1\nb v= 2\n\nc v=3 3\nd 4\n", now_ns=0)
    assert [p.name for p in result.points] == ["a", "c"]
    assert [(e.line, e.reason) for e in result.errors] == [(2, "missing field value"),
                                                            (5, "invalid field format")]
    assert str(result.errors[0]) == "unable to parse 'b v= 2': missing field value (line 2)"


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    # Kapacitor accepts them (its JSON writes each as \ufffd); kapa-core keeps the point
    result = parse(b"a v=1 1\nb\xff,h=\xe2\x82 s=\"\xc3\" 2\nc v=1 3\n", now_ns=0)
    assert result.errors == []
    assert [(p.name, p.tags, p.fields) for p in result.points][1] == (
        "b\ufffd", {"h": "\ufffd\ufffd"}, {"s": "\ufffd"})


def test_lone_surrogates_in_text_are_an_error_for_that_line_only() -> None:
    result = parse("a v=1 1\nb\udcff v=1 2\nc v=1 3\n", now_ns=0)
    assert [p.name for p in result.points] == ["a", "c"]
    assert result.errors[0].line == 2 and result.errors[0].reason == "invalid UTF-8"


def test_long_line_is_truncated_in_the_message() -> None:
    assert parse("m v=" + "x" * 500, now_ns=0).errors[0].text == "m v=" + "x" * 500
    result = parse("m v=" + "x" * 70_000, now_ns=0)
    assert len(result.errors[0].text) == 65536 and result.errors[0].text.endswith("x...")


names = st.text(alphabet=string.ascii_letters + string.digits + " ,=_-.\"'éü", min_size=1,
                max_size=12).filter(lambda s: not s.startswith((" ", "#")) and
                                    not s.endswith("\\"))
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
            max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(name=names, tags=st.dictionaries(names, names, max_size=3),
       fields=st.dictionaries(names, values, min_size=1, max_size=4),
       time=st.integers(min_value=-(2**62), max_value=2**62))
def test_to_line_round_trips(name, tags, fields, time) -> None:
    point = Point(name, dict(sorted(tags.items())), fields, time)
    result = parse(to_line(point), now_ns=0)
    assert result.errors == []
    assert result.points == [point]


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_input_never_raises(body) -> None:
    result = parse(body, now_ns=0)
    assert len(result.points) + len(result.errors) <= max(1, len(body)) + 1


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_pieces_cut_after_newlines_and_keep_line_numbers(size: int) -> None:
    body = b"".join(b"m v=%d %d\n" % (i, i) if i % 7 else b"bad %d\n" % i
                    for i in range(200)) + b"m v=1 1"  # no final newline
    whole = parse(body, now_ns=0)
    points, errors, bad = [], [], 0
    ends = []
    for start, end, first in pieces(body, size):
        assert start == (ends[-1] if ends else 0)
        assert end == len(body) or body[end - 1:end] == b"\n"
        ends.append(end)
        result = parse(body[start:end], now_ns=0, first_line=first, max_errors=3)
        points += result.points
        errors += result.errors
        bad += result.bad_lines
        assert len(result.errors) <= 3
    assert ends[-1] == len(body)
    assert points == whole.points
    assert bad == whole.bad_lines == len(whole.errors) == 29
    assert {(e.line, e.reason) for e in errors} <= {(e.line, e.reason) for e in whole.errors}
    assert whole.errors[1].line == 8


def test_max_errors_keeps_the_first_bad_lines_and_counts_all() -> None:
    result = parse(b"x\n" * 1000 + b"m v=1 1\n", now_ns=0, max_errors=2)
    assert [e.line for e in result.errors] == [1, 2]
    assert result.bad_lines == 1000
    assert len(result.points) == 1


# What follows was taken from kapacitord 1.5.7's answers (tests/compat/lineprotocol_check.py).

@pytest.mark.parametrize(("line", "name", "tags"), [
    (r"m,h=1\\ 2 v=1", "m", {"h": "1\\ 2"}),  # the space after a backslash is escaped
    (r"m,h=a\ b v=1", "m", {"h": "a b"}),
    (r"m,h=a\"b,k\ey=1 v=1", "m", {"h": 'a\\"b', "k\\ey": "1"}),
    (r"m,h=a\\\ b v=1", "m", {"h": "a\\\\ b"}),
    (r"m\=x v=1", "m=x", {}),
    (r'm\"x v=1', 'm"x', {}),
    (r"m\\x v=1", "m\\\\x", {}),
    (r"m\ax v=1", "m\\ax", {}),
])
def test_measurement_and_tag_escapes(line: str, name: str, tags: dict) -> None:
    point = one(line)
    assert (point.name, point.tags) == (name, tags)


def test_field_key_escapes() -> None:
    point = one(r'm v\ w=1,v\,x=2i,v\=y=t,v\"z="s",v\\q=1.5 1')
    assert point.fields == {"v w": 1.0, "v,x": 2, "v=y": True, 'v"z': "s", "v\\\\q": 1.5}


def test_quoted_string_and_escaped_newline_stay_in_the_line() -> None:
    result = parse('m,h=a s="first\nsecond",v=1 1\nm,h=a\\\nb v=2 2\nm v=3 3', now_ns=0)
    assert result.errors == []
    assert [(p.tags, p.fields) for p in result.points] == [
        ({"h": "a"}, {"s": "first\nsecond", "v": 1.0}), ({"h": "a\\\nb"}, {"v": 2.0}),
        ({}, {"v": 3.0})]


def test_comment_with_an_open_quote_takes_the_next_lines() -> None:
    result = parse('m v=1 1\n# x="open\nm v=2 2\nm v=3 3', now_ns=0)
    assert [p.fields["v"] for p in result.points] == [1.0] and result.errors == []


def test_backslash_ending_the_body_reads_a_zero_byte() -> None:
    assert parse("m v=1 1\\", now_ns=0).errors[0].text == "m v=1 1\\\x00"
    assert parse("m v=1 1\\\n", now_ns=0).errors[0].text == "m v=1 1\\"


def test_blanks_before_the_fields_are_skipped() -> None:
    assert one("m \tv=1 1").fields == {"v": 1.0}
    assert one('m \t="s" 1').fields == {}  # the key is empty: InfluxDB drops the field


def test_time_of_a_point_without_one_is_truncated_to_the_precision() -> None:
    result = parse("m v=1", precision="s", now_ns=1_500_000_001)
    assert result.points[0].time == 1_000_000_000
