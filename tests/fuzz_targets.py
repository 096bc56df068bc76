"""Hostile inputs for kapa-core, shared by the hypothesis fuzz tests and the soak.

One description of each input family, two engines:

* a small schema language (``Choice``, ``Soup``, ``Text``, ``Obj``, ``AnyJSON``...) whose
  nodes give a hypothesis strategy (``schema.strategy()``, for the test suite: shrinking,
  readable falsifying examples) or draw straight from a ``random.Random``
  (``schema.gen(rng)``, for ``benchmarks/fuzz_soak.py``: millions of inputs);
* targets written once against a ``Gen`` (``g.draw(schema)``), either engine behind it:
  the in-process parsers (``PARSER_TARGETS``: run one input, raise on a bug) and the HTTP
  API (``HTTP_TARGETS``: generators that yield ``Call`` steps to a real daemon and get
  each ``Answer`` back).

The HTTP invariants, checked by ``run_input`` and ``ping``: every request gets a complete
HTTP answer (a connection closed or reset without one is a finding), no 5xx, an error
body is Kapacitor's ``{"error": "..."}``, no answer takes longer than ``SLOW_S``, and a
ping on a *new* connection (the listener still accepts) answers 204 within ``PING_S``.

JSON bodies are written with ``json.dumps``' default ``ensure_ascii=True``, so the lone
surrogates of ``SPECIAL_CHARS`` travel as ``\\ud800`` escapes, as any client would send
them; some bodies are raw bytes, non-UTF-8, UTF-16, gzip, or ``Raw`` JSON text spliced in
(nesting deeper than Python's recursion limit, numbers past float and int limits).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import socket
import string
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

PING_S = float(os.environ.get("KAPA_FUZZ_PING_S", "1.0"))  # a ping's budget after an input
SLOW_S = float(os.environ.get("KAPA_FUZZ_SLOW_S", "10.0"))  # any one answer's budget
REQUEST_TIMEOUT_S = SLOW_S + 5  # then the request counts as unanswered

# -- piece lists --------------------------------------------------------------------------

# Lone surrogates first: they must stay frequent (hypothesis' characters() never makes them).
SPECIAL_CHARS = ["\ud800", "\udbff", "\udc00", "\udfff", "\x00", "\x01", "\x1b", "\x7f",
                 "\t", "\n", "\r", " ", '"', "'", "\\", "/", "%", "*", "?", "[", "]", "{",
                 "}", "$", ".", ",", "=", "|", ":", "@", "é", "\u00ff", "\u2028", "\u2029",
                 "\ufeff", "\ufffd", "\uffff", "😀", "\U0010ffff", "\u0301", "\u210c",
                 "\uff11", "\u0663", "\u0130", "\u00df"]
TEXT_POOL = [*string.ascii_letters, *string.digits, *"-_.: ", *SPECIAL_CHARS, *SPECIAL_CHARS]
ID_CHARS = [*string.ascii_letters, *string.digits, *"-._", "\n", "\u00e9", "\u210c", " ", ":"]

LP_PIECES = ["cpu", "m", ",", " ", "=", "host", "value", "v", "1", "-", "0", ".", "5", "e",
             "i", "u", "t", "true", "F", "FALSE", '"', '\\"', "\\", "\\,", "\\ ", "\\=",
             "\n", "\r\n", "#", "\t", "é", "\x00", "9" * 25, "1e999", "NaN", "inf",
             "1614953229000000000", "-9223372036854775808", "18446744073709551615u"]
PRECISIONS = ["n", "ns", "u", "µ", "us", "ms", "s", "m", "h"]
VALID_LINES = ["cpu,host=a value=1", "cpu,host=a v=2i 1614953229000000000",
               'm,host=web01 v=1.5,s="x",ok=true', "cpu v=3u", "m v=1 0",
               'cpu,host=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa v=100,s="\\"q\\""']

TICK_PIECES = ["stream", "batch", "|", "from()", "query('SELECT mean(v) FROM db.rp.m')",
               ".measurement('cpu')", ".where(", "lambda: ", '"value"', '"host"', " > ",
               " < ", " == ", " =~ ", " AND ", " OR ", "!", "-", "+", "*", "/", "%", "10",
               "1.5", "1m", "10s", "TRUE", "FALSE", "'web'", "/^w.b$/", "(", ")", "[", "]",
               ",", ".", "var ", "x", " = ", "alert()", ".crit(", ".warn(", ".id('{{ .Name }}')",
               "window()", ".period(", ".every(", "|eval(", ".as('a')", "|log()", "@udf()",
               "mean('v')", ".groupBy(", "*", "'''", "// note\n", "\n", " ", "\t", "'", '"',
               "sigma(", "if(", "isPresent(", "count(", "int(", "float(", "string(", "bool(",
               "duration(", "unixNano(", "now()", "minute(", "httpPost('x')", ".topic('t')"]
TASK_TYPES = ["stream", "batch"]
VALID_SCRIPTS = [
    "stream|from().measurement('cpu')|log()",
    "stream|from()|window().period(1m).every(1m)|mean('v')|alert().crit(lambda: \"mean\" > 1)",
    "batch|query('SELECT mean(v) FROM d.r.m').period(1m).every(1m)|httpOut('x')",
    "var t = 5\nstream|from()|where(lambda: \"v\" > t)|log()",
    "stream|from()|alert().crit(lambda: \"v\" > 0).topic('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')",
    "dbrp \"d\".\"r\"\nstream|from()|httpOut('out')",
]

LAMBDA_LEAVES = ['"v"', '"n"', '"s"', '"ok"', '"host"', '"missing"', "1", "0", "-3", "2.5",
                 "0.0", "1e3", "'web01'", "''", "TRUE", "FALSE", "10s", "0s", "1m",
                 "/^web/", "/[0-9]+/", "/(/", "now()"]
LAMBDA_UNARY = ["-", "!"]
LAMBDA_BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "=~", "!~",
                 "AND", "OR"]
LAMBDA_CALLS = ["int", "float", "string", "bool", "duration", "abs", "sqrt", "pow", "floor",
                "isPresent", "if", "strLength", "strContains", "regexReplace", "sigma",
                "count", "spread", "hour", "unixNano", "humanBytes", "nope"]

TEMPLATE_PIECES = ["{{", "}}", "{{-", "-}}", " ", ".", ".Name", ".Tags", ".Fields",
                   ".Level", ".Time", ".missing", "$", "$x", ":=", "=", "|", "(", ")", "if",
                   "else", "end", "range", "with", "define", "template", "block", "break",
                   "continue", '"a"', '"%d"', '"%s"', '"%v"', '"%*d"', '"%.999999999f"',
                   '"%999999999d"', "printf", "print", "println", "index", "slice", "len",
                   "eq", "ne", "lt", "le", "and", "or", "not", "call", "html", "js",
                   "urlquery", "nil", "true", "false", "1", "-1", "1.5", "0x10", "'a'",
                   "1e308", "text", "/* c */", "\n", "`raw`"]

TEMPLATE_OPERANDS = [".", ".Name", ".Tags", ".Fields", ".Level", ".Time", ".Tags.host",
                     ".missing.deeper", "$", "$x", '"a"', '"%d"', "`raw`", "1", "-1", "1.5",
                     "0x10", "'a'", "1e308", "nil", "true", "false"]
TEMPLATE_FUNCS = ["printf", "print", "println", "index", "slice", "len", "eq", "ne", "lt",
                  "le", "gt", "ge", "and", "or", "not", "call", "html", "js", "urlquery",
                  "nope"]

PATTERN_PIECES = ["*", "*", "*", "**", "?", "a", "a", "aa", "b", "x", "[a]", "[a-z]", "[^a]",
                  "[!a]", "[", "]", "^", "!", "-", "\\", "\\*", ".", "/", "{", "}", ",",
                  "(", ")", "|", "+", "%", "\ud800", "é", "cpu", "task", "tpl", "fz"]
DURATIONS = ["1s", "0s", "-1s", "1m", "1h", "1d", "1w", "10000000h", "9223372036854775807ns",
             "9223372036854775808ns", "1.5s", "1e3s", "", "s", "1x", "0", "-0", "1µs",
             "1us", "99999999999999999999s"]
REGEXES = ["^a", "((((", "[", "(?P<", "*", "\\", "a{99999}", "(a+)+$", ".*", "(?i)x",
           "\\p{L}", "[[:alpha:]]", "(?<=a)b", "(?P<n>a)(?P=n)", "\\1", "", "é", "\ud800"]
URL_PIECES = ["http://", "https://", "udp://", "127.0.0.1", "localhost", ":", "9", "0",
              "65536", "99999999999", "/", "path", "?", "q=1", "#", "@", "user:pass@",
              "[::1]", "[", "]", "%", "%zz", "a" * 64 + ".com", "xn--", "..", " ", "\x00",
              "é", "\ud800", "-", "ftp://", "file:///etc/passwd", "unix:///tmp/x"]
LONG_URLS = ["http://127.0.0.1/" + "a" * 70_000, "http://" + "a" * 70_000,
             "http://" + "a." * 35_000 + "com"]
HANDLER_KINDS = ["post", "tcp", "slack", "smtp", "email", "mqtt", "kafka", "publish",
                 "aggregate", "alerta", "teams", "snmptrap", "exec", "log", "hipchat",
                 "opsgenie", "opsgenie2", "pagerduty", "pagerduty2", "pushover", "sensu",
                 "servicenow", "talk", "telegram", "victorops", "zenoss", "bigpanda",
                 "discord", "nope", ""]
OPTION_KEYS = ["url", "endpoint", "headers", "channel", "username", "icon-emoji", "to",
               "from", "subject", "body", "address", "addr", "host", "port", "topic",
               "cluster", "qos", "retained", "broker-name", "token", "room", "mention",
               "workspace", "trap-oid", "data-list", "details", "template", "level",
               "timeout", "interval", "recipients", "routing-key", "service", "environment",
               "origin", "group", "tags", "attributes", "message", "id", "chat-id",
               "parse-mode", "teams-channel-url", "topics", "path", "enabled", "source"]
MATCHES = ['changed() == TRUE', 'level() >= CRITICAL', '"host" == \'a\'', "TRUE",
           'name() =~ /^a/', "level() > OK AND changed()"]
LEVELS = ["OK", "INFO", "WARNING", "CRITICAL", "ok", "critical", "", "x", "WARNING ", "Ok"]
LOG_LEVELS = ["DEBUG", "INFO", "WARN", "ERROR", "debug", "info", "OFF", "", "info ", "TRACE"]
PERMISSIONS = ["none", "api", "config_api", "write_points", "all", "API", "x", ""]
TASK_FIELDS = ["id", "link", "type", "dbrps", "script", "executing", "dot", "stats",
               "error", "status", "created", "modified", "last-enabled", "vars",
               "template-id", "name", "permissions", "x", ""]
NUMBER_TEXTS = ["0", "1", "2", "100", "-1", "", "  1", "1.5", "1e3", "0x10", "\uff11", "\u0663",
                "99999999999999999999999999", "-99999999999999999999", "NaN", "+5", "0_1",
                "10" * 3000]

# Fixtures the query and PATCH targets work on; a long run of one letter makes a glob
# with many stars backtrack, as an unlucky real ID would.
LONG_ID = "a" * 30
FIXTURE_TASKS = [LONG_ID, "fz_cpu", "fz.task-1"]
FIXTURE_TEMPLATES = [LONG_ID, "fz_tpl"]
FIXTURE_TOPICS = [LONG_ID, "fz-topic"]
FIXTURE_HANDLERS = [LONG_ID, "fz_handler"]
FIXTURE_USERS = [LONG_ID, "fzuser"]
TEMPLATE_SCRIPT = """var r regex
var s string
var f float
var l lambda
var i int
var b bool
var d = 1m
var w = 'x'
stream|from().measurement(s).where(lambda: "host" =~ r AND "v" > f)|where(l)
    |window().period(d).every(d)|alert().crit(lambda: "v" > i).id(w)
"""
TEMPLATE_VARS = ["r", "s", "f", "l", "i", "b", "d", "w", "zz"]
VAR_TYPES = ["bool", "int", "float", "string", "regex", "duration", "lambda", "star", "list",
             "nope", ""]


# -- spliced JSON text and raw bodies -----------------------------------------------------

class Raw:
    """JSON text put into a body as is (a short repr: hypothesis prints examples)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({short(self.text, 60)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Raw) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class RawBytes:
    """A whole request body, bytes as is."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"RawBytes({short(self.data, 60)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawBytes) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)


def deliverable(text: str) -> str:
    """``text`` as a client can deliver it: a JSON body's lone surrogate escapes and the
    invalid UTF-8 of a percent-encoded query or path arrive as U+FFFD (what
    ``decode_json`` and ``urllib.parse.unquote`` make of them)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def short(value: Any, limit: int = 300) -> str:
    """repr of ``value``, cut in the middle past ``limit`` characters, with its length."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes) else len(text)
    half = limit // 2
    return f"{text[:half]}...{text[-half // 2:]} ({size} long)"


def encode_json(value: Any, ascii_only: bool = True) -> str:
    """JSON text of ``value``; ``Raw`` parts are spliced, everything else json.dumps."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=ascii_only) + ":" +
                              encode_json(v, ascii_only) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_json(v, ascii_only) for v in value) + "]"
    if isinstance(value, RawBytes):
        return value.data.decode("latin-1")
    return json.dumps(value, ensure_ascii=ascii_only)


# "utf8" and "utf16" carry lone surrogates encoded, not escaped (json.loads takes them).
ENCODINGS = ["json"] * 4 + ["utf8"] * 3 + ["utf16", "latin1", "gzip", "gzip-garbage"]


def body_bytes(value: Any, encoding: str = "json") -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """A request body and its extra headers: ``value`` written in ``encoding``."""
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(value, RawBytes):
        data = value.data
    elif isinstance(value, bytes):
        data = value
    elif encoding in ("utf8", "latin1", "utf16"):
        text = encode_json(value, ascii_only=False)
        data = text.encode({"utf8": "utf-8", "latin1": "latin-1", "utf16": "utf-16"}[encoding],
                           "surrogatepass" if encoding != "latin1" else "replace")
    else:
        data = encode_json(value).encode("utf-8", "surrogatepass")
    if encoding == "gzip":
        data, headers = gzip.compress(data, 1), (("Content-Encoding", "gzip"),)
    elif encoding == "gzip-garbage":
        data = gzip.compress(data, 1)[:-5] + b"\x00garbage" if data else b"\x1f\x8b\x08"
        headers = (("Content-Encoding", "gzip"),)
    return data, headers


_MONSTERS: dict[str, list[Any]] = {}


def monsters(kind: str) -> list[Any]:
    """Big inputs, built once: ``body`` (whole bodies), ``string`` (JSON values),
    ``pattern`` (glob patterns), ``lp`` (line protocol), ``tick`` (TICKscripts)."""
    if not _MONSTERS:
        noise = random.Random(7).randbytes(1_000_000)
        _MONSTERS["body"] = [
            RawBytes(b"[" * 100_000), RawBytes(b"[" * 100_000 + b"]" * 100_000),
            RawBytes(b'{"a":' * 50_000 + b"1" + b"}" * 50_000), RawBytes(b"{" * 100_000),
            RawBytes(b'"' + b"a" * 1_000_000 + b'"'), RawBytes(b"\xff" * 1_000_000),
            RawBytes(noise), RawBytes(b'{"x":"' + b"\\ud800" * 150_000 + b'"}'),
            RawBytes(b" " * 1_000_000 + b"{}"),
            RawBytes(b"{" + b'"k":1,' * 150_000 + b'"k":1}'), RawBytes(b"1" * 1_000_000),
            RawBytes(b"[" + b"1," * 400_000 + b"1]"),
        ]
        _MONSTERS["string"] = [
            Raw(json.dumps("a" * 1_000_000)), Raw("[" * 100_000), Raw("{" * 100_000),
            Raw('"' + "\\ud800" * 100_000 + '"'), Raw("9" * 1_000_000),
            Raw("[" * 100_000 + "]" * 100_000), Raw(json.dumps("é" * 300_000)),
            Raw(json.dumps("\\" * 500_000)),
        ]
        _MONSTERS["pattern"] = ["*" * 50 + "x", "*a" * 30 + "b", "?*" * 25 + "b",
                                "*" * 20_000, "a*" * 5_000, "[a]*" * 2_000, "[" * 5_000,
                                "\\" * 5_000, "*" * 15 + "?" * 15 + "b", "*\\" * 3000]
        _MONSTERS["lp"] = [b"m v=1 " + b"9" * 4400, b"\\" * 20_000, b'"' * 20_000,
                           b"m,t=" + b"a" * 1_000_000 + b" v=1",
                           b"\n".join([b"cpu,host=a value=1"] * 50_000),
                           b"m v=" + b"9" * 1_000_000, noise]
        _MONSTERS["tick"] = ["(" * 1500, "-" * 3000, "!" * 3000, "|log()" * 1500,
                             "[" * 1500, "var x = 1\n" * 3000, "9" * 4400, "9" * 4400 + "s",
                             "stream|from()|log()\n//" + "a" * 1_000_000,
                             "stream" + "|log()" * 20_000, "'" + "a" * 1_000_000]
    return _MONSTERS[kind]


# -- the schema language -------------------------------------------------------------------

class Schema:
    """A description of values; ``gen(rng)`` draws one, ``strategy()`` is hypothesis'."""

    _strategy: Any = None

    def gen(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def build(self) -> Any:
        raise NotImplementedError

    def strategy(self) -> Any:
        if self._strategy is None:
            self._strategy = self.build()
        return self._strategy


def _s(value: Any) -> Schema:
    return value if isinstance(value, Schema) else Const(value)


class Const(Schema):
    def __init__(self, value: Any) -> None:
        self.value = value

    def gen(self, rng: random.Random) -> Any:
        return self.value

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.just(self.value)


class Choice(Schema):
    def __init__(self, values: Sequence[Any]) -> None:
        self.values = list(values)

    def gen(self, rng: random.Random) -> Any:
        return self.values[int(rng.random() * len(self.values))]

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.sampled_from(self.values)


class Weighted(Schema):
    """One of ``options``: ``(weight, schema)`` pairs. (For hypothesis a branch index is
    sampled over the repeated branches: ``one_of`` would drop the repeats.)"""

    def __init__(self, options: Sequence[tuple[int, Any]]) -> None:
        self.options = [(w, _s(s)) for w, s in options]
        self._flat = [s for w, s in self.options for _ in range(w)]

    def gen(self, rng: random.Random) -> Any:
        return self._flat[int(rng.random() * len(self._flat))].gen(rng)

    def build(self) -> Any:
        from hypothesis import strategies as st
        if len(self.options) == 1:
            return self.options[0][1].strategy()
        branches = [s.strategy() for s in self._flat]
        return st.sampled_from(range(len(branches))).flatmap(branches.__getitem__)


class Soup(Schema):
    """Grammar fragments joined: close enough to parse far, wrong enough to fail."""

    def __init__(self, pieces: Sequence[Any], max_size: int = 60, min_size: int = 0) -> None:
        self.pieces, self.max_size, self.min_size = list(pieces), max_size, min_size
        self.joiner = b"" if pieces and isinstance(pieces[0], bytes) else ""

    def gen(self, rng: random.Random) -> Any:
        n = rng.randint(self.min_size, self.max_size)
        return self.joiner.join(rng.choices(self.pieces, k=n))

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.lists(st.sampled_from(self.pieces), min_size=self.min_size,
                        max_size=self.max_size).map(self.joiner.join)


class Text(Schema):
    """Any text, lone surrogates, controls and look-alike digits included."""

    def __init__(self, max_size: int = 20, min_size: int = 0) -> None:
        self.max_size, self.min_size = max_size, min_size

    def gen(self, rng: random.Random) -> Any:
        n = rng.randint(self.min_size, self.max_size)
        chars = rng.choices(TEXT_POOL, k=n)
        if n and rng.random() < 0.2:
            chars[rng.randrange(n)] = chr(rng.randrange(0x110000))
        return "".join(chars)

    def build(self) -> Any:
        from hypothesis import strategies as st
        # Specials first: st.text(alphabet=one_of(...)) hardly ever picks them.
        return st.lists(st.one_of(st.sampled_from(SPECIAL_CHARS), st.characters()),
                        min_size=self.min_size, max_size=self.max_size).map("".join)


class Bytes(Schema):
    def __init__(self, max_size: int = 200) -> None:
        self.max_size = max_size

    def gen(self, rng: random.Random) -> Any:
        return rng.randbytes(rng.randint(0, self.max_size))

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.binary(max_size=self.max_size)


EDGE_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64,
             10**30, -10**30]
EDGE_FLOATS = [0.0, -0.0, 1.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"),
               float("-inf"), 1e-7]


class Ints(Schema):
    def gen(self, rng: random.Random) -> Any:
        r = rng.random()
        if r < 0.4:
            return rng.choice(EDGE_INTS)
        return rng.randint(-1000, 1000) if r < 0.8 else rng.randint(-2**70, 2**70)

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.one_of(st.integers(-2**70, 2**70), st.sampled_from(EDGE_INTS))


class Floats(Schema):
    def gen(self, rng: random.Random) -> Any:
        return rng.choice(EDGE_FLOATS) if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.floats()


class ListOf(Schema):
    def __init__(self, element: Any, max_size: int = 4) -> None:
        self.element, self.max_size = _s(element), max_size

    def gen(self, rng: random.Random) -> Any:
        return [self.element.gen(rng) for _ in range(rng.randint(0, self.max_size))]

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.lists(self.element.strategy(), max_size=self.max_size)


class DictOf(Schema):
    def __init__(self, keys: Any, values: Any, max_size: int = 4) -> None:
        self.keys, self.values, self.max_size = _s(keys), _s(values), max_size

    def gen(self, rng: random.Random) -> Any:
        return {self.keys.gen(rng): self.values.gen(rng)
                for _ in range(rng.randint(0, self.max_size))}

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.dictionaries(self.keys.strategy(), self.values.strategy(),
                               max_size=self.max_size)


class Obj(Schema):
    """A JSON object: ``required`` keys always, each of ``optional`` sometimes."""

    def __init__(self, required: dict[str, Any] | None = None,
                 optional: dict[str, Any] | None = None) -> None:
        self.required = {k: _s(v) for k, v in (required or {}).items()}
        self.optional = {k: _s(v) for k, v in (optional or {}).items()}

    def gen(self, rng: random.Random) -> Any:
        out = {k: s.gen(rng) for k, s in self.required.items()}
        for k, s in self.optional.items():
            if rng.random() < 0.6:
                out[k] = s.gen(rng)
        return out

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.fixed_dictionaries({k: s.strategy() for k, s in self.required.items()},
                                     optional={k: s.strategy()
                                               for k, s in self.optional.items()})


class Map(Schema):
    def __init__(self, schema: Any, fn: Callable[[Any], Any]) -> None:
        self.schema, self.fn = _s(schema), fn

    def gen(self, rng: random.Random) -> Any:
        return self.fn(self.schema.gen(rng))

    def build(self) -> Any:
        return self.schema.strategy().map(self.fn)


class Tuple(Schema):
    def __init__(self, *parts: Any) -> None:
        self.parts = [_s(p) for p in parts]

    def gen(self, rng: random.Random) -> Any:
        return tuple(p.gen(rng) for p in self.parts)

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.tuples(*(p.strategy() for p in self.parts))


class Recursive(Schema):
    """Trees: ``extend(inner)`` builds containers of ``inner`` (a schema)."""

    def __init__(self, leaves: Any, extend: Callable[[Schema], Schema],
                 max_leaves: int = 12) -> None:
        self.leaves, self.extend, self.max_leaves = _s(leaves), extend, max_leaves
        self._inner = _Depth(self)
        self._container = extend(self._inner)

    def gen(self, rng: random.Random) -> Any:
        self._inner.depth = 0
        return self._container.gen(rng) if rng.random() < 0.6 else self.leaves.gen(rng)

    def build(self) -> Any:
        from hypothesis import strategies as st
        return st.recursive(self.leaves.strategy(),
                            lambda inner: self.extend(_Wrapped(inner)).strategy(),
                            max_leaves=self.max_leaves)


class _Depth(Schema):
    def __init__(self, owner: Recursive) -> None:
        self.owner, self.depth = owner, 0

    def gen(self, rng: random.Random) -> Any:
        if self.depth >= 3 or rng.random() < 0.5:
            return self.owner.leaves.gen(rng)
        self.depth += 1
        try:
            return self.owner._container.gen(rng)
        finally:
            self.depth -= 1


class _Wrapped(Schema):
    def __init__(self, strategy: Any) -> None:
        self._strategy = strategy


# -- common value families -------------------------------------------------------------------

def deep(n: int) -> list[Raw]:
    return [Raw("[" * n + "]" * n), Raw('{"a":' * n + "1" + "}" * n)]


JSON_ODDITIES = Choice([Raw("1e999"), Raw("-1e999"), Raw("NaN"), Raw("Infinity"),
                        Raw("-Infinity"), Raw("-0"), Raw("1" + "0" * 5000),
                        Raw("0." + "0" * 5000 + "1"), Raw('"\\ud800"'), Raw('"\\udfff\\ud800"'),
                        Raw('"a\\ud800b"'), Raw('"\\u0000"'), Raw("1E400"),
                        *deep(900), *deep(1500), *deep(3000)])
# Nested deep, yet within what the JSON decoder takes: for whatever walks them afterwards.
DEEP_VALUES = Choice([*deep(200), *deep(900), *deep(990)])
JSON_LEAVES = Weighted([(1, Const(None)), (1, Choice([True, False])), (2, Ints()),
                        (1, Floats()), (4, Text(20)), (1, JSON_ODDITIES)])
ANY_JSON = Recursive(JSON_LEAVES, lambda inner: Weighted(
    [(1, ListOf(inner, 4)), (1, DictOf(Text(12), inner, 4))]))
# Mostly ordinary, now and then 1 MB or 100,000 levels deep (bounded: one per input).
STRING_MONSTER = Map(Ints(), lambda i: monsters("string")[i % len(monsters("string"))])
BODY_MONSTER = Map(Ints(), lambda i: monsters("body")[i % len(monsters("body"))])
ID = Weighted([(4, Soup(ID_CHARS, 14, 1)), (2, Text(16)), (1, ANY_JSON)])
URL = Weighted([(6, Soup(URL_PIECES, 10)), (2, Text(30)), (1, Choice(LONG_URLS))])
OPTION_VALUE = Weighted([(3, ANY_JSON), (1, DEEP_VALUES), (2, URL), (2, Text(30)),
                         (1, Choice(DURATIONS)),
                         (1, Ints()), (1, Choice(FIXTURE_TOPICS)), (1, Choice(REGEXES))])
OPTIONS = Weighted([(1, ANY_JSON), (3, DictOf(Weighted([(4, Choice(OPTION_KEYS)),
                                                        (1, Text(10))]), OPTION_VALUE, 5))])
SCRIPT = Weighted([(3, Choice(VALID_SCRIPTS)), (4, Soup(TICK_PIECES, 40)), (2, Text(100)),
                   (1, ANY_JSON), (1, Choice([Raw(json.dumps(t)) for t in
                                              ["(" * 1500, "[" * 1500, "-" * 3000]]))])
DBRPS = Weighted([(4, Const([{"db": "d", "rp": "r"}])),
                  (2, ListOf(Obj({"db": Weighted([(2, Choice(["d", "x", ""])), (1, Text())]),
                                  "rp": Weighted([(2, Choice(["r", ""])), (1, Text())])}), 3)),
                  (1, ANY_JSON)])
STATUS = Weighted([(4, Choice(["enabled", "disabled"])), (1, Choice(["", "on", "ENABLED"])),
                   (1, ANY_JSON)])
TASK_TYPE = Weighted([(4, Choice(["stream", "batch"])), (1, Choice(["", "x", "STREAM"])),
                      (1, ANY_JSON)])
VAR_VALUE = Weighted([(3, ANY_JSON), (2, Choice(REGEXES)), (1, Choice(DURATIONS)),
                      (1, Soup(TICK_PIECES, 10)), (1, Choice(["lambda: TRUE", '"v" > 1']))])
VARS = Weighted([(1, ANY_JSON), (4, DictOf(Weighted([(4, Choice(TEMPLATE_VARS)), (1, Text(8))]),
                                           Weighted([(5, Obj({"type": Weighted(
                                               [(5, Choice(VAR_TYPES)), (1, ANY_JSON)]),
                                               "value": VAR_VALUE},
                                               {"description": Text(10)})),
                                               (1, ANY_JSON)]), 4))])
TEMPLATE_ID = Weighted([(3, Choice([*FIXTURE_TEMPLATES, "nope", ""])), (1, Text(10)),
                        (1, ANY_JSON), (1, Choice([["x"], {}, [], 1, True, {"a": 1}]))])
PATTERN = Weighted([(8, Soup(PATTERN_PIECES, 25)), (2, Text(20)),
                    (1, Map(Ints(), lambda i: monsters("pattern")[i % 10]))])


def body(structured: Any, weight: int = 6) -> Schema:
    """A request body: mostly ``structured``, else any JSON, bytes, or a monster."""
    return Tuple(Weighted([(weight * 8, structured), (6, ANY_JSON), (3, Bytes(300)),
                           (1, Choice([RawBytes(b""), RawBytes(b"null"), RawBytes(b"{}"),
                                       RawBytes(b"[]"), RawBytes(b"{"), RawBytes(b"\xef\xbb\xbf{}"),
                                       RawBytes(b'{"a":1}{"b":2}'), RawBytes(b"\xff\xfe{\x00}\x00"),
                                       *[RawBytes(r.text.encode()) for r in deep(1500)]])),
                           (1, BODY_MONSTER)]),
                 Choice(ENCODINGS))


def object_with_monster(obj: Obj) -> Schema:
    """``obj`` with one of its keys (required or optional) set to a string monster."""
    keys = [*obj.required, *obj.optional]
    return Map(Tuple(obj, Choice(keys), STRING_MONSTER),
               lambda t: {**t[0], t[1]: t[2]})


# -- generators -------------------------------------------------------------------------------

class RandomGen:
    """``draw`` from a ``random.Random``: fast, no shrinking (the soak)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def draw(self, schema: Any, label: str | None = None) -> Any:
        return _s(schema).gen(self.rng)


class HypothesisGen:
    """``draw`` through hypothesis' ``st.data()`` (the tests)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def draw(self, schema: Any, label: str | None = None) -> Any:
        return self.data.draw(_s(schema).strategy(), label=label)


# -- in-process parser targets -----------------------------------------------------------------

class ParserTarget:
    """``run(value)`` parses one input from ``schema``; it raises only on a bug."""

    def __init__(self, schema: Schema, run: Callable[[Any], None]) -> None:
        self.schema, self.run = schema, run


def _lp(args: tuple[Any, str]) -> None:
    from kapa_core.models.lineprotocol import parse as parse_lines
    data, precision = args
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    try:
        result = parse_lines(data, precision=precision, now_ns=0)
    except ValueError as exc:  # documented: an unknown precision only
        error = str(exc)
        if precision in PRECISIONS or "precision" not in error:
            raise
        return
    check_parse_result(result, data.count(b"\n") + 1)


def check_parse_result(result: Any, lines: int) -> None:
    """What any line-protocol parse of ``lines`` lines must give."""
    from kapa_core.models.lineprotocol import MAX_TIME, MIN_TIME
    assert len(result.points) + len(result.errors) <= lines
    for point in result.points:
        # no fields is possible: InfluxDB drops a field whose key is empty (m \t="s")
        assert point.name and isinstance(point.fields, dict)
        assert MIN_TIME <= point.time <= MAX_TIME
    for error in result.errors:
        assert 1 <= error.line <= lines and error.reason


def _tick(args: tuple[str, str]) -> None:
    from kapa_core.errors import TickError
    from kapa_core.pipeline.evaluate import evaluate
    with suppress(TickError):
        evaluate(*args)


def _template(args: tuple[str, Any]) -> None:
    from kapa_core.gotemplate import TemplateError
    from kapa_core.gotemplate import parse as parse_template
    text, data = args
    try:
        out = parse_template(text, "fuzz").execute(data)
    except TemplateError:
        return
    assert isinstance(out, str)


def _lambda(args: tuple[str, dict[str, Any], dict[str, str], int]) -> None:
    from kapa_core.errors import TickError
    from kapa_core.tick.functions import EvalError
    from kapa_core.tick.lambdas import compile_lambda
    from kapa_core.tick.parser import parse as parse_tick
    expr, fields, tags, now = args
    try:
        compiled = compile_lambda(parse_tick("var x = lambda: " + expr).statements[0].value, {})
    except TickError:
        return
    for _ in range(2):  # stateful functions (sigma, count, spread) see a second point
        with suppress(EvalError):
            compiled.eval(now, fields, tags)


GLOB_NAMES = [LONG_ID, "a" * 12 + "b", "fz_cpu", "fz.task-1", "x", "\u00e9-\u210c", "", "a/b",
              "[a]"]


def _glob(args: tuple[str, list[tuple[str, str]]]) -> None:
    """The list endpoints' filtering and paging (``listing.select``: tasks, templates) and
    the glob matcher every ``pattern`` goes through, over names a long star pattern could
    backtrack on (the watchdog catches a slow match)."""
    from kapa_core.errors import APIError
    from kapa_core.http.listing import select
    from kapa_core.http.messages import Request
    pattern, extra = args
    query: dict[str, list[str]] = {"pattern": [pattern]}
    for name, value in extra:
        query.setdefault(name, []).append(value)
    from kapa_core.glob import compile_glob
    try:
        chosen, _fields = select(Request("GET", "/", query=query), GLOB_NAMES,
                                 tuple(TASK_FIELDS[:15]))
    except APIError as exc:
        _client_error(exc)
    else:
        assert set(chosen) <= set(GLOB_NAMES)
    try:
        matches = compile_glob(pattern)
    except ValueError:  # GlobError: a malformed pattern
        return
    for name in GLOB_NAMES:
        matches(name)


def _client_error(exc: Any, status: int | None = None) -> None:
    """An APIError from a reader must be a 4xx (``status`` exactly, when given)."""
    if not 400 <= exc.status < 500 or status not in (None, exc.status):
        raise AssertionError(f"status {exc.status}: {exc}") from exc


def decoded(value: Any) -> Any:
    """``value`` as a server sees it once decoded (``Raw`` parts parsed)."""
    try:
        return json.loads(encode_json(value))
    except (ValueError, RecursionError):
        return encode_json(value)


def _json_body(args: tuple[bytes, Any]) -> None:
    """Every JSON body reader: ``listing.json_body`` (tasks, templates, config, service
    tests, users), the topic handlers' reader, and JSON Patch on a handler document."""
    from kapa_core.errors import APIError
    from kapa_core.http.alerts_api import AlertsAPI, apply_patch
    from kapa_core.http.listing import json_body
    from kapa_core.http.messages import Request
    data, patch = args
    request = Request("POST", "/", body=data)
    for kwargs in ({}, {"details": False, "empty": b""}):
        try:
            json_body(request, **kwargs)
        except APIError as exc:
            _client_error(exc, 400)
    try:
        AlertsAPI._body(request)
    except APIError as exc:
        _client_error(exc, 400)
    doc = {"id": "h", "kind": "post", "options": {"url": "x", "l": [1, 2]}, "match": ""}
    with suppress(ValueError, KeyError, IndexError, TypeError):  # what PATCH answers 400 to
        apply_patch(doc, patch)


LAMBDA_EXPR = Recursive(Choice(LAMBDA_LEAVES), lambda inner: Weighted([
    (1, Map(Tuple(Choice(LAMBDA_UNARY), inner), "".join)),
    (1, Map(Tuple(inner, Choice(LAMBDA_BINARY), inner), lambda t: f"({t[0]} {t[1]} {t[2]})")),
    (1, Map(Tuple(Choice(LAMBDA_CALLS), ListOf(inner, 3)),
            lambda t: f"{t[0]}({', '.join(t[1])})"))]))
FIELD_VALUE = Weighted([(1, Ints()), (1, Floats()), (1, Choice([True, False])),
                        (1, Map(Text(20), deliverable))])
TEMPLATE_DATA = Recursive(Weighted([(1, Const(None)), (1, Choice([True, False])), (1, Ints()),
                                    (1, Floats()), (1, Text(10))]),
                          lambda inner: Weighted([(1, ListOf(inner, 4)), (1, DictOf(
                              Soup(list(string.ascii_letters), 6), inner, 4))]))
JSON_PATCH = Weighted([(1, ANY_JSON), (4, ListOf(Obj(
    {"op": Weighted([(5, Choice(["add", "remove", "replace", "move", "copy", "test"])),
                     (1, ANY_JSON)]),
     "path": Weighted([(5, Soup(["/", "options", "url", "l", "id", "kind", "match", "0", "1",
                                 "-", "~0", "~1", "x", "99999999999999999999"], 6)),
                       (1, ANY_JSON)])},
    {"value": ANY_JSON, "from": Soup(["/", "options", "url", "l", "0", "-", "id"], 5)}), 4))])

def _command(inner: Schema) -> Schema:
    operand = Weighted([(6, Choice(TEMPLATE_OPERANDS)), (1, Map(inner, lambda p: f"({p})"))])
    return Weighted([(2, operand), (3, Map(Tuple(Choice(TEMPLATE_FUNCS), ListOf(operand, 3)),
                                           lambda t: " ".join([t[0], *t[1]])))])


# Go template pipelines built from the grammar: {{.|call}}, {{index .Tags 1 2}}, ...
TEMPLATE_PIPELINE = Recursive(Choice(TEMPLATE_OPERANDS), lambda inner: Map(
    Tuple(Choice(["", "$x := ", "$x = "]), ListOf(_command(inner), 3)),
    lambda t: t[0] + (" | ".join(t[1]) or ".")), max_leaves=8)
TEMPLATE_ACTION = Weighted([
    (4, Map(TEMPLATE_PIPELINE, lambda p: f"{{{{{p}}}}}")),
    (1, Map(Tuple(Choice(["if", "with", "range"]), TEMPLATE_PIPELINE, Choice(["", "x"]),
                  Choice(["", "{{else}}y", "{{break}}", "{{continue}}"])),
            lambda t: f"{{{{{t[0]} {t[1]}}}}}{t[2]}{t[3]}{{{{end}}}}")),
    (1, Choice(["text ", "{{/* c */}}", "{{- . -}}", "{{define \"t\"}}x{{end}}",
                "{{template \"t\" .}}", "{{block \"b\" .}}z{{end}}", "{{", "}}"]))])
TEMPLATE_TEXT = Map(ListOf(TEMPLATE_ACTION, 4), "".join)

PARSER_TARGETS: dict[str, ParserTarget] = {
    "lineprotocol.bytes": ParserTarget(Tuple(Bytes(600), Choice(PRECISIONS)), _lp),
    "lineprotocol.grammar": ParserTarget(
        Tuple(Weighted([(40, Soup(LP_PIECES, 80)),
                        (1, Map(Ints(), lambda i: monsters("lp")[i % 3]))]),
              Choice([*PRECISIONS, "x", ""])), _lp),
    "tickscript.grammar": ParserTarget(Tuple(Soup(TICK_PIECES, 80), Choice(TASK_TYPES)), _tick),
    "tickscript.text": ParserTarget(Tuple(Map(Text(300), deliverable), Choice(TASK_TYPES)),
                                    _tick),
    "tickscript.lambda": ParserTarget(
        Tuple(LAMBDA_EXPR, DictOf(Choice(["v", "n", "s", "ok"]), FIELD_VALUE, 4),
              DictOf(Choice(["host", "s"]), Map(Text(20), deliverable), 2), Ints()), _lambda),
    "gotemplate.grammar": ParserTarget(Tuple(Soup(TEMPLATE_PIECES, 50), TEMPLATE_DATA),
                                       _template),
    "gotemplate.structured": ParserTarget(Tuple(TEMPLATE_TEXT, TEMPLATE_DATA), _template),
    "gotemplate.text": ParserTarget(Tuple(Map(Text(200), deliverable), TEMPLATE_DATA),
                                    _template),
    "glob.pattern": ParserTarget(
        Tuple(Map(PATTERN, deliverable), ListOf(Tuple(Choice(["offset", "limit", "fields"]),
                                                      Weighted([(3, Choice(NUMBER_TEXTS)),
                                                                (2, Choice(TASK_FIELDS)),
                                                                (1, Map(Text(8), deliverable))
                                                                ])), 3)), _glob),
    "json.body": ParserTarget(Tuple(Map(Tuple(Weighted(
        [(200, ANY_JSON), (50, Bytes(300)), (10, Choice([RawBytes(r.text.encode())
                                                         for r in deep(1500)])),
         (1, BODY_MONSTER)]), Choice(ENCODINGS)), lambda b: body_bytes(*b)[0]),
        Map(JSON_PATCH, decoded)), _json_body),
}


# -- HTTP: a raw keep-alive client -------------------------------------------------------------

class Dropped(Exception):
    """The connection closed or reset before a complete answer."""


class NoAnswer(Exception):
    """No complete answer within the request timeout."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        body = self.body
        if self.headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)  # asked for with Accept-Encoding: gzip
        return json.loads(body)


@dataclass
class Call:
    """One request. ``expect``: a setup step, the statuses it must get (not fuzzed)."""

    method: str
    target: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    expect: tuple[int, ...] | None = None
    what: str = ""

    def describe(self, limit: int = 400) -> str:
        target = self.target if len(self.target) <= limit else short(self.target, limit)
        head = f"{self.method} {target}"
        for name, value in self.headers:
            head += f"\n  {name}: {short(value, 100)}"
        return head + (f"\n  body: {short(self.body, limit)}" if self.body else "")


class Connection:
    """One HTTP/1.1 keep-alive connection, raw sockets: nothing hidden, nothing retried."""

    def __init__(self, host: str, port: int, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, call: Call) -> Answer:
        started = time.perf_counter()
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = [f"{call.method} {call.target} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(call.body)}"]
        head += [f"{k}: {v}" for k, v in call.headers]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace") + call.body
        sock = self.sock
        try:
            with suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(data)  # a failure: answered early (413) and closed; read it
            answer = self._read(sock, call.method == "HEAD", started)
        except TimeoutError:
            self.close()
            raise NoAnswer(f"no answer within {self.timeout:.0f}s") from None
        except (ConnectionResetError, BrokenPipeError, Dropped) as exc:
            self.close()
            raise Dropped(str(exc) or type(exc).__name__) from None
        if answer.headers.get("connection", "").lower() == "close":
            self.close()
        return answer

    def _read(self, sock: socket.socket, head_only: bool, started: float) -> Answer:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise Dropped("connection closed without an answer" if not buf else
                              f"connection closed after {len(buf)} bytes of headers")
            buf += chunk
        raw_head, _, rest = buf.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise Dropped(f"not an HTTP answer: {lines[0][:80]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (204, 304) or status < 200:
            length = 0
        elif "content-length" in headers:
            length = int(headers["content-length"])
        else:
            raise Dropped("an answer without Content-Length")
        body = bytearray(rest)
        while len(body) < length:
            chunk = sock.recv(max(65536, length - len(body)))
            if not chunk:
                raise Dropped(f"connection closed after {len(body)} of {length} body bytes")
            body += chunk
        return Answer(status, headers, bytes(body[:length]), time.perf_counter() - started)


class Finding(AssertionError):
    """An invariant broken by one input; ``kind`` and ``signature`` group duplicates."""

    def __init__(self, kind: str, detail: str, calls: Sequence[Call] = (),
                 answer: Answer | None = None) -> None:
        self.kind, self.detail, self.calls, self.answer = kind, detail, list(calls), answer
        super().__init__(self.report())

    @property
    def signature(self) -> str:
        """Kind, detail and endpoint, with numbers and escapes blurred to group repeats."""
        call = self.calls[-1] if self.calls else None
        where = call.target.split("?")[0] if call else ""
        for name in ("tasks", "templates", "users", "handlers", "service-tests", "config",
                     "topics"):
            where = re.sub(rf"(/{name}/)[^/]+", r"\1*", where)
        where = re.sub(r"/[^/]*%[^/]*", "/*", where)
        detail = re.sub(r"\\+[ux][0-9a-fA-F]+|\d+", "N", self.detail[:120])
        return f"{self.kind}: {detail} [{call.method if call else ''} {where[:70]}]"

    def report(self, limit: int = 400) -> str:
        lines = [f"{self.kind}: {self.detail}"]
        if self.calls:
            lines.append("input (the last request is the one that failed):")
            if len(self.calls) > 6:
                lines.append(f"  ... {len(self.calls) - 6} earlier requests")
            lines += ["  " + c.describe(limit).replace("\n", "\n  ") for c in self.calls[-6:]]
        if self.answer is not None:
            lines.append(f"answer: {self.answer.status} {short(self.answer.body, limit)}")
        return "\n".join(lines)


def check_answer(call: Call, answer: Answer, calls: Sequence[Call]) -> None:
    if answer.status >= 500:
        try:
            detail = str(answer.json().get("error"))
        except (ValueError, AttributeError):
            detail = answer.body[:200].decode("utf-8", "replace")
        raise Finding(f"HTTP {answer.status}", detail, calls, answer)
    if answer.seconds > SLOW_S:
        raise Finding("slow", f"answered in {answer.seconds:.1f}s (budget {SLOW_S}s)",
                      calls, answer)
    if call.expect is not None and answer.status not in call.expect:
        raise Finding("setup", f"expected {call.expect}, got {answer.status}", calls, answer)
    json_answer = answer.headers.get("content-type", "").startswith("application/json")
    if call.method != "HEAD" and answer.status >= 400 and json_answer:
        try:
            error = answer.json()["error"]
        except (ValueError, KeyError, TypeError):
            error = None
        if not isinstance(error, str):
            raise Finding("error body", "not {\"error\": \"...\"}", calls, answer)


def run_input(conn: Connection, steps: Generator[Call, Answer, None]) -> list[Call]:
    """Play one input's requests on ``conn``; raise ``Finding`` on a broken invariant."""
    calls: list[Call] = []
    try:
        call = next(steps)
        while True:
            calls.append(call)
            try:
                answer = conn.request(call)
            except Dropped as exc:
                raise Finding("dropped", f"no complete answer: {exc}", calls) from None
            except NoAnswer as exc:
                raise Finding("hang", str(exc), calls) from None
            except ConnectionRefusedError:
                raise Finding("refused", "the daemon no longer accepts connections",
                              calls) from None
            check_answer(call, answer, calls)
            call = steps.send(answer)
    except StopIteration:
        pass
    return calls


def ping(host: str, port: int, budget: float = PING_S) -> float:
    """GET /kapacitor/v1/ping on a new connection: 204 within ``budget`` seconds, or a
    ``Finding`` (kind ``ping``). Returns the seconds it took."""
    conn = Connection(host, port, timeout=max(budget, SLOW_S))
    started = time.perf_counter()
    try:
        answer = conn.request(Call("GET", "/kapacitor/v1/ping"))
    except (OSError, Dropped, NoAnswer) as exc:
        raise Finding("ping", f"no answer: {type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    if answer.status != 204:
        raise Finding("ping", f"status {answer.status}")
    if seconds > budget:
        raise Finding("ping", f"answered in {seconds:.2f}s (budget {budget}s)")
    return seconds


# -- HTTP targets --------------------------------------------------------------------------------

@dataclass
class Ctx:
    """What targets know about the daemon: override sections and keys, service tests."""

    config_keys: dict[str, list[str]]
    services: dict[str, list[str]]
    prefix: str = "fz"
    log_level: str = "INFO"  # what a fuzzed POST /loglevel is set back to
    counter: int = 0
    cache: dict[str, Schema] = field(default_factory=dict)

    def uid(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter}"


Steps = Generator[Call, Answer, None]
V1 = "/kapacitor/v1"


def q(text: str) -> str:
    """One URL component, percent-encoded (lone surrogates as their UTF-8 bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_string(pairs: Iterable[tuple[str, str]], extra: str = "") -> str:
    text = "&".join(f"{q(k)}={q(v)}" for k, v in pairs) + extra
    return "?" + text if text else ""


QUERY_EXTRAS = Weighted([(12, Const("")), (1, Choice(
    ["&", "&&=&", "&pattern", "&pattern=%", "&pattern=%zz", "&pattern=%ED%A0%80",
     "&pattern=%FF%FE", "&%00=%00", ";x", "&limit=%00", "&fields", "&fields=&fields=",
     "&offset=1&offset=x", "#frag", "&pattern=" + "%2A" * 40 + "x"]))])
PATH_SEGMENT = Weighted([(3, Map(Text(20, 1), q)), (1, Map(Soup(ID_CHARS, 12, 1), q)),
                         (1, Choice(["..", ".", "%2F", "%00", "%FF", "%", "%ED%A0%80",
                                     "a%2Fb", "~", "%20", "%0A", "*", "a" * 5000]))])
LIST_NUMBER = Weighted([(4, Choice(NUMBER_TEXTS)), (1, Soup(list("0123456789-+ _."), 10)),
                        (1, Text(8))])
FIELD_NAMES = Weighted([(4, Choice(TASK_FIELDS)), (1, Text(10))])


def params(**schemas: Any) -> Schema:
    """Query parameters, each present or not; ``fields`` may repeat."""
    optional = {k.replace("_", "-"): v for k, v in schemas.items()}
    return Map(Tuple(Obj({}, optional), QUERY_EXTRAS), _pairs)


def _pairs(t: tuple[dict[str, Any], str]) -> str:
    values, extra = t
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        for item in (value if isinstance(value, list) else [value]):
            pairs.append((name, item))
    return query_string(pairs, extra)


def fuzz_body(g: Any, schema: Schema, label: str = "body") -> tuple[bytes, tuple]:
    value, encoding = g.draw(schema, label)
    return body_bytes(value, encoding)


def _created_id(answer: Answer, key: str = "id") -> str | None:
    if answer.status != 200:
        return None
    try:
        value = answer.json().get(key)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _task_json(task_id: str, script: str = VALID_SCRIPTS[0], status: str = "disabled"
               ) -> bytes:
    return json.dumps({"id": task_id, "type": "stream", "dbrps": [{"db": "d", "rp": "r"}],
                       "script": script, "status": status}).encode()


def delete(path: str, ident: str) -> Call:
    # 431: an ID too long for a request line (creating it was allowed, as in Kapacitor)
    return Call("DELETE", f"{path}/{q(ident)}", expect=(200, 204, 404, 431), what="cleanup")


TASK_FIELDS_SCHEMA = {"id": ID, "type": TASK_TYPE, "dbrps": DBRPS, "script": SCRIPT,
                      "status": STATUS, "vars": VARS, "template-id": TEMPLATE_ID}
TASK_CREATE = Obj({}, TASK_FIELDS_SCHEMA)
TASK_BODY = body(Weighted([(30, TASK_CREATE), (1, object_with_monster(TASK_CREATE))]))
TASK_PATCH = TASK_BODY


def t_task_create(g: Any, ctx: Ctx) -> Steps:
    """Task create (POST /tasks): every field fuzzed; deleted again when created."""
    data, headers = fuzz_body(g, TASK_BODY)
    answer = yield Call("POST", f"{V1}/tasks", data, headers)
    created = _created_id(answer)
    if created is not None:
        yield delete(f"{V1}/tasks", created)


def t_task_patch(g: Any, ctx: Ctx) -> Steps:
    """Task update (PATCH /tasks/<id>) of a fresh valid task, enabled or not."""
    task = ctx.uid()
    status = g.draw(Choice(["enabled", "disabled"]), "status")
    script = g.draw(Choice([VALID_SCRIPTS[i] for i in (0, 1, 3, 4)]), "script")
    yield Call("POST", f"{V1}/tasks", _task_json(task, script, status), expect=(200,),
               what="setup")
    data, headers = fuzz_body(g, TASK_PATCH)
    answer = yield Call("PATCH", f"{V1}/tasks/{task}", data, headers)
    renamed = _created_id(answer)
    for name in {task, renamed} - {None}:
        yield delete(f"{V1}/tasks", name)


def tick_string(text: str) -> str:
    """``text`` as a single-quoted TICKscript string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# An alert whose message, details and ID are Go templates: compiled when the task is.
ALERT_TEMPLATES = Map(Tuple(Choice(["message", "details", "id"]),
                            Weighted([(1, Soup(TEMPLATE_PIECES, 20)), (3, TEMPLATE_TEXT)])),
                      lambda t: f"stream|from()|alert().crit(lambda: TRUE).{t[0]}"
                                f"({tick_string(t[1])})")
TICK_SCRIPT = Weighted([(8, Soup(TICK_PIECES, 60)), (3, Choice(VALID_SCRIPTS)),
                        (4, ALERT_TEMPLATES),
                        (2, Text(120)), (1, Map(Ints(), lambda i: Raw(json.dumps(
                            monsters("tick")[i % len(monsters("tick"))], ensure_ascii=True))))])


def t_tickscript(g: Any, ctx: Ctx) -> Steps:
    """TICKscript through task create: parse, evaluate and (enabled) start."""
    task = ctx.uid()
    value = {"id": task, "type": g.draw(Choice(TASK_TYPES), "type"),
             "dbrps": [{"db": "d", "rp": "r"}], "script": g.draw(TICK_SCRIPT, "script"),
             "status": g.draw(Choice(["enabled", "disabled"]), "status")}
    answer = yield Call("POST", f"{V1}/tasks", encode_json(value).encode())
    if answer.status == 200:
        yield delete(f"{V1}/tasks", task)


TEMPLATE_CREATE = Obj({}, {"id": ID, "type": TASK_TYPE, "script": Weighted(
    [(3, Const(TEMPLATE_SCRIPT)), (4, SCRIPT)]), "vars": VARS})
TEMPLATE_BODY = body(Weighted([(30, TEMPLATE_CREATE), (1, object_with_monster(TEMPLATE_CREATE))]))
TEMPLATE_TASK = body(Obj({"template-id": TEMPLATE_ID, "vars": VARS},
                         {"dbrps": DBRPS, "status": STATUS, "type": TASK_TYPE,
                          "script": SCRIPT}))


def t_template(g: Any, ctx: Ctx) -> Steps:
    """Template create, or PATCH of a fresh template with a task made from it."""
    if g.draw(Choice([True, False]), "create"):
        data, headers = fuzz_body(g, TEMPLATE_BODY)
        answer = yield Call("POST", f"{V1}/templates", data, headers)
        created = _created_id(answer)
        if created is not None:
            yield delete(f"{V1}/templates", created)
        return
    template, task = ctx.uid(), ctx.uid()
    yield Call("POST", f"{V1}/templates", json.dumps(
        {"id": template, "type": "stream", "script": TEMPLATE_SCRIPT}).encode(),
        expect=(200,), what="setup")
    yield Call("POST", f"{V1}/tasks", json.dumps(
        {"id": task, "template-id": template, "dbrps": [{"db": "d", "rp": "r"}],
         "vars": {"r": {"type": "regex", "value": "^a"}, "s": {"type": "string", "value": "m"},
                  "f": {"type": "float", "value": 1.5}, "i": {"type": "int", "value": 1},
                  "l": {"type": "lambda", "value": "TRUE"},
                  "b": {"type": "bool", "value": True}}}).encode(),
        expect=(200,), what="setup")
    data, headers = fuzz_body(g, TEMPLATE_BODY)
    yield Call("PATCH", f"{V1}/templates/{template}", data, headers)
    yield delete(f"{V1}/tasks", task)
    yield delete(f"{V1}/templates", template)


def t_template_task(g: Any, ctx: Ctx) -> Steps:
    """A task made from a template: ``template-id`` and typed ``vars`` fuzzed."""
    value, encoding = g.draw(TEMPLATE_TASK, "body")
    if isinstance(value, dict):
        value = {"id": ctx.uid(), **value}
    data, headers = body_bytes(value, encoding)
    answer = yield Call("POST", f"{V1}/tasks", data, headers)
    created = _created_id(answer)
    if created is not None:
        yield delete(f"{V1}/tasks", created)


HANDLER = Obj({}, {"id": ID, "kind": Weighted([(4, Choice(HANDLER_KINDS)), (1, ANY_JSON)]),
                   "options": OPTIONS, "match": Weighted([(2, Soup(TICK_PIECES, 20)),
                                                          (2, Choice(MATCHES)), (1, ANY_JSON)])})
HANDLER_BODY = body(Weighted([(30, HANDLER), (1, object_with_monster(HANDLER))]))
TOPIC = Weighted([(4, Choice(FIXTURE_TOPICS)), (2, Soup(list(string.ascii_letters + "-_.:"),
                                                        10, 1)), (1, PATH_SEGMENT)])


def t_handler(g: Any, ctx: Ctx) -> Steps:
    """Topic handlers: create (POST), replace (PUT) or JSON-Patch (PATCH) a fresh one."""
    method = g.draw(Choice(["POST", "PUT", "PATCH"]), "method")
    if method == "POST":
        topic = g.draw(TOPIC, "topic")
        data, headers = fuzz_body(g, HANDLER_BODY)
        answer = yield Call("POST", f"{V1}/alerts/topics/{topic}/handlers", data, headers)
        created = _created_id(answer)
        if created is not None:
            yield delete(f"{V1}/alerts/topics/{topic}/handlers", created)
        return
    topic, handler = FIXTURE_TOPICS[1], ctx.uid()
    yield Call("POST", f"{V1}/alerts/topics/{topic}/handlers", json.dumps(
        {"id": handler, "kind": "post", "options": {"url": "http://127.0.0.1:1/x"}}).encode(),
        expect=(200,), what="setup")
    if method == "PUT":
        data, headers = fuzz_body(g, HANDLER_BODY)
    else:
        data, headers = fuzz_body(g, body(JSON_PATCH))
    answer = yield Call(method, f"{V1}/alerts/topics/{topic}/handlers/{handler}", data,
                        headers)
    for name in {handler, _created_id(answer)} - {None}:
        yield delete(f"{V1}/alerts/topics/{topic}/handlers", name)


CONFIG_VALUE = Weighted([(4, ANY_JSON), (1, DEEP_VALUES), (2, Choice(DURATIONS)), (2, URL),
                         (1, Ints()),
                         (1, Choice(["", "127.0.0.1:0", "localhost:1", "0.0.0.0:99999"])),
                         (1, ListOf(URL, 3)), (1, STRING_MONSTER)])


def t_config(g: Any, ctx: Ctx) -> Steps:
    """Config overrides (POST /config/<section>[/<element>]): set, delete, add, remove."""
    section = g.draw(Weighted([(8, Choice(sorted(ctx.config_keys))), (1, PATH_SEGMENT)]),
                     "section")
    keys = ctx.config_keys.get(section) or ["enabled"]
    key_schema = ctx.cache.get("config:" + section)
    if key_schema is None:
        key_schema = ctx.cache["config:" + section] = Weighted([(6, Choice(keys)),
                                                                (1, Text(12))])
        ctx.cache["config-body:" + section] = body(Weighted([
            (4, Obj({"set": DictOf(key_schema, CONFIG_VALUE, 3)})),
            (2, Obj({"delete": ListOf(key_schema, 3)})),
            (1, Obj({"add": Weighted([(1, ANY_JSON), (2, DictOf(key_schema, CONFIG_VALUE))])})),
            (1, Obj({"remove": Weighted([(1, ANY_JSON), (2, ListOf(Text(10)))])})),
            (1, Obj({}, {"set": ANY_JSON, "delete": ANY_JSON, "add": ANY_JSON,
                         "remove": ANY_JSON}))]))
    element = g.draw(Weighted([(6, Choice(["", "/", "/default", "/x"])),
                               (1, Map(PATH_SEGMENT, lambda s: "/" + s))]), "element")
    data, headers = fuzz_body(g, ctx.cache["config-body:" + section])
    yield Call("POST", f"{V1}/config/{section}{element}", data, headers)


def t_service_test(g: Any, ctx: Ctx) -> Steps:
    """Service tests (POST /service-tests/<name>) with fuzzed options."""
    name = g.draw(Weighted([(8, Choice(sorted(ctx.services))), (1, PATH_SEGMENT)]), "service")
    options = ctx.cache.get("service:" + name)
    if options is None:
        keys = ctx.services.get(name) or ["url"]
        options = ctx.cache["service:" + name] = body(DictOf(
            Weighted([(8, Choice(keys)), (1, Choice(OPTION_KEYS)), (1, Text(10))]),
            OPTION_VALUE, 4))
    data, headers = fuzz_body(g, options)
    yield Call("POST", f"{V1}/service-tests/{name}", data, headers)


USER_NAME = Weighted([(4, Soup([*string.ascii_letters, *string.digits, *"-._@", "\u00e9",
                                "\u210c", "\n", "..", "/"], 14, 1)), (2, Text(16)),
                      (1, ANY_JSON), (1, STRING_MONSTER)])
USER = Obj({}, {"name": USER_NAME,
                "password": Weighted([(2, Choice(["pw", "x" * 72, "x" * 73])), (4, Text(20)),
                                      (1, ANY_JSON)]),
                "type": Weighted([(4, Choice(["normal", "admin", "ADMIN", "", "root"])),
                                  (1, ANY_JSON)]),
                "permissions": Weighted([(4, ListOf(Choice(PERMISSIONS), 4)),
                                         (1, ANY_JSON)])})
USER_BODY = body(USER)


def t_user(g: Any, ctx: Ctx) -> Steps:
    """Users (served with [auth] enabled): create, or PATCH a fresh one."""
    if g.draw(Choice([True, False]), "create"):
        data, headers = fuzz_body(g, USER_BODY)
        answer = yield Call("POST", f"{V1}/users", data, headers)
        created = _created_id(answer, "name")
        if created is not None:
            yield delete(f"{V1}/users", created)
        return
    user = ctx.uid()
    yield Call("POST", f"{V1}/users", json.dumps({"name": user, "password": "pw"}).encode(),
               expect=(200,), what="setup")
    data, headers = fuzz_body(g, USER_BODY)
    yield Call("PATCH", f"{V1}/users/{user}", data, headers)
    yield delete(f"{V1}/users", user)


SMALL_POSTS = ["/loglevel", "/subscriptions", "/sideload/reload"]
LOGLEVEL_BODY = body(Obj({}, {"level": Weighted([(4, Choice(LOG_LEVELS)), (1, Text(10)),
                                                 (1, ANY_JSON)])}))


def t_server(g: Any, ctx: Ctx) -> Steps:
    """The small POST endpoints: loglevel (set back after), subscriptions, sideload."""
    path = g.draw(Choice(SMALL_POSTS), "path")
    data, headers = fuzz_body(g, LOGLEVEL_BODY)
    answer = yield Call("POST", V1 + path, data, headers)
    if path == "/loglevel" and answer.status == 204:
        yield Call("POST", f"{V1}/loglevel", json.dumps({"level": ctx.log_level}).encode(),
                   expect=(204,), what="reset")


WRITE_QUERY = params(db=Weighted([(6, Choice(["d", "x", "_kapacitor"])), (1, Text(10))]),
                     rp=Weighted([(6, Choice(["r", "autogen", ""])), (1, Text(10))]),
                     precision=Weighted([(6, Choice([*PRECISIONS, "", "x"])), (1, Text(4))]),
                     consistency=Choice(["one", "all", "x"]), u=Text(6), p=Text(6))
WRITE_BODY = Tuple(Weighted([(8, Map(Soup(LP_PIECES, 80), lambda s: s.encode(
    "utf-8", "surrogatepass"))), (4, Map(ListOf(Choice(VALID_LINES), 6), lambda ls: "\n".join(
        ls).encode())), (2, Bytes(400)), (1, Map(Ints(), lambda i: monsters("lp")[i % len(
            monsters("lp"))]))]), Choice(["json"] * 8 + ["gzip", "gzip-garbage"]))


def t_write(g: Any, ctx: Ctx) -> Steps:
    """Line protocol through /write into the stream (the fixture tasks read d.r)."""
    path = g.draw(Choice(["/write", f"{V1}/write"]), "path")
    data, headers = fuzz_body(g, WRITE_BODY)
    yield Call("POST", path + g.draw(WRITE_QUERY, "query"), data, headers)


LIST_QUERY = params(pattern=PATTERN, fields=ListOf(FIELD_NAMES, 3), offset=LIST_NUMBER,
                    limit=LIST_NUMBER, script_format=Weighted([(4, Choice(
                        ["formatted", "raw", "", "RAW"])), (1, Text(6))]),
                    dot_view=Weighted([(4, Choice(["attributes", "labels", "", "x"])),
                                       (1, Text(6))]))
LEVEL_QUERY = params(pattern=PATTERN, min_level=Weighted([(4, Choice(LEVELS)), (1, Text(6))]))
ONE_QUERY = params(script_format=Choice(["formatted", "raw", "", "x"]),
                   dot_view=Choice(["attributes", "labels", "x"]), pattern=PATTERN)


def _ids(fixed: list[str]) -> Schema:
    return Weighted([(4, Choice([q(i) for i in fixed])), (1, PATH_SEGMENT)])


QUERY_PATHS: list[tuple[str, Schema, Schema | None]] = [
    (f"{V1}/tasks", LIST_QUERY, None),
    (f"{V1}/tasks/{{}}", ONE_QUERY, _ids(FIXTURE_TASKS)),
    (f"{V1}/tasks/{{}}/out", ONE_QUERY, _ids(FIXTURE_TASKS)),
    (f"{V1}/templates", LIST_QUERY, None),
    (f"{V1}/templates/{{}}", ONE_QUERY, _ids(FIXTURE_TEMPLATES)),
    (f"{V1}/alerts/topics", LEVEL_QUERY, None),
    (f"{V1}/alerts/topics/{{}}", LEVEL_QUERY, _ids(FIXTURE_TOPICS)),
    (f"{V1}/alerts/topics/{{}}/events", LEVEL_QUERY, _ids(FIXTURE_TOPICS)),
    (f"{V1}/alerts/topics/{LONG_ID}/events/{{}}", LEVEL_QUERY, _ids([LONG_ID, "x"])),
    (f"{V1}/alerts/topics/{{}}/handlers", LEVEL_QUERY, _ids(FIXTURE_TOPICS)),
    (f"{V1}/alerts/topics/{FIXTURE_TOPICS[1]}/handlers/{{}}", LEVEL_QUERY,
     _ids(FIXTURE_HANDLERS)),
    (f"{V1}/service-tests", LIST_QUERY, None),
    (f"{V1}/service-tests/{{}}", LIST_QUERY, _ids(["slack", "smtp", "httppost"])),
    (f"{V1}/users", LIST_QUERY, None),
    (f"{V1}/users/{{}}", LIST_QUERY, _ids(FIXTURE_USERS)),
    (f"{V1}/config/{{}}", LIST_QUERY, _ids(["smtp", "smtp/", "slack/default", "x/y/z"])),
    (f"{V1}/debug/vars", LIST_QUERY, None),
    (f"{V1}/:routes", LIST_QUERY, None),
    (f"{V1}/ping", LIST_QUERY, None),
]


def t_query(g: Any, ctx: Ctx) -> Steps:
    """GET with fuzzed query parameters (patterns, fields, offsets, limits, formats,
    levels) and path parameters, on every endpoint that reads them."""
    path, query, ident = g.draw(Choice(QUERY_PATHS), "endpoint")
    if ident is not None:
        path = path.format(g.draw(ident, "id"))
    yield Call(g.draw(Weighted([(8, Const("GET")), (1, Const("HEAD"))]), "method"),
               path + g.draw(query, "query"))


ROUTES = ["/kapacitor/v1/alerts/topics/{topic}", "/kapacitor/v1/alerts/topics/{topic}/events",
          "/kapacitor/v1/alerts/topics/{topic}/events/{event}",
          "/kapacitor/v1/alerts/topics/{topic}/handlers",
          "/kapacitor/v1/alerts/topics/{topic}/handlers/{handler}",
          "/kapacitor/v1/config/{rest}", "/kapacitor/v1/service-tests/{name}",
          "/kapacitor/v1/tasks/{id}", "/kapacitor/v1/tasks/{id}/{endpoint}",
          "/kapacitor/v1/templates/{id}", "/kapacitor/v1/users/{name}", "/kapacitor/v1/users/",
          "/kapacitor/v1/loglevel", "/kapacitor/v1/subscriptions", "/kapacitor/v1/write",
          "/kapacitor/v1preview/tasks/{id}", "/write", "/kapacitor/v1/debug/pprof/{x}",
          "/kapacitor/v1/sideload/reload", "/{x}", "/kapacitor/v1/{x}"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "FOO"]
HEADER = Weighted([(3, Const(())), (2, Tuple(Tuple(Choice(
    ["Content-Type", "Content-Encoding", "Authorization", "Origin", "Accept-Encoding",
     "Transfer-Encoding", "Expect", "X-HTTP-Method-Override"]),
    Weighted([(3, Choice(["gzip", "identity", "deflate", "Basic " + "A" * 20, "Bearer x.y.z",
                          "Basic ZnV6ejo=", "chunked", "100-continue", "application/json",
                          "text/plain; charset=latin-1", "null"])),
              (2, Map(Text(20), lambda t: t.encode("utf-8", "surrogatepass")
                      .decode("latin-1").replace("\r", "").replace("\n", "")))]))))])


def t_any_route(g: Any, ctx: Ctx) -> Steps:
    """Any method on any route, fuzzed path parameters, body and one odd header (never
    a fixture ID, so DELETE cannot remove what the query target reads)."""
    route = g.draw(Choice(ROUTES), "route")
    while "{" in route:
        start = route.index("{")
        route = route[:start] + g.draw(PATH_SEGMENT, "param") + route[route.index("}") + 1:]
    method = g.draw(Choice(METHODS), "method")
    data, headers = fuzz_body(g, body(ANY_JSON, 1))
    extra = g.draw(HEADER, "header")
    names = {k.lower() for k, _ in extra}
    if "transfer-encoding" in names or "expect" in names:
        extra = ()  # framing of our own making: not the server's to answer
    yield Call(method, route + g.draw(LIST_QUERY, "query"), data, headers + tuple(extra))


HTTP_TARGETS: dict[str, Callable[[Any, Ctx], Steps]] = {
    "api.task": t_task_create,
    "api.task_patch": t_task_patch,
    "api.tickscript": t_tickscript,
    "api.template": t_template,
    "api.template_task": t_template_task,
    "api.handler": t_handler,
    "api.config": t_config,
    "api.service_test": t_service_test,
    "api.user": t_user,
    "api.server": t_server,
    "api.write": t_write,
    "api.query": t_query,
    "api.any_route": t_any_route,
}


# -- the daemon under test ----------------------------------------------------------------------

# Every non-loopback range: whatever a fuzzed option points at, nothing leaves the host.
NOT_LOOPBACK = ("0.0.0.0/2,64.0.0.0/3,96.0.0.0/4,112.0.0.0/5,120.0.0.0/6,124.0.0.0/7,"
                "126.0.0.0/8,128.0.0.0/1,::/0")
DAEMON_CONFIG = {"http": {"log-enabled": False}, "logging": {"level": "INFO"},
                 "auth": {"enabled": True, "bcrypt-cost": 4}}
DAEMON_ARGS = ["-blacklist-cidrs", NOT_LOOPBACK, "-disable-handlers", "exec,log"]


def setup_calls() -> Steps:
    """The fixtures: tasks, templates, topics with handlers and an event, users."""
    scripts = [VALID_SCRIPTS[4], VALID_SCRIPTS[0], VALID_SCRIPTS[3]]
    for task, script in zip(FIXTURE_TASKS, scripts, strict=True):
        yield delete(f"{V1}/tasks", task)
        yield Call("POST", f"{V1}/tasks", _task_json(task, script, "enabled"), expect=(200,))
    for template in FIXTURE_TEMPLATES:
        yield delete(f"{V1}/templates", template)
        yield Call("POST", f"{V1}/templates", json.dumps(
            {"id": template, "type": "stream", "script": TEMPLATE_SCRIPT}).encode(),
            expect=(200,))
    for topic in FIXTURE_TOPICS:
        for handler in FIXTURE_HANDLERS:
            yield delete(f"{V1}/alerts/topics/{topic}/handlers", handler)
            yield Call("POST", f"{V1}/alerts/topics/{topic}/handlers", json.dumps(
                {"id": handler, "kind": "aggregate",
                 "options": {"interval": 3_600_000_000_000, "topic": "fz-aggregated"}}).encode(),
                expect=(200,))
    for user in FIXTURE_USERS:
        yield delete(f"{V1}/users", user)
        yield Call("POST", f"{V1}/users", json.dumps(
            {"name": user, "password": "pw", "permissions": ["api"]}).encode(), expect=(200,))
    yield Call("POST", "/write?db=d&rp=r", "\n".join(VALID_LINES).encode(), expect=(204,))


def discover(conn: Connection) -> Ctx:
    """Read the override sections and the service tests from the daemon."""
    sections = conn.request(Call("GET", f"{V1}/config")).json()["sections"]
    keys = {name: [k for k in s["elements"][0]["options"] if k != "enabled"] + ["enabled"]
            for name, s in sections.items() if s["elements"]}
    services = {s["name"]: sorted(s["options"]) for s in
                conn.request(Call("GET", f"{V1}/service-tests")).json()["services"]}
    return Ctx(keys, services)
