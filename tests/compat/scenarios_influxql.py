"""Run Kapacitor's generated InfluxQL scenarios on the real Kapacitor and on kapa-core,
and report where their httpOut answers differ.

    python -m tests.compat.scenarios_influxql --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. ``TestStream_InfluxQL_Float``, ``_Integer``,
``_String`` and ``_Boolean`` of its integrations/streamer_test.go do not hold their
scripts as text: each renders one script template (a windowed stream feeding
``|<method>(<args>)``, optionally ``.usePointTimes()``, then ``httpOut``) for every entry
of a list of test cases. Here the template and the entries (method, arguments,
usePointTimes) are read from the Go source and rendered the way the test renders them
(arguments default to ``'value'``); the points are the scenario's .srpl, moved to start
at 1971-01-01 as the test's replay does. Each variant is named
``<scenario>/<index>-<method>[-usePointTimes]``. Besides the httpOut body, the task's
node statistics and DOT are compared too (timings masked). ``--all-hosts`` also runs
each variant without the from() filter on serverA, over several groups. Nothing of them
is stored here.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path

from tests.compat.casefile import Case
from tests.compat.scenarios import FUNC, arg_parser, compare
from tests.compat.scenarios_stats import srpl_points

NAMES = ("TestStream_InfluxQL_Float", "TestStream_InfluxQL_Integer",
         "TestStream_InfluxQL_String", "TestStream_InfluxQL_Boolean")
_TEMPLATE = re.compile(r"var scriptTmpl = `([^`]*)`")
_METHOD = re.compile(r'\bMethod:\s*"(\w*)"')
_ARGS = re.compile(r'\bArgs:\s*"((?:[^"\\]|\\.)*)"')
_POINT_TIMES = re.compile(r"\bUsePointTimes:\s*true\b")
_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def test_cases(body: str) -> list[str]:
    """The source of each entry of the function's ``testCases`` list: the text of each
    top-level ``testCase{...}`` (braces counted)."""
    start = body.find("testCases := []testCase{")
    if start < 0:
        return []
    i = body.index("{", start + len("testCases := []testCase")) + 1
    entries, depth, begin = [], 0, None
    while i < len(body):
        c = body[i]
        if c == "{":
            if depth == 0:
                begin = i
            depth += 1
        elif c == "}":
            if depth == 0:
                break  # the end of the list
            depth -= 1
            if depth == 0 and begin is not None:
                entries.append(body[begin:i + 1])
        elif c == "`" or c == '"':  # skip string literals (they may hold braces)
            end = body.index(c, i + 1)
            while c == '"' and body[end - 1] == "\\":
                end = body.index(c, end + 1)
            i = end
        i += 1
    return entries


def render(template: str, method: str, args: str, point_times: bool) -> str:
    """The template with the test's three actions: ``.Method``, ``.Args`` and
    ``if .UsePointTimes``...``end`` (the only ones these templates use)."""
    out, pos, skipping = [], 0, False
    for m in _ACTION.finditer(template):
        if not skipping:
            out.append(template[pos:m.start()])
        action = m.group(1)
        if action == ".Method":
            out.append("" if skipping else method)
        elif action == ".Args":
            out.append("" if skipping else args)
        elif action == "if .UsePointTimes":
            skipping = not point_times
        elif action == "end":
            skipping = False
        else:
            raise ValueError(f"template action not understood: {action}")
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def unquote_go(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def scenarios(source: Path, all_hosts: bool = False) -> list[Case]:
    """Every variant; with ``all_hosts`` each also without the from() filter on
    serverA (named ``...-allHosts``)."""
    integrations = source / "integrations"
    text = (integrations / "streamer_test.go").read_text()
    found = []
    for name, body in FUNC.findall(text):
        if name not in NAMES:
            continue
        template = _TEMPLATE.search(body)
        if template is None:
            continue
        points = srpl_points(integrations / "testdata" / f"{name}.srpl")
        for index, entry in enumerate(test_cases(body)):
            method = _METHOD.search(entry)
            args = _ARGS.search(entry)
            point_times = bool(_POINT_TIMES.search(entry))
            method_name = method.group(1) if method else ""
            script = render(template.group(1), method_name,
                            unquote_go(args.group(1)) if args else "'value'", point_times)
            label = f"{name}/{index}-{method_name or 'none'}" + \
                ("-usePointTimes" if point_times else "")
            variants = [(label, script)]
            if all_hosts:
                # the same method over every host (several groups), not only serverA
                wide = re.sub(r"\n\s*\.where\(lambda: \"host\" == 'serverA'\)", "", script)
                if wide != script:
                    variants.append((label + "-allHosts", wide))
            for variant, text in variants:
                found.append(Case(variant, integrations / "testdata" / f"{name}.srpl", {
                    "script": text.replace("\t", "    "), "points": "\n".join(points),
                    "db": "dbname", "rp": "rpname", "inspect": ["stats", "dot"]}))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("tests.compat.scenarios_influxql", __doc__)
    parser.add_argument("--all-hosts", action="store_true",
                        help="run each variant also over every host (several groups)")
    args = parser.parse_args(argv)
    cases = [c for c in scenarios(args.source, args.all_hosts)
             if not args.patterns or any(fnmatch.fnmatch(c.name, p) for p in args.patterns)]
    return compare(cases, args.kapacitord, quiet=args.quiet, what="variants")


if __name__ == "__main__":
    sys.exit(main())
