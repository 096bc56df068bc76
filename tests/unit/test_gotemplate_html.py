"""html/template contexts of the alert details template: each action escaped by where it
lands (expected values as Go's html/template renders them)."""

from __future__ import annotations

import pytest

from kapa_core.alert.event import GoDuration
from kapa_core.gotemplate import GoTime, parse
from kapa_core.gotemplate.htmlctx import JS

DATA = {"S": 'a "b" <c> & d', "N": 2.5, "U": "javascript:alert(1)", "Q": "x y&z:1",
        "J": JS('{"k":1}\n'), "Time": GoTime(31536000 * 10**9),
        "D": GoDuration(90 * 10**9)}


@pytest.mark.parametrize(("template", "expected"), [
    ('<p>{{ .S }}</p>',
     '<p>a &#34;b&#34; &lt;c&gt; &amp; d</p>'),
    ('<!-- {{ .S }} -->x<!---->y',
     'xy'),
    ('<script>var s = {{ .S }}, n = {{ .N }};</script>',
     '<script>var s = "a \\"b\\" \\u003cc\\u003e \\u0026 d", n =  2.5 ;</script>'),
    ("<script>var s = '{{ .S }}'; // {{ .S }}\n</script>",
     "<script>var s = 'a \\u0022b\\u0022 \\u003cc\\u003e \\u0026 d'; \n</script>"),
    ('<script>/* c */x = {{ .J }}</script>{{ .J }}',
     '<script> x = {"k":1}\n</script>{&#34;k&#34;:1}\n'),
    ('<a href="{{ .U }}">',
     '<a href="#ZgotmplZ">'),
    ('<a href="/p/{{ .Q }}?q={{ .Q }}">',
     '<a href="/p/x%20y&amp;z:1?q=x%20y%26z%3a1">'),
    ('<a title={{ .S }}>',
     '<a title=a&#32;&#34;b&#34;&#32;&lt;c&gt;&#32;&amp;&#32;d>'),
    ('<a onclick="f({{ .S }})">',
     '<a onclick="f(&#34;a \\&#34;b\\&#34; \\u003cc\\u003e \\u0026 d&#34;)">'),
    ('<textarea>a < b {{ .S }}</textarea>{{ .S }}',
     '<textarea>a &lt; b a &#34;b&#34; &lt;c&gt; &amp; d</textarea>a &#34;b&#34; &lt;c&gt; &amp; d'),
    ('x <!DOCTYPE html> y <3',
     'x <!DOCTYPE html> y &lt;3'),
    ('<script>var t = {{ .Time }}, d = {{ .D }}</script>',
     '<script>var t = "1971-01-01T00:00:00Z", d = "1m30s"</script>'),
    ("<style>p { color: {{ .N }}; } /* c */ a { x: '{{ .S }}' }</style>{{ .S }}",
     "<style>p { color: 2.5; }   a { x: 'a \\22 b\\22  \\3c c\\3e  \\26  d' }</style>a &#34;b&#34; &lt;c&gt; &amp; d"),
    ('<p style="color: {{ .S }}; background: url({{ .U }})">x</p>',
     '<p style="color: ZgotmplZ; background: url(#ZgotmplZ)">x</p>'),
    ("<style>b { background: url('{{ .Q }}?{{ .Q }}') }</style>",
     "<style>b { background: url('#ZgotmplZ?x%20y%26z%3a1') }</style>"),
    ('<a href="{{ .Q }}{{ .U }}">',
     '<a href="#ZgotmplZ#ZgotmplZ">'),
])
def test_contexts(template: str, expected: str) -> None:
    assert parse(template, "details", html=True).execute(DATA) == expected
