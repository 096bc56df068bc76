"""Compare how Kapacitor 1.5.7 and kapa-core read line protocol written to ``/write``.

Each body is written on its own to both daemons, each running the task
``stream|from()|httpPost()`` pointed at a recorder: the answer (status and text) and the
points each daemon let through (their ``httpPost`` bodies: measurement, tags, fields with
their JSON types, time) are compared. The bodies are a fixed list of edge cases (escapes,
literals, timestamps, blank lines, comments, partial failures) followed by generated
ones; nothing is stored.

    .venv/bin/python -m tests.compat.lineprotocol_check --kapacitord BIN [--count N]
        [--seed S] [--show N]

Differences kapa-core keeps on purpose (see CHANGELOG.md, "Different from Kapacitor on
purpose", and docs/api.md) are not reported: unsigned integers (``1u``) are accepted,
and each bad line listed in a 400 ends with ``(line N)`` (at most ten are listed).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time

import httpx

from kapa_core.testing import DaemonProcess
from tests.compat.oracle import Kapacitor
from tests.compat.runner import Recorder

TS = "31536000"

#: Hand-written bodies (one line each unless they contain a newline).
EDGE_CASES: list[str] = [
    # escapes in each token
    r"m,h=1\\ 2 v=1 " + TS, r"m,h=1\ 2 v=1 " + TS, r"m,h=a\,b v=1 " + TS,
    r"m,h=a\=b v=1 " + TS, r"m,h=a\"b v=1 " + TS, r"m,h=a\xb v=1 " + TS,
    r"m,h=ab\ v=1 " + TS, r"m,h=ab\\ v=1 " + TS, "m,h=ab\\ " + TS,
    r"m,h=a\\\ b v=1 " + TS, r"m,h=a\\\\ v=1 " + TS,
    r"m\ x v=1 " + TS, r"m\,x v=1 " + TS, r"m\=x v=1 " + TS, r"m\\x v=1 " + TS,
    r"m\"x v=1 " + TS, r"m\ax v=1 " + TS, "m\\ v=1 " + TS, r"m\\ v=1 " + TS,
    r"m,a\ b=1 v=1 " + TS, r"m,a\,b=1 v=1 " + TS, r"m,a\=b=1 v=1 " + TS,
    r"m,a\\b=1 v=1 " + TS, r"m,a\"b=1 v=1 " + TS,
    r"m v\ w=1 " + TS, r"m v\,w=1 " + TS, r"m v\=w=1 " + TS, r"m v\\w=1 " + TS,
    r"m v\"w=1 " + TS, r"m v\x=1 " + TS, "m v\\=1 " + TS,
    r'm v="a\"b" ' + TS, r'm v="a\\b" ' + TS, r'm v="a\b" ' + TS, r'm v="a\\" ' + TS,
    r'm v="a\\\"b" ' + TS, r'm v="a\nb" ' + TS, r'm v="a,b c=d" ' + TS,
    r'm v="" ' + TS, 'm v="a\nb" ' + TS, r'm v="\\\\" ' + TS, r'm v="a\ b" ' + TS,
    # quotes elsewhere
    '"m" v=1 ' + TS, 'm,"h"=1 v=1 ' + TS, 'm,h="1" v=1 ' + TS, 'm "v"=1 ' + TS,
    'm v=1"' + " " + TS, 'm v="a ' + TS,
    # empty / duplicate tags and fields
    "m,h= v=1 " + TS, "m,=1 v=1 " + TS, "m, v=1 " + TS, "m,h=1,h=2 v=1 " + TS,
    "m,h=1,h=1 v=1 " + TS, "m v=1,v=2 " + TS, "m v=1,v=2i " + TS, "m v=1, " + TS,
    "m v= " + TS, "m =1 " + TS, "m,h=1 " + TS, "m " + TS, "m", ",h=1 v=1 " + TS,
    "m,b=2,a=1 v=1 " + TS, "m,h=1=2 v=1 " + TS, "m v=1=2 " + TS, "m,h=1,  v=1 " + TS,
    # literals
    *(f"m v={v} {TS}" for v in [
        "1i", "-1i", "+1i", "01i", "-0i", "1.0i", "1e3i", "9223372036854775807i",
        "9223372036854775808i", "-9223372036854775808i", "-9223372036854775809i",
        "1u", "0u", "-1u", "18446744073709551615u", "1", "-0", "0", "1.", ".5", "-.5",
        "-", ".", "1e5", "1E5", "1e+5", "1e-5", "1e", "1.5e3", "1e309", "-1e309",
        "0x10", "1_000", "NaN", "nan", "Inf", "inf", "-Inf", "+1", "+inf", "1.2.3",
        "--1", "1-", "t", "T", "true", "True", "TRUE", "tRUE", "f", "F", "false",
        "False", "FALSE", "fAlse", "yes", "truee", "tr", "00", "007", "1.5i",
        "123456789012345678901234567890", "4.9e-324", "1e-400", "0.1", "-0.0",
        "1E", "e5", "i", "u", "1ii", "１"]),
    # timestamps
    "m v=1 -1", "m v=1 0", "m v=1 -31536000", "m v=1 9223372036", "m v=1 9223372037",
    "m v=1 -9223372036", "m v=1 -9223372037", "m v=1 1.5", "m v=1 1e9", "m v=1 +1",
    "m v=1 01", "m v=1 " + TS + " ", "m v=1 " + TS + " 1", "m v=1  " + TS,
    "m v=1\t" + TS, "m v=1 " + TS + "\t", "m v=1 x", "m v=1 -", "m v=1 00000000031536000",
    # whitespace, comments, blank lines, CRLF
    "  m v=1 " + TS, "\tm v=1 " + TS, "m  v=1 " + TS, "m v=1 " + TS + "\r",
    "m v=1\r", "m,h=a\r v=1 " + TS, "# comment", " # comment", "#m v=1 " + TS,
    "m v=1 " + TS + " # c", "m v=1 " + TS + "\n\n\nm v=2 " + TS + "\n",
    "\n\nm v=1 " + TS, "m v=1 " + TS + "\r\nm v=2 " + TS + "\r\n", "\r\n",
    "m\tv=1 " + TS, "m,h=a\tb v=1 " + TS, "m v=1,\tw=2 " + TS, "m v=\t1 " + TS,
    "m v=1 " + TS + "\x00", "m\x00 v=1 " + TS, " ", "\t\n",
    # partial failures
    "m v=1 " + TS + "\nm v= " + TS + "\nm v=3 " + TS,
    "m v= " + TS + "\nm w= " + TS, "m v=1 " + TS + "\nbad",
    # the scanner and the field iterator cut fields differently
    r"m v\\=1 " + TS, r"m a\\=t,b=1 " + TS, 'm v="a"b,w=1 ' + TS, r'm a\\="s",b=1 ' + TS,
    "m ", "m,h=1 ", "m\\", "m v=1 " + TS + "\\", "# x=\"a\nm v=1 " + TS + "\nm v=2 " + TS,
    "m,h=a\\\n\nm v=1 " + TS, "m v=\"a\n\nb\" " + TS, "m v=\"a\n",
    "\x0c", "m v=1 " + TS + "\n\x0b\n",
    "cpu \t=\"s\" " + TS, "m \tv=1 " + TS, "m \x00v=1 " + TS, "m \tv=\"s\" " + TS,
    "m v=1\\", "m v=\"a\\", "m s=\"x\" \\",
    'm v="a"é ' + TS, 'm v="a"b,w=1', 'm v="a\nb"c\nm w=1 ' + TS,
    # non-ASCII
    "é,ü=ö ß=1 " + TS, "m v=\"日本\" " + TS, "m,h=日\\ 本 v=1 " + TS,
]

_TOKENS = ["a", "b", "h", "v", "1", " ", ",", "=", "\\", '"', "\\\\", "\\ ", "\\,",
           "\\=", '\\"', "x", "#", "\t", "é"]
_VALUES = ["1", "1i", "-2i", "1.5", "t", "FALSE", '"s"', '"a\\"b"', '"a\\\\"', '"a b"',
           "1u", "1e3", ".5", "-0", "x", '""', '"\\"', "1\\ 2"]


def generate(rng: random.Random) -> str:
    """One generated body: usually one line, sometimes several (newlines may then end
    up inside quotes or after a backslash)."""
    if rng.random() < 0.15:
        return rng.choice(["\n", "\n", "\r\n", "\n\n"]).join(
            _line(rng) for _ in range(rng.randint(2, 3)))
    return _line(rng)


def _line(rng: random.Random) -> str:
    def token(low: int = 0) -> str:
        return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(low, 4)))

    parts = [rng.choice(["m", "cpu", token(1)])]
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        parts.append("," + rng.choice(["h", "a", token(1)]) + "=" +
                     rng.choice(["x", "1", token()]))
    fields = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        fields.append(rng.choice(["v", "w", token(1)]) + "=" +
                      rng.choice(_VALUES + [token()]))
    line = "".join(parts) + " " + ",".join(fields)
    line += rng.choice(["", " " + TS, " " + TS, " " + TS, " -5", " " + token(1)])
    if rng.random() < 0.2:  # a character changed somewhere
        i = rng.randrange(len(line) + 1)
        line = line[:i] + rng.choice(_TOKENS) + line[i + 1:]
    return line


class Side:
    """One daemon with the probing task, its points recorded under ``/<name>``."""

    def __init__(self, name: str, url: str, recorder: Recorder) -> None:
        self.name, self.url, self.recorder = name, url, recorder
        self.client = httpx.Client(timeout=30)
        script = f"stream\n    |from()\n    |httpPost('{recorder.http_url}/{name}')\n"
        self.client.delete(f"{url}/kapacitor/v1/tasks/lp")
        r = self.client.post(f"{url}/kapacitor/v1/tasks", json={
            "id": "lp", "type": "stream", "script": script, "status": "enabled",
            "dbrps": [{"db": "mydb", "rp": "myrp"}]})
        if r.status_code != 200:
            raise RuntimeError(f"{name}: task refused: {r.text}")

    def write(self, body: str) -> tuple[int, str]:
        r = self.client.post(f"{self.url}/write", params={
            "db": "mydb", "rp": "myrp", "precision": "s"}, content=body.encode())
        return r.status_code, r.text

    def posts(self) -> list[str]:
        with self.recorder.lock:
            return list(self.recorder.posts.get("/" + self.name, []))


_LINE_SUFFIX = re.compile(r" \(line \d+\)$", re.M)
_NOW = re.compile(r'"(?!1971-)\d{4}-\d\d-\d\dT[0-9:.]+Z"')


def _posts(bodies: list[str]) -> list[str]:
    """The posted bodies, a point's time masked where it is not in 1971 (a line without
    a timestamp is stamped with the time it was written). Kapacitor keeps bytes that are
    not UTF-8 and its JSON writes each as the escape \\ufffd; kapa-core makes them
    U+FFFD when it reads the body, written as the character: the same text."""
    return [_NOW.sub('"NOW"', body).replace("\\ufffd", "\ufffd") for body in bodies]


def _normal(status: int, text: str) -> tuple[int, str]:
    return status, _LINE_SUFFIX.sub("", text)


def _allowed(body: str, kapacitor: tuple, core: tuple) -> bool:
    """A difference kapa-core keeps on purpose: unsigned integers. Kapacitor refuses a
    line with one (``invalid number``); kapa-core reads it. Once those lines are left out
    of Kapacitor's answer, both must say the same."""
    if kapacitor[0] != 400 or not re.search(r"=\d+u\b", body):
        return False
    lines = [line for line in kapacitor[1].splitlines()
             if not (re.search(r"=\d+u\b", line) and line.endswith(": invalid number"))]
    if not lines:
        return core[0] == 204
    return core == (400, "\n".join(lines) + "\n")


_UNSIGNED = re.compile(r"(=\d+)u\b")


def _compare(sides: list[Side], recorder: Recorder, body: str) -> tuple:
    """Write ``body`` to both daemons: their answers and the points they let through."""
    recorder.reset()
    answers = [side.write(body) for side in sides]
    deadline = time.monotonic() + (1.0 if any(a[0] == 204 for a in answers) else 0.05)
    # both answered 204: wait until each forwarded as many points (or a second)
    while time.monotonic() < deadline:
        got = [side.posts() for side in sides]
        if got[0] and len(got[0]) == len(got[1]) and answers[0][0] == 204:
            time.sleep(0.02)
            if [side.posts() for side in sides] == got:
                break
        time.sleep(0.01)
    got = [_posts(side.posts()) for side in sides]
    return _normal(*answers[0]), _normal(*answers[1]), got


def run(binary: str, bodies: list[str], show: int) -> int:
    recorder = Recorder()
    kapacitor = Kapacitor(binary)
    core = DaemonProcess({}).start()
    differ = 0
    try:
        sides = [Side("k", kapacitor.url, recorder), Side("c", core.url, recorder)]
        for body in bodies:
            k, c, got = _compare(sides, recorder, body)
            if (k, got[0]) == (c, got[1]) or _allowed(body, k, c):
                continue
            if _UNSIGNED.search(body) and "invalid number" in k[1]:
                # kapa-core reads 1u where Kapacitor stops: compare with 1i instead
                k2, c2, got2 = _compare(sides, recorder, _UNSIGNED.sub(r"\1i", body))
                if (k2, got2[0]) == (c2, got2[1]):
                    continue
            differ += 1
            if differ <= show:
                print(f"--- body {body!r}")
                print(f"  kapacitor {k[0]} {k[1]!r} {got[0]}")
                print(f"  kapa-core {c[0]} {c[1]!r} {got[1]}")
    finally:
        core.close()
        kapacitor.close()
        recorder.close()
    print(f"{len(bodies)} bodies, {differ} answered differently")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kapacitord", required=True)
    parser.add_argument("--count", type=int, default=2000, help="generated bodies")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=200, help="differences printed")
    parser.add_argument("--edge-only", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    bodies = list(EDGE_CASES)
    if not args.edge_only:
        bodies += [generate(rng) for _ in range(args.count)]
    return run(args.kapacitord, bodies, args.show)


if __name__ == "__main__":
    sys.exit(main())
