"""The console's JavaScript modules (kapa_core/http/console/*.js), run where they run: in
headless Chromium, imported by a page the daemon serves, under its Content-Security-Policy.

Each pure function is held against an oracle rather than hand-written answers wherever
one exists:

- ``parseDot`` against the daemon itself: the DOT of real tasks (joins, unions, a node
  with several children, executing or not) must give the nodes and edges that
  ``POST /kapacitor/v1/scripts/check`` lists for the same script, and the node and edge
  attributes the task's own statistics;
- ``layout`` (through ``drawGraph``, which places what it computes) against geometry, for
  random DAGs: no two boxes overlap, every edge goes down, all of it inside the picture;
- ``goDuration`` against ``kapa_core.models.duration.format_go`` (Go's Duration.String);
- ``tokenize`` against the project's TICKscript lexer (kapa_core.tick.lexer, which follows
  Kapacitor's) on every TICKscript in examples/ and tests/, and on random text;
- ``parseDbrps`` against the ``kapacitor define -dbrp`` flag's parser, and
  ``unescapeHTML`` against Python's ``html.unescape`` on the details of an alert that
  really fired.

A few tests at the end go through the page where a module's result is used (the DBRPs
and vars the editor saves back, a delete by ID).
"""

from __future__ import annotations

import ast
import html
import json
import re
import string
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapa_core.cli.kapa.tasks import DBRPValue
from kapa_core.models.duration import format_go
from kapa_core.testing import DaemonProcess
from kapa_core.tick.lexer import T
from kapa_core.tick.lexer import tokenize as tick_tokens
from tests.browser.webdriver import Browser

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DBRPS = [{"db": "telegraf", "rp": "autogen"}]
# Each example makes one round trip to the browser (a few milliseconds); the module
# fixtures are shared by all examples on purpose (one daemon, one page).
BROWSER_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                            suppress_health_check=[HealthCheck.function_scoped_fixture])

# Runs in the page: calls an exported function of a console module with JSON arguments,
# and answers {value} or {error} (a thrown error as its message, not a failed command).
CALL_JS = """
const [module, name, args] = arguments;
return import('/console/' + module).then((m) => {
  try { return { value: m[name](...args) }; }
  catch (err) { return { error: String(err && err.message) }; }
});
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess() as running:
        yield running


@pytest.fixture(scope="module")
def page(browser: Browser, daemon: DaemonProcess) -> Browser:
    """The browser on the console's page, so the modules load as the console loads them
    (same origin, same Content-Security-Policy)."""
    browser.get(f"{daemon.url}/console/#/tasks")  # returns once the page has loaded
    return browser


def call(page: Browser, module: str, name: str, *args: Any) -> Any:
    """What ``module``'s ``name(*args)`` returns in the page (JSON-shaped)."""
    answer = page.execute(CALL_JS, module, name, list(args))
    assert "error" not in answer, f"{module} {name}{args!r} threw: {answer['error']}"
    return answer["value"]


def api(daemon: DaemonProcess, path: str) -> str:
    return f"{daemon.url}/kapacitor/v1{path}"


# -- parseDot, against the daemon's own DOT and check -------------------------------------

JOIN_UNION = """var cpu = stream
    |from()
        .measurement('cpu')
var mem = stream
    |from()
        .measurement('mem')
cpu
    |join(mem)
        .as('c', 'm')
        .tolerance(1s)
    |eval(lambda: "c.v" + "m.v")
        .as('sum')
    |log()
cpu
    |union(mem)
    |httpOut('both')
cpu
    |window()
        .period(10s)
        .every(10s)
    |count('v')
"""
# several children of one node, and a chain below a node that also has a sibling
FAN_OUT = """var data = stream
    |from()
        .measurement('disk')
    |where(lambda: "used" > 0)
data
    |derivative('used')
    |alert()
        .crit(lambda: "derivative" > 10)
        .topic('disk')
data
    |stateDuration(lambda: "used" > 5)
    |httpOut('state')
data
    |default()
        .field('total', 100)
    |eval(lambda: "used" / "total")
        .as('ratio')
"""
BATCH = """batch
    |query('SELECT mean(usage) FROM "telegraf"."autogen"."cpu"')
        .period(1m)
        .every(1m)
        .groupBy('host')
    |alert()
        .crit(lambda: "mean" > 90)
"""
TASKS = {"join_union": ("stream", JOIN_UNION), "fan_out": ("stream", FAN_OUT),
         "batch_one": ("batch", BATCH)}
#: how many of POINTS each task reads (those of the measurements its from() name)
READ = {"join_union": 5, "fan_out": 3}
POINTS = "\n".join(["cpu v=1 1", "mem v=2 1", "cpu v=3 2", "mem v=4 2", "cpu v=5 12",
                    "disk used=5,total=10 1", "disk used=9 2", "disk used=30,total=40 3"])


@pytest.fixture(scope="module")
def tasks(daemon: DaemonProcess) -> dict[str, str]:
    """Three tasks defined disabled; their ids -> scripts."""
    for task_id, (kind, script) in TASKS.items():
        answer = httpx.post(api(daemon, "/tasks"), json={
            "id": task_id, "type": kind, "dbrps": DBRPS, "script": script,
            "status": "disabled"})
        assert answer.status_code == 200, answer.text
    return {task_id: script for task_id, (_, script) in TASKS.items()}


def check(daemon: DaemonProcess, task_id: str, kind: str, script: str) -> dict[str, Any]:
    answer = httpx.post(api(daemon, "/scripts/check"), json={
        "script": script, "type": kind, "dbrps": DBRPS, "id": task_id})
    assert answer.status_code == 200, answer.text
    checked: dict[str, Any] = answer.json()
    assert checked["ok"], checked["errors"]
    return checked


def test_parse_dot_of_tasks_not_executing_gives_what_check_lists(
        page: Browser, daemon: DaemonProcess, tasks: dict[str, str]) -> None:
    for task_id, (kind, script) in TASKS.items():
        task = httpx.get(api(daemon, f"/tasks/{task_id}")).json()
        assert not task["executing"]
        graph = call(page, "graph.js", "parseDot", task["dot"])
        checked = check(daemon, task_id, kind, script)
        # the same nodes (check lists them in the order a running task's DOT does)
        assert sorted(n["id"] for n in graph["nodes"]) == sorted(
            n["id"] for n in checked["nodes"])
        assert [(e["from"], e["to"]) for e in graph["edges"]] == [
            (e["from"], e["to"]) for e in checked["edges"]]
        # kindOf, which names the node's CSS class, agrees with check's kind
        for node in checked["nodes"]:
            assert call(page, "graph.js", "kindOf", node["id"]) == node["kind"] or (
                node["kind"] == "influxql")  # mean3 is an influxql node in the API
    joins = call(page, "graph.js", "parseDot",
                 httpx.get(api(daemon, "/tasks/join_union")).json()["dot"])
    into = [e["from"] for e in joins["edges"] if e["to"] == "join4"]
    assert sorted(into) == ["from1", "from2"]  # the join really has two parents


def test_parse_dot_of_executing_tasks_gives_their_nodes_edges_and_stats(
        page: Browser, daemon: DaemonProcess) -> None:
    for task_id in READ:  # the same scripts as enabled tasks of their own
        kind, script = TASKS[task_id]
        answer = httpx.post(api(daemon, "/tasks"), json={
            "id": f"{task_id}_running", "type": kind, "dbrps": DBRPS, "script": script,
            "status": "enabled"})
        assert answer.status_code == 200, answer.text
    written = httpx.post(f"{daemon.url}/write", content=POINTS,
                         params={"db": "telegraf", "rp": "autogen", "precision": "s"})
    assert written.status_code == 204, written.text
    for task_id in READ:
        kind, script = TASKS[task_id]
        deadline = time.monotonic() + 10
        while True:  # until every point went through
            task = httpx.get(api(daemon, f"/tasks/{task_id}_running")).json()
            stats = task["stats"]["node-stats"]
            if stats["stream0"]["collected"] == READ[task_id] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert task["executing"]
        graph = call(page, "graph.js", "parseDot", task["dot"])
        checked = check(daemon, task_id, kind, script)
        # a running task's DOT lists the same graph, in its own order
        assert sorted(n["id"] for n in graph["nodes"]) == sorted(
            n["id"] for n in checked["nodes"])
        assert sorted((e["from"], e["to"]) for e in graph["edges"]) == sorted(
            (e["from"], e["to"]) for e in checked["edges"])
        assert set(stats) == {n["id"] for n in graph["nodes"]}
        for node in graph["nodes"]:
            mine = stats[node["id"]]
            assert node["attrs"]["errors"] == str(mine["errors"])
            assert node["attrs"]["working_cardinality"] == str(mine["working_cardinality"])
            assert node["attrs"]["avg_exec_time_ns"] == format_go(mine["avg_exec_time_ns"])
            out = [int(e["attrs"]["processed"]) for e in graph["edges"]
                   if e["from"] == node["id"]]
            into = [int(e["attrs"]["processed"]) for e in graph["edges"]
                    if e["to"] == node["id"]]
            if out:  # each edge counts what went along it
                assert sum(out) == mine["emitted"], node["id"]
            if into:
                assert sum(into) == mine["collected"], node["id"]
        assert stats["stream0"]["collected"] == READ[task_id]


# -- layout, through drawGraph, on random DAGs --------------------------------------------

# Runs in the page: draws the graph (drawGraph places each node where layout says) and
# answers each node's box and each edge's end points, in the SVG's coordinates.
DRAW_JS = """
const [graph, counts] = arguments;
return import('/console/graph.js').then(({ drawGraph }) => {
  const box = document.createElement('div');
  document.body.append(box);
  try {
    const { svg } = drawGraph(box, graph, { counts });
    const boxes = {};
    for (const g of svg.querySelectorAll('g.node')) {
      const m = g.transform.baseVal.consolidate().matrix;
      const r = g.querySelector('rect.box');
      boxes[g.dataset.node] = [m.e + r.x.baseVal.value, m.f + r.y.baseVal.value,
                               r.width.baseVal.value, r.height.baseVal.value];
    }
    const edges = [...svg.querySelectorAll('path.edge')].map((p) => [p.dataset.edge,
      p.getPointAtLength(0).y, p.getPointAtLength(p.getTotalLength()).y]);
    return { boxes, edges, width: svg.width.baseVal.value, height: svg.height.baseVal.value };
  } finally { box.remove(); }
});
"""


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Any]:
    """A DAG as parseDot gives it: nodes named like a task's, edges from an earlier node to
    a later one (so no cycle), many parents and children, several roots, lone nodes."""
    count = draw(st.integers(1, 14))
    ids = [f"{draw(st.sampled_from(['from', 'window', 'join', 'eval', 'alert']))}{i}"
           for i in range(count)]
    pairs = [(a, b) for a in range(count) for b in range(a + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=25)) if pairs else []
    return {"nodes": [{"id": i, "attrs": {}} for i in ids],
            "edges": [{"from": ids[a], "to": ids[b], "attrs": {}} for a, b in chosen]}


def _overlap(a: list[float], b: list[float]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@BROWSER_SETTINGS
@given(graph=dags(), counts=st.booleans())
def test_layout_of_random_dags_has_no_overlap_and_edges_go_down(
        page: Browser, graph: dict[str, Any], counts: bool) -> None:
    drawn = page.execute(DRAW_JS, graph, counts)
    boxes = drawn["boxes"]
    assert sorted(boxes) == sorted(n["id"] for n in graph["nodes"])
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        x, y, w, h = boxes[a]
        assert w > 0 and h > 0
        assert 0 <= x and x + w <= drawn["width"] and 0 <= y and y + h <= drawn["height"], a
        for b in ids[i + 1:]:
            assert not _overlap(boxes[a], boxes[b]), f"{a} {boxes[a]} overlaps {b} {boxes[b]}"
    for edge in graph["edges"]:
        parent, child = boxes[edge["from"]], boxes[edge["to"]]
        assert parent[1] + parent[3] < child[1], f"{edge} does not go down"
    paths = {name: (start, end) for name, start, end in drawn["edges"]}
    assert sorted(paths) == sorted(f"{e['from']}->{e['to']}" for e in graph["edges"])
    for start, end in paths.values():
        assert start < end


# -- goDuration, against the project's Go-compatible formatter ---------------------------

MAX_SAFE = 2**53 - 1  # a JSON number the page reads exactly (the API sends durations so)
NS = {"ns": 1, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


@st.composite
def durations(draw: st.DrawFn) -> int:
    """Nanoseconds: any, or a whole number of a unit plus a little (where Go's and a
    float's formatting part ways: trailing zeros, tiny fractions)."""
    if draw(st.booleans()):
        return draw(st.integers(-MAX_SAFE, MAX_SAFE))
    unit = NS[draw(st.sampled_from(list(NS)))]
    whole = draw(st.integers(0, MAX_SAFE // unit // 2)) * unit
    value = whole + draw(st.integers(0, 999))
    return -value if draw(st.booleans()) else value


@BROWSER_SETTINGS
@given(ns=durations())
def test_go_duration_is_gos_duration_string(page: Browser, ns: int) -> None:
    assert call(page, "editview.js", "goDuration", ns) == format_go(ns)


def test_go_duration_on_the_edges_of_each_unit(page: Browser) -> None:
    values = sorted({sign * (unit * k + extra) for unit in NS.values() for k in (1, 59, 60, 61, 999)
                     for extra in (0, 1, 999, 1000, unit // 2) for sign in (1, -1)})
    values = [v for v in values if abs(v) <= MAX_SAFE] + [0, MAX_SAFE, -MAX_SAFE]
    shown = page.execute(
        "return import('/console/editview.js').then((m) => arguments[0].map(m.goDuration))",
        values)
    wrong = [(v, mine, format_go(v)) for v, mine in zip(values, shown, strict=True)
             if mine != format_go(v)]
    assert not wrong, wrong[:10]


# -- tokenize, against the project's TICKscript lexer ------------------------------------

# Runs in the page: the tokens of each text as [kind, value], and whether they give the
# text back (compared in the page: a token could cut a surrogate pair in two).
TOKENIZE_JS = """
const texts = arguments[0];
return import('/console/tick.js').then(({ tokenize }) => texts.map((text) => {
  const tokens = tokenize(text);
  return { whole: tokens.map((t) => t.value).join('') === text,
           tokens: tokens.map((t) => [t.kind, t.value.length]) };
}));
"""
SCRIPT_START = re.compile(r"\s*(?://[^\n]*\n\s*)*(?:stream|batch|var\s|dbrp\s)")


def _python_strings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _markdown_blocks(path: Path) -> Iterator[str]:
    yield from re.findall(r"```[\w-]*\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def _utf8(text: str) -> bool:
    """Whether ``text`` can be sent to the page (a test's lone surrogate cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@cache
def repository_scripts() -> tuple[str, ...]:
    """Every TICKscript written out in examples/ and tests/: string constants of the
    Python files and code blocks of the Markdown files that read as one (they start as
    a script does and hold a pipe)."""
    found: set[str] = set()
    for folder in ("examples", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix == ".py":
                texts = _python_strings(path)
            elif path.suffix == ".md":
                texts = _markdown_blocks(path)
            else:
                continue
            found.update(t for t in texts if "|" in t and SCRIPT_START.match(t)
                         and _utf8(t))
    return tuple(sorted(found))


def tokenize_in_page(page: Browser, texts: list[str]) -> list[dict[str, Any]]:
    tokens: list[dict[str, Any]] = page.execute(TOKENIZE_JS, texts)
    return tokens


def expected_kinds(script: str) -> Iterator[tuple[int, str, str]]:
    """(offset in UTF-16 units, kind, text) that the highlighter should give each token
    the project's lexer reads, up to where that lexer stops (an error)."""
    previous: T | None = None
    for token in tick_tokens(script):
        if token.type in (T.EOF, T.ERROR):
            return
        kind = {T.STRING: "string", T.REFERENCE: "reference", T.DURATION: "duration",
                T.INT: "number", T.FLOAT: "number", T.REGEX: "regex", T.COMMENT: "comment",
                T.VAR: "keyword", T.DBRP: "keyword", T.TRUE: "keyword", T.FALSE: "keyword",
                T.AND: "keyword", T.OR: "keyword"}.get(token.type, "operator")
        text = token.raw
        if token.type is T.LAMBDA or token.raw == "lambda":  # var f lambda: a type name
            kind, text = "keyword", "lambda"
        elif token.type is T.IDENT:
            if token.raw in ("stream", "batch"):
                kind = "type"
            elif previous in (T.PIPE, T.AT):
                kind = "node"
            elif previous is T.DOT:
                kind = "property"
            else:
                kind = "identifier"
        elif token.type is T.COMMENT:
            text = script[token.pos:].split("\n", 1)[0]  # the highlighter's is one line
        if token.type is not T.COMMENT:
            previous = token.type
        yield len(script[:token.pos].encode("utf-16-le")) // 2, kind, text


def with_text(script: str, tokens: list[list[Any]]) -> list[tuple[int, str, str]]:
    """The page's tokens ([kind, length in UTF-16 units]) as (offset, kind, text)."""
    units = script.encode("utf-16-le")
    out = []
    offset = 0
    for kind, length in tokens:
        text = units[2 * offset:2 * (offset + length)].decode("utf-16-le", "surrogatepass")
        out.append((offset, kind, text))
        offset += length
    return out


def mismatches(script: str, tokens: list[list[Any]]) -> list[str]:
    """Where the highlighter's tokens differ from the lexer's (kind or extent)."""
    at = {offset: (kind, text) for offset, kind, text in with_text(script, tokens)}
    wrong = []
    for offset, kind, text in expected_kinds(script):
        got = at.get(offset)
        if got != (kind, text):
            line = script.encode("utf-16-le")[:2 * offset].count("\n".encode("utf-16-le")) + 1
            wrong.append(f"line {line}: {text!r} should be {kind}, is {got}")
    return wrong


def test_the_repository_has_scripts_to_tokenize() -> None:
    scripts = repository_scripts()
    assert len(scripts) > 300  # the test suites write hundreds of them
    everything = "".join(scripts)
    for kind in (T.DURATION, T.STRING, T.REFERENCE, T.REGEX, T.COMMENT, T.FLOAT):
        assert any(t.type is kind for s in scripts for t in tick_tokens(s)), kind
    assert "'''" in everything and "=~" in everything and "@" in everything


def test_tokens_give_back_every_repository_script(page: Browser) -> None:
    scripts = list(repository_scripts())
    tokenized = tokenize_in_page(page, scripts)
    assert [s for s, t in zip(scripts, tokenized, strict=True) if not t["whole"]] == []


def test_token_kinds_agree_with_the_lexer_on_every_repository_script(page: Browser) -> None:
    scripts = list(repository_scripts())
    tokenized = tokenize_in_page(page, scripts)
    wrong = {s: m for s, t in zip(scripts, tokenized, strict=True)
             if (m := mismatches(s, t["tokens"]))}
    shown = "\n\n".join(f"{script}\n  " + "\n  ".join(m[:5])
                        for script, m in list(wrong.items())[:5])
    assert not wrong, f"{len(wrong)} of {len(scripts)} scripts are coloured wrong:\n{shown}"


def test_known_tokens_have_their_kinds(page: Browser) -> None:
    script = ("var period = 5m\n"
              "stream\n"
              "    // a comment 'with' \"quotes\"\n"
              "    |from()\n"
              "        .measurement('cpu')\n"
              "        .where(lambda: \"host\" =~ /^web[0-9]+$/ AND \"path\" !~ /\\/tmp/)\n"
              "    |window()\n"
              "        .period(period)\n"
              "        .every(1.5)\n"
              "    |alert()\n"
              "        .message('''it's {{ .Level }}''')\n"
              "        .crit(lambda: \"usage\" > 90 OR TRUE)\n"
              "    @myUDF()\n"
              "        .field('v')\n")
    (tokenized,) = tokenize_in_page(page, [script])
    assert tokenized["whole"]
    assert mismatches(script, tokenized["tokens"]) == []
    significant = [(kind, text) for _, kind, text in with_text(script, tokenized["tokens"])
                   if kind != "space"]
    for expected in [("keyword", "var"), ("duration", "5m"), ("type", "stream"),
                     ("comment", "// a comment 'with' \"quotes\""), ("node", "from"),
                     ("property", "measurement"), ("string", "'cpu'"),
                     ("keyword", "lambda"), ("reference", '"host"'),
                     ("operator", "=~"), ("regex", "/^web[0-9]+$/"), ("keyword", "AND"),
                     ("regex", "/\\/tmp/"), ("number", "1.5"),
                     ("string", "'''it's {{ .Level }}'''"), ("keyword", "OR"),
                     ("keyword", "TRUE"), ("node", "myUDF"), ("property", "field")]:
        assert expected in significant, expected


def test_a_regex_assigned_to_a_var_is_a_regex(page: Browser) -> None:
    script = "var r = /web[0-9]+/\nstream|from().where(lambda: \"host\" =~ r)\n"
    (tokenized,) = tokenize_in_page(page, [script])
    assert ("regex", "/web[0-9]+/") in [(kind, text) for _, kind, text
                                         in with_text(script, tokenized["tokens"])]
    assert mismatches(script, tokenized["tokens"]) == []


TICK_ALPHABET = st.sampled_from(list(string.ascii_letters[:8] + string.digits[:4] +
                                     " \n\t|.@()'\"/\\=~!<>+-*,µ") + ["'''", "//", "\u00e9",
                                                                    "\U0001f600", "ms"])


@BROWSER_SETTINGS
@given(texts=st.lists(st.one_of(st.text(), st.lists(TICK_ALPHABET).map("".join)),
                      min_size=1, max_size=20))
def test_tokens_give_back_random_text(page: Browser, texts: list[str]) -> None:
    for text, tokenized in zip(texts, tokenize_in_page(page, texts), strict=True):
        assert tokenized["whole"], text
        assert all(length for _, length in tokenized["tokens"]), text  # no empty token


# -- parseDbrps, against the `kapacitor define -dbrp` flag --------------------------------

def cli_dbrp(text: str) -> dict[str, str] | None:
    """What ``kapacitor define -dbrp TEXT`` makes of one pair (None: refused)."""
    flag = DBRPValue()
    try:
        flag.set(text)
    except ValueError:
        return None
    return flag.items[0]


def parse_dbrps(page: Browser, text: str) -> dict[str, Any]:
    answer: dict[str, Any] = page.execute(CALL_JS, "editview.js", "parseDbrps", [text])
    return answer


def test_parse_dbrps_good_input(page: Browser) -> None:
    cases = {
        '"telegraf"."autogen"': [{"db": "telegraf", "rp": "autogen"}],
        "telegraf.autogen": [{"db": "telegraf", "rp": "autogen"}],
        ' "a"."b" ,  c.d,"e f"."g-h" ': [{"db": "a", "rp": "b"}, {"db": "c", "rp": "d"},
                                         {"db": "e f", "rp": "g-h"}],
        '"db.with.dots"."rp"': [{"db": "db.with.dots", "rp": "rp"}],
        "": [], " , ": [],
    }
    for text, expected in cases.items():
        assert parse_dbrps(page, text) == {"value": expected}, text
        pairs = [p.strip() for p in text.split(",") if p.strip()]
        assert [cli_dbrp(p) for p in pairs] == expected, text  # the CLI reads them alike


def test_parse_dbrps_bad_input_says_what_is_wrong(page: Browser) -> None:
    for text in ("telegraf", '"telegraf"', "telegraf.", ".autogen", '"db"."rp', "a.b.c",
                 '"a"."b"."c"', "a.b c.d"):
        answer = parse_dbrps(page, text)
        assert "value" not in answer, (text, answer)
        assert "bad DBRP" in answer["error"] and 'write "db"."rp" or db.rp' in answer["error"]


NAMES = st.text(st.characters(codec="utf-8", exclude_characters='".,\\\n'), min_size=1,
                max_size=8).filter(lambda s: s.strip() == s)


@BROWSER_SETTINGS
@given(pairs=st.lists(st.tuples(NAMES, NAMES, st.booleans()), max_size=4),
       noise=st.text(st.sampled_from('".,\\ ab'), max_size=12))
def test_parse_dbrps_reads_what_the_cli_reads(page: Browser, pairs: list[tuple[str, str, bool]],
                                              noise: str) -> None:
    written = [f'"{db}"."{rp}"' if quoted else f"{db}.{rp}" for db, rp, quoted in pairs]
    assert parse_dbrps(page, ", ".join(written)) == {
        "value": [cli_dbrp(text) for text in written]}
    # any text at all: what the console accepts, the CLI accepts and reads alike
    answer = parse_dbrps(page, noise)
    if "value" in answer:
        parts = [p.strip() for p in noise.split(",") if p.strip()]
        assert answer["value"] == [cli_dbrp(p) for p in parts], noise


def test_parse_dbrps_reads_back_what_the_editor_shows(page: Browser,
                                                      daemon: DaemonProcess) -> None:
    # InfluxDB names may hold commas and quotes; the daemon (as Kapacitor) takes them
    dbrps = [{"db": "a,b", "rp": "autogen"}, {"db": "x", "rp": 'say "hi"'}]
    answer = httpx.post(api(daemon, "/tasks"), json={
        "id": "odd_dbrps", "type": "stream", "dbrps": dbrps, "status": "disabled",
        "script": "stream\n    |from()\n        .measurement('m')\n"})
    assert answer.status_code == 200, answer.text
    page.get(f"{daemon.url}/console/#/editor/task/odd_dbrps")
    shown = page.wait_until(lambda: page.wait_for("#task-dbrps").value,
                            message="the editor shows the task's DBRPs")
    assert parse_dbrps(page, shown) == {"value": dbrps}


# -- unescapeHTML, on the details of an alert that fired ---------------------------------

# characters html/template escapes in a tag value (Go's JSON has already made < > &
# into \u003c \u003e \u0026), and one it leaves alone
TRICKY_HOST = "<b>web</b>&'quoted'\"double\"=é"
PLUS_HOST = "1+1"


@pytest.fixture(scope="module")
def fired(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    """The events of alerts that fired in the daemon, by ID (the host of the point)."""
    script = ("stream\n    |from()\n        .measurement('load')\n"
              "    |alert()\n        .id('{{ index .Tags \"host\" }}')\n"
              "        .message('{{ .ID }} < {{ index .Fields \"v\" }} & more')\n"
              "        .crit(lambda: \"v\" > 1)\n        .topic('modules')\n")
    answer = httpx.post(api(daemon, "/tasks"), json={
        "id": "details", "type": "stream", "dbrps": DBRPS, "script": script,
        "status": "enabled"})
    assert answer.status_code == 200, answer.text
    escape = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})  # line protocol's
    lines = [f"load,host={host.translate(escape)} v=2.5 1" for host in (TRICKY_HOST, PLUS_HOST)]
    written = httpx.post(f"{daemon.url}/write", content="\n".join(lines),
                         params={"db": "telegraf", "rp": "autogen", "precision": "s"})
    assert written.status_code == 204, written.text
    deadline = time.monotonic() + 10
    events: list[dict[str, Any]] = []
    while len(events) < 2 and time.monotonic() < deadline:
        got = httpx.get(api(daemon, "/alerts/topics/modules/events"))
        events = got.json()["events"] if got.status_code == 200 else []
        time.sleep(0.05)
    assert len(events) == 2, f"the alerts did not fire: {events}"
    return {event["id"]: event for event in events}


def assert_details_unescape_to_the_event(page: Browser, event: dict[str, Any],
                                         escaped: tuple[str, ...]) -> None:
    state = event["state"]
    details = state["details"]
    for entity in escaped:
        assert entity in details  # the details really are escaped
    shown = call(page, "dom.js", "unescapeHTML", details)
    assert shown == html.unescape(details)
    data = json.loads(shown)
    assert data["ID"] == event["id"]
    assert data["Tags"]["host"] == event["id"]
    assert data["Message"] == state["message"] == f"{event['id']} < 2.5 & more"
    assert data["Level"] == state["level"] == "CRITICAL"
    assert data["Fields"] == {"v": 2.5}
    assert data["Time"] == state["time"]


def test_unescape_html_of_real_alert_details_gives_the_events_json(
        page: Browser, fired: dict[str, dict[str, Any]]) -> None:
    assert_details_unescape_to_the_event(page, fired[TRICKY_HOST], ("&#39;", "&#34;"))


def test_unescape_html_of_details_with_a_plus(
        page: Browser, fired: dict[str, dict[str, Any]]) -> None:
    assert_details_unescape_to_the_event(page, fired[PLUS_HOST], ("&#43;",))


# -- acting on what an ID names ----------------------------------------------------------

def test_the_handler_dot_dot_is_refused_with_a_reason(page: Browser,
                                                     daemon: DaemonProcess) -> None:
    # A browser resolves a ".." segment (also written %2E%2E) before sending the URL, so
    # .../handlers/.. would reach the topic itself: the console refuses and says why.
    handlers = api(daemon, "/alerts/topics/dots/handlers")
    for handler_id in ("..", "keep"):
        answer = httpx.post(handlers, json={"id": handler_id, "kind": "log",
                                            "options": {"path": "/dev/null"}})
        assert answer.status_code == 200, answer.text
    page.get(f"{daemon.url}/console/#/alerts/dots")
    page.wait_for('#handlers tr[data-handler=".."] button[data-action="delete-handler"]'
                  ).click()
    page.wait_for("#confirm-yes").click()
    page.wait_for("#notice", text='the ID ".." cannot be used from a browser')
    left = sorted(h["id"] for h in httpx.get(handlers).json()["handlers"])
    assert left == ["..", "keep"]
    assert httpx.get(api(daemon, "/alerts/topics/dots")).status_code == 200


def test_saving_an_edited_task_keeps_its_vars(page: Browser, daemon: DaemonProcess) -> None:
    task = api(daemon, "/tasks/with_vars")
    answer = httpx.post(api(daemon, "/tasks"), json={
        "id": "with_vars", "type": "stream", "dbrps": DBRPS, "status": "disabled",
        "script": "var groups = [*]\nvar name = 'x'\n"
                  "stream\n    |from()\n        .groupBy(groups)\n    |log()\n",
        "vars": {"groups": {"type": "list", "value": [{"type": "star", "value": "*"}]},
                 "name": {"type": "string", "value": "y"}}})
    assert answer.status_code == 200, answer.text
    before = httpx.get(task).json()["vars"]
    page.get(f"{daemon.url}/console/#/editor/task/with_vars")
    page.wait_for("#check-status", text="valid")
    page.find("#save").click()  # nothing changed
    page.wait_until(lambda: page.execute("return location.hash") == "#/tasks/with_vars",
                    message="the task is saved (the editor then shows the task's page)")
    assert httpx.get(task).json()["vars"] == before
