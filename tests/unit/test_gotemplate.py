"""Go text/template semantics of kapa_core.gotemplate: outputs and errors as Go gives them."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapa_core.alert import gojson
from kapa_core.gotemplate import GoTime, StringMap, Template, TemplateError, go_format, parse
from kapa_core.gotemplate import parser as gparser
from kapa_core.models.duration import Duration


class Host:
    """A Go struct stand-in: attributes are fields, bound methods are methods."""

    def __init__(self) -> None:
        self.Name = "db1"
        self.Load = 0.5
        self.Nil = None
        self._secret = "hidden"

    def Greet(self, who: str, punct: str = "!") -> str:
        return f"hi {who}{punct}"

    def Fail(self) -> str:
        raise RuntimeError("boom")

    @property
    def Upper(self) -> str:
        return self.Name.upper()


class Values(dict):
    """A Go named map type with a method: methods win over keys."""

    def Size(self) -> int:
        return len(self)


DATA: dict[str, Any] = {
    "Name": "cpu", "Group": "host=a", "ID": "cpu:host=a", "Level": "CRITICAL",
    "Tags": StringMap(host="a", dc="eu"), "Fields": {"value": 3.14159, "n": 5, "nil": None},
    "Time": GoTime(1_500_000_000), "Duration": Duration(90_000_000_000),
    "List": [1, "two", None, 4.5], "Empty": [], "Map": {"b": 2, "a": 1, "c": 3},
    "Nums": [3, 1, 2], "Nested": [[1, 2], [3, 4]], "Host": Host(), "Flag": True,
    "Zero": 0, "Str": "héllo", "Values": Values(x=1, Size=99), "Fn": lambda: "called",
}


def render(text: str, data: Any = DATA, **kwargs: Any) -> str:
    return parse(text, "t", **kwargs).execute(data)


# -- text, actions, trim markers, comments --------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("plain text", "plain text"),
    ("", ""),
    ("{{ .Name }}:{{ .Group }}", "cpu:host=a"),
    ("{{ .ID }} is {{ .Level }}", "cpu:host=a is CRITICAL"),
    ("{{.Name}}", "cpu"),
    ("a  {{- .Name -}}  b", "acpub"),
    ("a \n\t {{- .Name }} b", "acpu b"),
    ("{{ .Name -}} \n x", "cpux"),
    ("{{ 3 -}} x {{- 3 }} {{ -3 }}", "3x3 -3"),
    ("{{-3}}", "-3"),
    ("{{/* a comment */}}x", "x"),
    ("a {{- /* trimmed */ -}} b", "ab"),
    ("{{/* multi\nline */}}y", "y"),
    ("{{ .Name }}{{/* c */}}{{ .Level }}", "cpuCRITICAL"),
    ("{{ .Name\n}}", "cpu"),
    ("{{ . | len }}", str(len(DATA))),
])
def test_text_actions_trim_and_comments(text: str, expected: str) -> None:
    assert render(text) == expected


# -- values and %v printing -----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("{{ 1.0 }}", "1"),
    ("{{ 1e21 }}", "1e+21"),
    ('{{ printf "%v" 1e21 }}', "1e+21"),
    ("{{ 0.5 }} {{ 3.14 }} {{ 100000.0 }}", "0.5 3.14 100000"),
    ("{{ 1e6 }} {{ 123456789.0 }} {{ 0.0001 }} {{ 0.00001 }}", "1e+06 1.23456789e+08 0.0001 1e-05"),
    ("{{ 0x1F }} {{ 'a' }} {{ '\\n' }} {{ 1e3 }} {{ 017 }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }}",
     "31 97 10 1000 15 15 5 1000"),
    ("{{ -0x10 }} {{ +5 }} {{ .5 }} {{ 1. }} {{ 2i }}", "-16 5 0.5 1 (0+2i)"),
    ('{{ "a\\tb\\u00e9\\x41" }} {{ `raw\\n` }}', "a\tbéA raw\\n"),
    ("{{ true }} {{ false }}", "true false"),
    ("{{ .List }}", "[1 two <nil> 4.5]"),
    ("{{ .Map }}", "map[a:1 b:2 c:3]"),
    ("{{ .Tags }}", "map[dc:eu host:a]"),
    ("{{ .Nested }}", "[[1 2] [3 4]]"),
    ("{{ .Missing }}", "<no value>"),
    ("{{ .Fields.nil }}", "<no value>"),
    ("{{ .Tags.missing }}", "<no value>"),
    ("{{ .Missing.Deeper }}", "<no value>"),
    ("{{ .Time }}", "1970-01-01 00:00:01.5 +0000 UTC"),
    ("{{ .Duration }}", "1m30s"),
    ("{{ .Host.Name }} {{ .Host.Load }} {{ .Host.Upper }}", "db1 0.5 DB1"),
    ('{{ .Host.Greet "bob" }} {{ .Host.Greet "bob" "?" }}', "hi bob! hi bob?"),
    ('{{ "bob" | .Host.Greet }}', "hi bob!"),
    ("{{ .Values.Size }} {{ .Values.x }}", "2 1"),
    ("{{ $ }}", go_format(DATA)),
])
def test_values_print_like_go(text: str, expected: str) -> None:
    assert render(text) == expected


def test_nil_data_is_no_value() -> None:
    assert render("{{ . }}|{{ .Name }}", None) == "<no value>|<no value>"


@pytest.mark.parametrize(("value", "expected"), [
    (None, "<nil>"), (True, "true"), (False, "false"), (42, "42"), (-7, "-7"),
    (1.0, "1"), (0.5, "0.5"), (3.14, "3.14"), (123456789.0, "1.23456789e+08"),
    (1e21, "1e+21"), (1e20, "1e+20"), (1e-5, "1e-05"), (0.0001, "0.0001"), (-0.0, "-0"),
    (100000.0, "100000"), (1e6, "1e+06"), (2.5e-8, "2.5e-08"), (1e100, "1e+100"),
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), ("text", "text"),
    ([1, "a", [2.5]], "[1 a [2.5]]"), ((1, 2), "[1 2]"), ({"b": 1, "a": None}, "map[a:<nil> b:1]"),
    ({2: "x", 1: "y"}, "map[1:y 2:x]"), (Duration(1_500_000), "1.5ms"),
    (GoTime(0), "1970-01-01 00:00:00 +0000 UTC"),
    (complex(1, -2), "(1-2i)"), (b"hi", "[104 105]"),
])
def test_go_format(value: Any, expected: str) -> None:
    assert go_format(value) == expected


# -- printf ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    ('"%0.3f" 3.14159', "3.142"),
    ('"%.2f" 2.675', "2.67"),
    ('"%5d|%-5d|%05d|%+d|% d" 42 42 42 42 42', "   42|42   |00042|+42| 42"),
    ('"%-10s|%10s|%.2s|%5.1s" "abc" "abc" "abc" "abc"', "abc       |       abc|ab|    a"),
    ('"%x %X %o %O %b %#x %#o %#b" 255 255 8 8 5 255 8 5', "ff FF 10 0o10 101 0xff 010 0b101"),
    ('"%x|%X|% x|%#x" "hi" "hi" "hi" "hi"', "6869|6869|68 69|0x6869"),
    ('"%q %q %+q %#q %#q" "a\\"b" "\\n" "é" "ab" "a`b"', '"a\\"b" "\\n" "\\u00e9" `ab` "a`b"'),
    ('"%c %q %U %#U" 65 97 233 233', "A 'a' U+00E9 U+00E9 'é'"),
    ('"%t %5t" true false', "true false"),
    ('"%e %E %.2e" 1234.5678 0.000012 1234.5678', "1.234568e+03 1.200000E-05 1.23e+03"),
    ('"%g %G %.3g %g" 1e21 1e-7 1234.5678 100000.0', "1e+21 1E-07 1.23e+03 100000"),
    ('"%f %F %.0f %.1f" 1.5 1.5 2.5 0.05', "1.500000 1.500000 2 0.1"),
    ('"%8.3f|%-8.3f|%08.3f|%+.1f" 3.14159 3.14159 -3.14159 2.0', "   3.142|3.142   |-003.142|+2.0"),
    ('"%v|%+v|%#v" 1.5 1.5 1.5', "1.5|1.5|1.5"),
    ('"%v %d %s" .Duration .Duration .Duration', "1m30s 90000000000 1m30s"),
    ('"%s %d" .Time.Month .Time.Month', "January 1"),
    ('"%T %T %T %T %T %T %T" 1 1.5 "s" true .List .Map .Time',
     "int float64 string bool []interface {} map[string]interface {} time.Time"),
    ('"%v|%d|%s" .List .Nums .Tags', "[1 two <nil> 4.5]|[3 1 2]|map[dc:eu host:a]"),
    ('"%#v %#v %#v" .Map "x" 3', 'map[string]interface {}{"a":1, "b":2, "c":3} "x" 3'),
    ('"%*d|%-*d|%.*f" 5 1 5 1 2 3.14159', "    1|1    |3.14"),
    ('"%[2]d %[1]d %d" 1 2', "2 1 2"),
    ('"100%%"', "100%"),
    ('"%d" "hi"', "%!d(string=hi)"),
    ('"%s" 5', "%!s(int=5)"),
    ('"%d" 1.5', "%!d(float64=1.5)"),
    ('"%t" 1', "%!t(int=1)"),
    ('"%d"', "%!d(MISSING)"),
    ('"%d %s" 1', "1 %!s(MISSING)"),
    ('"%d" 1 "x" 2', "1%!(EXTRA string=x, int=2)"),
    ('"%d" .Missing', "%!d(<nil>)"),
    ('"%v" .Missing', "<nil>"),
    ('"%z" 1', "%!z(int=1)"),
    ('"%"', "%!(NOVERB)"),
    ('"%*d" "x" 1', "%!(BADWIDTH)1"),
    ('"%[3]d" 1', "%!d(BADINDEX)"),
    ('"%.1v %6.3v" 3.14159 3.14159', "3   3.14"),
    ('"%x %X %b" 1.0 -2.5 1.0', "0x1p+00 -0X1.4P+01 4503599627370496p-52"),
    ('"%#g %#.3x" 1.0 1.0', "1.00000 0x1.000p+00"),
    ('"%.3d|%8.3d|%+08d|%.0d|" 7 7 -7 0', "007|     007|-0000007||"),
])
def test_printf(args: str, expected: str) -> None:
    assert render("{{ printf " + args + " }}") == expected


def test_print_and_println_spacing() -> None:
    assert render('{{ print 1 2 "a" 3 "b" "c" nil }}') == "1 2a3bc<nil>"
    assert render('{{ println 1 "a" }}') == "1 a\n"


# -- control structures ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ('{{ if eq .Level "OK" }}alive{{ else }}dead{{ end }}', "dead"),
    ('{{ if eq .Level "OK" }}a{{ else if eq .Level "CRITICAL" }}c{{ else }}x{{ end }}', "c"),
    ("{{ if .Empty }}a{{ else if .Zero }}b{{ else if .Flag }}c{{ end }}", "c"),
    ("{{ if .Missing }}yes{{ else }}no{{ end }}", "no"),
    ('{{ if "" }}a{{ end }}{{ if 0.0 }}b{{ end }}{{ if .Map }}c{{ end }}{{ if .Host }}d{{ end }}',
     "cd"),
    ("{{ with .Tags.host }}h={{ . }}{{ end }}", "h=a"),
    ("{{ with .Missing }}x{{ else }}none{{ end }}", "none"),
    ("{{ range .Nums }}{{ . }},{{ end }}", "3,1,2,"),
    ("{{ range $i, $e := .Nums }}{{ $i }}={{ $e }};{{ end }}", "0=3;1=1;2=2;"),
    ("{{ range $e := .Nums }}{{ $e }}{{ end }}", "312"),
    ("{{ range $k, $v := .Map }}{{ $k }}={{ $v }};{{ end }}", "a=1;b=2;c=3;"),
    ("{{ range .Map }}{{ . }}{{ end }}", "123"),
    ("{{ range .Empty }}x{{ else }}empty{{ end }}", "empty"),
    ("{{ range .Missing }}x{{ else }}none{{ end }}", "none"),
    ("{{ range $i, $e := .Empty }}{{ else }}{{ $e }}{{ end }}", "[]"),
    ("{{ range .Nums }}{{ if eq . 1 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "32"),
    ("{{ range .Nums }}{{ if eq . 1 }}{{ break }}{{ end }}{{ . }}{{ end }}", "3"),
    ("{{ range .Nested }}{{ range . }}{{ . }}{{ break }}{{ end }};{{ end }}", "1;3;"),
    ("{{ range .Nums }}{{ $.Name }}{{ end }}", "cpucpucpu"),
    ('{{ define "w" }}<{{ . }}>{{ end }}{{ template "w" .Name }}{{ template "w" }}',
     "<cpu><<no value>>"),
    ('{{ template "later" 1 }}{{ define "later" }}[{{ . }}]{{ end }}', "[1]"),
    ('{{ block "b" .Level }}[{{ . }}]{{ end }}', "[CRITICAL]"),
    ('{{ define "list" }}{{ range . }}({{ template "item" . }}){{ end }}{{ end }}'
     '{{ define "item" }}{{ . }}{{ end }}{{ template "list" .Nums }}', "(3)(1)(2)"),
])
def test_control_structures(text: str, expected: str) -> None:
    assert render(text) == expected


def test_define_only_template_executes_its_definition() -> None:
    assert parse('{{ define "t" }}body{{ end }}', "other").execute({}) == ""
    assert parse('{{ define "t" }}body{{ end }}', "t").execute({}) == "body"


# -- variables ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("{{ $x := 3 }}{{ $x }}{{ if gt $x 2 }} big{{ end }}", "3 big"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
    ("{{ $x := 1 }}{{ with $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21"),
    ("{{ $x := 0 }}{{ if .Zero }}{{ $x := 1 }}{{ else }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
    ("{{ $x := 0 }}{{ if .Zero }}{{ $x := 1 }}{{ else }}{{ $x }}{{ end }}", "0"),
    ("{{ $x := 1 }}{{ $x := $x }}{{ $x }}", "1"),
    ("{{ $i := 9 }}{{ range $i = .Nums }}{{ end }}{{ $i }}", "2"),
    ("{{ $n := .Name }}{{ range .Nums }}{{ $n }}{{ end }}", "cpucpucpu"),
    ("{{ range .Nums }}{{ $y := . }}{{ $y }}{{ end }}", "312"),
    ("{{ $h := .Host }}{{ $h.Name }} {{ $.Host.Name }}", "db1 db1"),
    ("{{ $m := .Missing }}{{ $m.X }}", "<no value>"),
    ("{{ $ = 5 }}{{ $ }}", "5"),
    ('{{ define "v" }}{{ $ }}{{ end }}{{ $x := 1 }}{{ template "v" 7 }}', "7"),
    ("{{ ($x := 4) }}{{ $x }}", "44"),
])
def test_variables(text: str, expected: str) -> None:
    assert render(text) == expected


# -- functions ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ('{{ len .Fields }} {{ and 1 0 }} {{ or 0 "x" }} {{ not true }} {{ not .Empty }}',
     "3 0 x false true"),
    ("{{ and 1 2 3 }} {{ or 0 \"\" }}|{{ and .Flag .Name }}", "3 |cpu"),
    ("{{ 0 | and 1 }} {{ 5 | or 0 }}", "0 5"),
    ('{{ index .Tags "host" }}|{{ index .Tags "missing" }}|', "a||"),
    ('{{ index .Fields "value" }}|{{ index .Fields "missing" }}', "3.14159|<no value>"),
    ("{{ index .Nested 1 0 }} {{ index .List 1 }} {{ index .Str 0 }}", "3 two 104"),
    ('{{ index .Fields "value" | printf "%0.3f" }}', "3.142"),
    ("{{ slice .Nums 1 }} {{ slice .Nums 1 2 }} {{ slice .Nums }} {{ slice .Str 1 3 }}",
     "[1 2] [1] [3 1 2] é"),
    ("{{ len .Str }} {{ len .Nums }} {{ len .Map }} {{ len .Tags }}", "6 3 3 2"),
    ('{{ eq 1 2 1 }} {{ eq "a" "b" }} {{ ne 1 2 }} {{ eq .Missing "x" }} {{ eq nil nil }}',
     "true false true false true"),
    ('{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }} {{ lt .Duration 1 }}',
     "true true true false false"),
    ('{{ eq .Time .Time }} {{ eq .Level "CRITICAL" "OK" }}', "true true"),
    ("{{ html \"<a href='x'>&\" }}", "&lt;a href=&#39;x&#39;&gt;&amp;"),
    ('{{ js "a\'b\\"c<d>=&" }}', "a\\'b\\\"c\\u003Cd\\u003E\\u003D\\u0026"),
    ('{{ urlquery "a b&c=d/é" }}', "a+b%26c%3Dd%2F%C3%A9"),
    ("{{ html .Missing }}", "&lt;no value&gt;"),
    ("{{ call .Fn }}", "called"),
    ('{{ printf "%d-%d" 1 2 | printf "%s!" }}', "1-2!"),
    ('{{ "x" | printf "%s-%s" "y" }}', "y-x"),
    ("{{ (printf \"%d\" 3) }} {{ (.Time).Unix }} {{ len (index .List 1) }}", "3 1 3"),
])
def test_builtin_functions(text: str, expected: str) -> None:
    assert render(text) == expected


def test_and_or_short_circuit() -> None:
    def explode() -> str:
        raise AssertionError("must not be evaluated")
    funcs = {"explode": explode}
    assert render("{{ and 0 explode }}|{{ or 1 explode }}", funcs=funcs) == "0|1"


def test_caller_functions() -> None:
    seen: list[Any] = []

    def record(*args: Any) -> str:
        seen.append(args)
        return "ok"
    funcs = {"upper": str.upper, "record": record, "len": lambda v: "mine"}
    assert render("{{ upper .Name }} {{ .Name | upper }} {{ len 1 }}", funcs=funcs) == \
        "CPU CPU mine"
    assert render("{{ record .Missing nil 1 }}", funcs=funcs) == "ok"
    assert seen == [(None, None, 1)]


def test_caller_function_errors_and_arity() -> None:
    def bad(x: int) -> int:
        raise ValueError(f"bad {x}")
    with pytest.raises(TemplateError, match=r'executing "t" at <bad 1>: error calling bad: bad 1'):
        render("{{ bad 1 }}", funcs={"bad": bad})
    with pytest.raises(TemplateError, match="wrong number of args for bad: want 1 got 2"):
        render("{{ bad 1 2 }}", funcs={"bad": bad})
    with pytest.raises(TemplateError, match="not a valid identifier"):
        parse("x", funcs={"no-dash": str})
    with pytest.raises(TemplateError, match="not a function"):
        parse("x", funcs={"f": 3})  # type: ignore[dict-item]


def test_break_and_continue_may_be_function_names() -> None:
    assert render("{{ break }}", funcs={"break": lambda: "b"}) == "b"


# -- GoTime and Duration --------------------------------------------------------------------------
T = GoTime(1_700_000_123_456_789_000)  # 2023-11-14 22:15:23.456789 UTC, a Tuesday


@pytest.mark.parametrize(("layout", "expected"), [
    ("2006-01-02T15:04:05Z07:00", "2023-11-14T22:15:23Z"),
    ("2006-01-02T15:04:05.000Z07:00", "2023-11-14T22:15:23.456Z"),
    ("2006-01-02T15:04:05.999999999Z07:00", "2023-11-14T22:15:23.456789Z"),
    ("2006-01-02 15:04:05.000000000 -0700 MST", "2023-11-14 22:15:23.456789000 +0000 UTC"),
    ("Mon Jan _2 15:04:05 2006", "Tue Nov 14 22:15:23 2023"),
    ("Monday, January 2, 2006 3:04:05 PM", "Tuesday, November 14, 2023 10:15:23 PM"),
    ("03:04:05pm -07:00 -07 Z0700 Z07", "10:15:23pm +00:00 +00 Z Z"),
    ("06 1 2 002 __2 _2", "23 11 14 318 318 14"),
    ("15:04:05,000 .9 .99", "22:15:23,456 .4 .45"),
    ("Janet", "Janet"),
    ("_2006", "_2023"),
])
def test_gotime_format(layout: str, expected: str) -> None:
    assert T.Format(layout) == expected
    assert render("{{ .T.Format " + gojson.dumps(layout) + " }}", {"T": T}) == expected


def test_gotime_methods() -> None:
    t = GoTime(1_500_000_000)
    assert t.go_string() == "1970-01-01 00:00:01.5 +0000 UTC" == t.String() == str(t)
    assert GoTime(1_000_000_000).go_string() == "1970-01-01 00:00:01 +0000 UTC"
    assert (T.Year(), T.Day(), T.Hour(), T.Minute(), T.Second(), T.Nanosecond(), T.YearDay()) == \
        (2023, 14, 22, 15, 23, 456789000, 318)
    assert (T.Unix(), T.UnixMilli(), T.UnixNano()) == (1700000123, 1700000123456,
                                                       1_700_000_123_456_789_000)
    assert T.UTC() is T and GoTime(T.UnixNano()) == T and GoTime(0) != T
    assert go_format(T.Month()) == "November" and go_format(T.Weekday()) == "Tuesday"
    assert T.Sub(GoTime(T.ns - 90_000_000_000)) == Duration(90_000_000_000)
    assert T.Add(1).After(T) and GoTime(0).Before(T) and T.Equal(GoTime(T.ns))
    assert render("{{ .T.Month }} {{ .T.Weekday }} {{ .T.Unix }} {{ .T.Month.String }}",
                  {"T": T}) == "November Tuesday 1700000123 November"
    assert GoTime(-1).go_string() == "1969-12-31 23:59:59.999999999 +0000 UTC"


def test_duration_prints_with_go_string() -> None:
    assert Duration(90_000_000_000).go_string() == "1m30s"
    assert render("{{ .D }}|{{ printf \"%v\" .D }}|{{ .L }}", {"D": Duration(90_000_000_000),
                                                            "L": [Duration(1_000)]}) == \
        "1m30s|1m30s|[1µs]"


# -- html mode ------------------------------------------------------------------------------------
def test_html_mode_escapes_action_output() -> None:
    template = parse("<b>{{ json . }}</b>", "details", html=True, funcs={"json": gojson.dumps})
    assert template.execute({"a": 1}) == "<b>{&#34;a&#34;:1}</b>"
    data = {"k": "<'\"&+>\0", "Missing": None}
    assert render("{{ .k }}|{{ .Missing }}|{{ .Nope }}|{{ \"a+b\" }}", data, html=True) == \
        "&lt;&#39;&#34;&amp;&#43;&gt;\ufffd|||a&#43;b"
    assert render('{{ html "<x>" }}|{{ "<x>" | html }}|{{ print nil }}', data, html=True) == \
        "&lt;x&gt;|&lt;x&gt;|&lt;nil&gt;"
    assert render("{{ .T }}", {"T": GoTime(0)}, html=True) == \
        "1970-01-01 00:00:00 &#43;0000 UTC"
    assert render('<a href="{{ .k }}">', {"k": "x"}, html=True) == '<a href="x">'


# -- objects --------------------------------------------------------------------------------------
def test_object_fields_and_methods() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field _secret in type Host"):
        render("{{ .Host._secret }}")
    with pytest.raises(TemplateError, match="can't evaluate field upper in type string"):
        render("{{ .Name.upper }}")
    with pytest.raises(TemplateError, match="error calling Fail: boom"):
        render("{{ .Host.Fail }}")
    with pytest.raises(TemplateError, match="wrong number of args for Greet: want 1 to 2 got 0"):
        render("{{ .Host.Greet }}")
    with pytest.raises(TemplateError, match="Name has arguments but cannot be invoked"):
        render("{{ .Host.Name 1 }}")
    with pytest.raises(TemplateError, match="Name is not a method but has arguments"):
        render("{{ .Name 1 }}")
    with pytest.raises(TemplateError, match=r"nil pointer evaluating interface \{\}.X"):
        render("{{ .Host.Nil.X }}")


# -- parse errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message", "line", "column"), [
    ("{{ .Name }", 'template: id:1: unexpected "}" in operand', 1, 10),
    # a single } ends no field, variable or identifier (Go 1.19's lexer)
    ("{{.ID}", "template: id:1: bad character U+007D '}'", 1, 3),
    ("{{$}", "template: id:1: bad character U+007D '}'", 1, 3),
    ("{{ .Tags.host}x }}", "template: id:1: bad character U+007D '}'", 1, 9),
    ('x\n{{ index .Tags "h" }}{{ .Name}', "template: id:2: bad character U+007D '}'", 2, 25),
    ("{{ 1 }", 'template: id:1: unexpected "}" in operand', 1, 6),
    # an item longer than 10 bytes is shown by its first 10 characters
    ("{{ `r`étrueindex }}", 'template: id:1: unexpected "étrueindex"... in operand', 1, 7),
    # complex constants are read as fmt.Sscan reads them
    ("{{ 0b1-1i }}", "template: id:1: syntax error scanning complex number", 1, 4),
    ("{{ ++1i }}", 'template: id:1: strconv.ParseFloat: parsing "+": invalid syntax', 1, 4),
    ("{{ 1e999+1i }}", 'template: id:1: strconv.ParseFloat: parsing "1e999": value out of range',
     1, 4),
    ("{{ 1e400i }}", 'template: id:1: illegal number syntax: "1e400i"', 1, 4),
    # a block's body is a tree of its own: a wrong end is reported at the block's line
    ('{{ block "b" . }}\n{{ else }}', "template: id:1: unexpected {{else}} in block clause", 2,
     4),
    ('{{ define "b" }}\n{{ else }}', "template: id:2: unexpected {{else}} in define clause", 2,
     4),
    # {{else with}} came after Go 1.19; {{else if}} only follows {{if}}
    ("{{ with .A }}x{{ else with .B }}{{ end }}", "template: id:1: unexpected <with> in else",
     1, 23),
    ("{{ range .L }}{{ else if .A }}{{ end }}", "template: id:1: unexpected <if> in input", 1,
     23),
    ("{{ .Name ", "template: id:1: unclosed action", 1, 1),
    ("{{ .A\n.B", "template: id:2: unclosed action started at id:1", 1, 1),
    ("ab\n{{ foo }}", 'template: id:2: function "foo" not defined', 2, 4),
    ("{{ if .A }}x", "template: id:1: unexpected EOF", 1, 4),
    ("x\n{{ range .L }}\n{{ .A }}", "template: id:3: unexpected EOF", 2, 4),
    ("{{ end }}", "template: id:1: unexpected {{end}}", 1, 4),
    ("{{ else }}", "template: id:1: unexpected {{else}}", 1, 4),
    ("{{ $x }}", 'template: id:1: undefined variable "$x"', 1, 4),
    ("{{ with $x := 1 }}{{ end }}{{ $x }}", 'template: id:1: undefined variable "$x"', 1, 31),
    ("{{ }}", "template: id:1: missing value for command", 1, 4),
    ("{{ if }}{{ end }}", "template: id:1: missing value for if", 1, 7),
    ("{{ 1 | 2 }}", "template: id:1: non executable command in pipeline stage 2", 1, 8),
    ("{{ $x, $y := 1 }}", "template: id:1: too many declarations in command", 1, 6),
    ("{{ range $a, $b, $c := . }}{{ end }}", "too many declarations in range", 1, 16),
    ("{{ break }}", "template: id:1: {{break}} outside {{range}}", 1, 4),
    ("{{ continue }}", "template: id:1: {{continue}} outside {{range}}", 1, 4),
    ('{{ "abc }}', "template: id:1: unterminated quoted string", 1, 4),
    ("{{ `abc }}", "template: id:1: unterminated raw quoted string", 1, 4),
    ("{{ 'ab' }}", "template: id:1: malformed character constant: 'ab'", 1, 4),
    ('{{ "\\q" }}', "template: id:1: invalid syntax", 1, 4),
    ("{{ 1x }}", 'template: id:1: bad number syntax: "1x"', 1, 4),
    ("{{ 08 }}", 'template: id:1: integer overflow: "08"', 1, 4),
    ("{{ 1e400 }}", 'template: id:1: illegal number syntax: "1e400"', 1, 4),
    ("{{ .a- }}", "template: id:1: bad character U+002D '-'", 1, 4),
    ("{{ (1 }}", "template: id:1: unclosed left paren", 1, 7),
    ("{{ 1) }}", 'template: id:1: unexpected ")" in command', 1, 5),
    ("{{ /* c */ }}", 'template: id:1: unexpected "/" in command', 1, 4),
    ("{{/* c", "template: id:1: unclosed comment", 1, 1),
    ("{{/* c */ x }}", "template: id:1: comment ends before closing delimiter", 1, 1),
    ("{{ a := 1 }}", 'template: id:1: function "a" not defined', 1, 4),
    ("{{ x\x01 }}", "template: id:1: bad character U+0001", 1, 4),
    ("{{ € }}", "template: id:1: unrecognized character in action: U+20AC '€'", 1, 4),
    ("{{ 1.A }}", 'template: id:1: bad number syntax: "1.A"', 1, 4),
    ('{{ "a".B }}', 'template: id:1: unexpected . after term "\\"a\\""', 1, 7),
    ('{{ if 1 }}{{ else }}{{ else }}{{ end }}', "template: id:1: expected end; found {{else}}", 1,
     24),
    ('{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}',
     'template: id:1: template: multiple definition of template "a"', 1, 37),
    ('{{ if 1 }}{{ define "a" }}{{ end }}{{ end }}', "unexpected <define> in command", 1, 14),
    ("{{ template .Name }}", 'template: id:1: unexpected ".Name" in template clause', 1, 13),
])
def test_parse_errors(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(TemplateError) as info:
        parse(text, "id")
    assert str(info.value).startswith(message) or message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


# -- execution errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message", "line", "column"), [
    ('{{ if eq .Fields.n "5" }}x{{ end }}',
     'template: t:1:6: executing "t" at <eq .Fields.n "5">: error calling eq: incompatible types '
     "for comparison: int and string", 1, 7),
    ("{{ lt 1 1.5 }}", "incompatible types for comparison: int and float64", 1, 4),
    ("{{ lt true false }}", "error calling lt: invalid type for comparison", 1, 4),
    ("{{ lt .Missing 1 }}", "error calling lt: invalid type for comparison", 1, 4),
    ("{{ eq .List .List }}", "non-comparable type", 1, 4),
    ("{{ eq }}", "wrong number of args for eq: want at least 1 got 0", 1, 4),
    ("x\n  {{ .Time.Nope }}",
     'template: t:2:10: executing "t" at <.Time.Nope>: can\'t evaluate field Nope in type '
     "time.Time", 2, 11),
    ("{{ .Time.Format }}", "wrong number of args for Format: want 1 got 0", 1, 9),
    ("{{ .Fields.nil.x }}", "nil pointer evaluating interface {}.x", 1, 11),
    ("{{ index .List 9 }}", "error calling index: index out of range: 9", 1, 4),
    ("{{ index .List 4 }}", "error calling index: reflect: slice index out of range", 1, 4),
    ('{{ index .List "a" }}', "cannot index slice/array with type string", 1, 4),
    ("{{ index .Missing 1 }}", "error calling index: index of untyped nil", 1, 4),
    ("{{ index 5 1 }}", "can't index item of type int", 1, 4),
    ("{{ index .Tags 1 }}", "value has type int; should be string", 1, 4),
    ("{{ slice .Nums 2 1 }}", "invalid slice index: 2 > 1", 1, 4),
    ("{{ slice .Nums 9 }}", "index out of range: 9", 1, 4),
    ("{{ slice 5 }}", "can't slice item of type int", 1, 4),
    ("{{ len 3 }}", "error calling len: len of type int", 1, 4),
    ("{{ len .Fields.nil }}", "error calling len: len of nil pointer", 1, 4),
    ('{{ template "nope" }}', 'at <{{template "nope"}}>: template "nope" not defined', 1, 13),
    ("{{ .Fn }}", "at <{{.Fn}}>: can't print {{.Fn}} of type func", 1, 4),
    ("{{ nil }}", "nil is not a command", 1, 4),
    ('{{ "a" "b" }}', 'can\'t give argument to non-function "a"', 1, 4),
    ('{{ "a" | $ }}', "can't give argument to non-function $", 1, 10),
    ("{{ printf 3 }}", "at <3>: expected string; found 3", 1, 11),
    ("{{ printf .List }}", "wrong type for value; expected string; got []interface {}", 1, 11),
    ("{{ printf .Missing }}", "invalid value; expected string", 1, 11),
    ("{{ not 1 2 }}", "wrong number of args for not: want 1 got 2", 1, 4),
    ("{{ and }}", "wrong number of args for and: want at least 1 got 0", 1, 4),
    ("{{ $x = 1 }}", "undefined variable: $x", 1, 4),
    ("{{ if .Flag }}{{ $y := 1 }}{{ else }}{{ $y }}{{ end }}{{ if .Zero }}{{ $y := 2 }}"
     "{{ else }}{{ $y }}{{ end }}", "undefined variable: $y", 1, 95),
    ("{{ range 5 }}{{ end }}", "range can't iterate over 5", 1, 10),
    ("{{ range .Name }}{{ end }}", "range can't iterate over cpu", 1, 10),
    ("{{ 18446744073709551615 }}", "18446744073709551615 overflows int", 1, 4),
    ("{{ call .Name }}", "error calling call: non-function .Name of type string", 1, 4),
    ("{{ call .Missing }}", "error calling call: call of nil", 1, 4),
    ("{{ call .Fn 1 }}", "error calling call: wrong number of args for .Fn: want 0 got 1", 1, 4),
])
def test_execution_errors(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(TemplateError) as info:
        render(text)
    assert message in str(info.value)
    assert str(info.value).startswith("template: t:")
    assert (info.value.line, info.value.column) == (line, column)


def test_runaway_template_recursion_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r'at <\{\{template "r"\}\}>: exceeded maximum '
                                            r"template depth"):
        render('{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}')
    deep = '{{ define "r" }}{{ if 1 }}{{ with 1 }}{{ template "r" . }}{{ end }}{{ end }}{{ end }}'
    with pytest.raises(TemplateError, match="exceeded maximum template depth"):
        render(deep + '{{ template "r" }}')


def test_deeply_nested_parentheses_fail_cleanly() -> None:
    with pytest.raises(TemplateError):
        parse("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")


# -- the Template object and compilation ----------------------------------------------------------
def test_template_attributes_and_reuse() -> None:
    template = parse("{{ .Name }}", "id")
    assert isinstance(template, Template)
    assert (template.name, template.text) == ("id", "{{ .Name }}")
    assert [template.execute({"Name": n}) for n in ("a", "b")] == ["a", "b"]


def test_parsed_once_executed_without_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    template = parse('{{ range .Nums }}{{ printf "%02d" . }}{{ end }}', "t")

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("execute must not parse")
    monkeypatch.setattr(gparser, "parse_trees", no_parsing)
    monkeypatch.setattr(gparser._Parser, "parse", no_parsing)
    assert template.execute(DATA) == "030102"


# -- robustness -----------------------------------------------------------------------------------
_FRAGMENTS = ["{{", "}}", "{{- ", " -}}", " ", "\n", ".", ".Name", ".Fields", ".List", ".Map",
              ".Host", ".Nope", "$", "$x", "$y", ":=", "=", "|", "(", ")", ",", '"%d"', '"s"',
              "`r`", "'c'", "1", "-2", "3.5", "0x1", "1e3", "nil", "true", "if", "else", "end",
              "range", "with", "define", "template", "block", "break", "continue", "printf",
              "index", "len", "and", "or", "not", "eq", "lt", "slice", "call", "html", "print",
              "/*", "*/", "text", "-", '"t"', "x"]


@settings(max_examples=500, deadline=2000)
@given(st.text(alphabet=st.sampled_from(list('{}. $|"()-/*`\'\\:=,abcdefilnrstx0123456789 \n')),
               max_size=50))
def test_random_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        template = parse(text)
    except TemplateError:
        return
    with contextlib.suppress(TemplateError):
        template.execute(DATA)


@settings(max_examples=500, deadline=2000)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30))
def test_random_fragments_parse_or_fail_cleanly(parts: list[str]) -> None:
    text = "".join(parts)
    for html in (False, True):
        try:
            template = parse(text, "f", html=html, funcs={"json": gojson.dumps})
        except TemplateError:
            return
        with contextlib.suppress(TemplateError):
            template.execute(DATA)
        with contextlib.suppress(TemplateError):
            template.execute(None)


def test_call_on_a_piped_value_is_an_execution_error() -> None:
    with pytest.raises(TemplateError, match="non-function of type int"):
        parse("{{ 1 | call }}", "t").execute({})
