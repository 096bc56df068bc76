"""Go template behaviour alert templates rely on (values as Go's text/template gives)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapa_core.alert import gojson
from kapa_core.gotemplate import GoTime, StringMap, TemplateError, parse
from kapa_core.models.duration import Duration

DATA = {"Name": "cpu", "Group": "nil", "ID": "cpu:nil", "Level": "CRITICAL",
        "Tags": StringMap(host="a"), "Fields": {"value": 3.14159, "n": 5},
        "Time": GoTime(1_500_000_000), "Duration": Duration(90_000_000_000)}


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ .Name }}:{{ .Group }}", "cpu:nil"),
    ("{{ .ID }} is {{ .Level }}", "cpu:nil is CRITICAL"),
    ('{{ index .Tags "host" }}', "a"),
    ('{{ index .Tags "missing" }}|', "|"),
    ("{{ .Tags.missing }}", "<no value>"),
    ('{{ if eq .Level "OK" }}alive{{ else }}dead{{ end }}', "dead"),
    ('{{ if eq .Level "OK" }}a{{ else if eq .Level "CRITICAL" }}c{{ end }}', "c"),
    ('{{ index .Fields "value" | printf "%0.3f" }}', "3.142"),
    ("{{ range $k, $v := .Fields }}{{ $k }}={{ $v }};{{ end }}", "n=5;value=3.14159;"),
    ("{{ .Time }}", "1970-01-01 00:00:01.5 +0000 UTC"),
    ("{{ .Duration }}", "1m30s"),
    ("{{ .Time.Unix }}", "1"),
    ('{{ .Time.Format "2006-01-02T15:04:05.000Z07:00" }}', "1970-01-01T00:00:01.500Z"),
    ("a  {{- .Name -}}  b", "acpub"),
    ("{{/* a comment */}}x", "x"),
    ("{{ $x := 3 }}{{ $x }}{{ if gt $x 2 }} big{{ end }}", "3 big"),
    ("{{ 1.0 }} {{ 1e21 }} {{ 0.5 }}", "1 1e+21 0.5"),
    ("{{ with .Tags.host }}h={{ . }}{{ end }}", "h=a"),
    ('{{ len .Fields }} {{ and 1 0 }} {{ or 0 "x" }} {{ not true }}', "2 0 x false"),
    ('{{ printf "%v|%d|%s|%5.1f|%q" .Fields.n .Fields.n .Name 2.25 "hi" }}',
     '5|5|cpu|  2.2|"hi"'),
    ('{{ printf "%d" "x" }}', "%!d(string=x)"),
    ("{{ range .Nothing }}x{{ else }}empty{{ end }}", "empty"),
])
def test_rendering(text: str, expected: str) -> None:
    assert parse(text).execute(DATA) == expected


def test_html_mode_escapes_action_output_like_html_template() -> None:
    template = parse("<b>{{ json . }}</b>", html=True, funcs={"json": gojson.dumps})
    assert template.execute(gojson.Struct(a=1.0, b='x"+')) == \
        "<b>{&#34;a&#34;:1,&#34;b&#34;:&#34;x\\&#34;&#43;&#34;}</b>"


@pytest.mark.parametrize(("text", "message", "column"), [
    ("{{ .Name ", "unclosed action", 1),
    ("ab\n{{ foo }}", 'function "foo" not defined', 4),
    ("{{ if .A }}x", "unexpected EOF", None),
    ("{{ end }}", "unexpected {{end}}", 4),
])
def test_parse_errors_name_the_place(text: str, message: str, column: int | None) -> None:
    with pytest.raises(TemplateError) as info:
        parse(text, "msg")
    assert message in str(info.value) and str(info.value).startswith("template: msg:")
    if column is not None:
        assert info.value.column == column


def test_execution_errors_are_template_errors() -> None:
    with pytest.raises(TemplateError, match="incompatible types"):
        parse('{{ if eq .Fields.n "5" }}x{{ end }}').execute(DATA)
    with pytest.raises(TemplateError, match="can't evaluate field"):
        parse("{{ .Time.Nope }}").execute(DATA)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}. $|"()-/*abcifeqndlsxrgt0123456789 \n')),
               max_size=40))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        template = parse(text)
    except TemplateError:
        return
    with contextlib.suppress(TemplateError):
        template.execute(DATA)
