"""Run Kapacitor's own stream scenarios on the real Kapacitor and on kapa-core, and
report where their outputs differ.

    python -m tests.compat.scenarios --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. The scenarios are read from its
integrations/streamer_test.go (those checked through their httpOut or the alerts they
post to a test server, which is the runner's ``{{POST}}`` here) and
their points from integrations/testdata/<name>.srpl, moved to start at 1971-01-01 as
Kapacitor's test replay does. Nothing of them is stored here: this is a check to run
against a checkout, next to the compatibility cases that are our own.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import sys
import tempfile
from pathlib import Path

from tests.compat.casefile import Case
from tests.compat.oracle import Kapacitor, show_diff
from tests.compat.runner import Recorder, matches, run_until_equal, run_until_stable

FUNC = re.compile(r"^func (TestStream_\w+)\(t \*testing\.T\) \{$(.*?)^\}$", re.M | re.S)
SCRIPT = re.compile(r"var script = ((?:`[^`]*`\s*(?:\+\s*[\w.]+\s*\+\s*)?)+)")
PIECE = re.compile(r"`([^`]*)`|\+\s*([\w.]+)\s*\+")
CALL = re.compile(r'testStreamer(?:WithOutput|NoOutput)\(\s*t,\s*"(\w+)",\s*script,')


def script_text(literal: str) -> str | None:
    """The script of a Go string expression: backquoted pieces, with a test server's
    URL spliced in as ``{{POST}}``; None when it splices in anything else."""
    out = []
    for piece, expr in PIECE.findall(literal):
        if expr:
            if expr != "ts.URL":
                return None
            out.append("{{POST}}")
        else:
            out.append(piece)
    return "".join(out)
EPOCH_1971 = 31536000


def scenarios(source: Path) -> list[Case]:
    text = (source / "integrations" / "streamer_test.go").read_text()
    found = []
    for name, body in FUNC.findall(text):
        script, call = SCRIPT.search(body), CALL.search(body)
        if not script or not call or "Sprintf" in body or "tmInit :=" in body:
            continue  # a script built by Go code, or services configured by the test
        text = script_text(script.group(1))
        if text is None:
            continue
        data = source / "integrations" / "testdata" / f"{call.group(1)}.srpl"
        loaded = srpl_points(data)
        if loaded is None:
            continue
        db, rp, points = loaded
        case = Case(name, data, {"script": text.replace("\t", "    "),
                                 "points": points, "db": db, "rp": rp})
        found.append(case)
    return found


def srpl_points(data: Path) -> tuple[str, str, str] | None:
    """(db, rp, line protocol) of a scenario's .srpl file, its points moved to start at
    1971-01-01 as Kapacitor's test replay does; None when the file is missing or names
    more than one database and retention policy."""
    if not data.exists():
        return None
    lines = data.read_text().splitlines()
    triples = [lines[i:i + 3] for i in range(0, len(lines) - 2, 3)]
    dbrps = {(db, rp) for db, rp, _ in triples}
    if len(dbrps) != 1:
        return None
    points, shift = [], None
    for _, _, line in triples:
        head, _, stamp = line.rpartition(" ")
        t = int(stamp)
        if shift is None:
            shift = EPOCH_1971 - t
        points.append(f"{head} {t + shift}")
    (db, rp), = dbrps
    return db, rp, "\n".join(points)


def arg_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The command line shared by the scenario checks: patterns, --kapacitord, --source,
    --quiet."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}",
                                     description=doc.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*")
    parser.add_argument("--kapacitord", required=True)
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--quiet", "-q", action="store_true")
    return parser


def compare(cases: list[Case], kapacitord: str, *, quiet: bool = False,
            what: str = "scenarios") -> int:
    """Run the cases on kapacitord, then on kapa-core until they give its answer, and
    report the ones that differ; 1 if any does."""
    workdir = Path(tempfile.mkdtemp(prefix="scenarios-"))
    recorder = Recorder()
    try:
        server = Kapacitor(kapacitord)
        try:
            for case in cases:
                case.expected = run_until_stable(server.url, case, recorder, workdir)
        finally:
            server.close()
        from kapa_core.testing import DaemonProcess
        differ = []
        with DaemonProcess({"http": {"log-enabled": False},
                            "logging": {"level": "ERROR"}}) as daemon:
            for case in cases:
                got = run_until_equal(daemon.url, case, recorder, workdir, case.expected,
                                      timeout=3)
                if not matches(got, case.expected):
                    differ.append(case.name)
                    if not quiet:
                        print(show_diff(case.name, got, case.expected))
        for name in differ:
            print("DIFFERS", name)
        print(f"{len(cases) - len(differ)} of {len(cases)} {what} equal", file=sys.stderr)
        return 1 if differ else 0
    finally:
        recorder.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = arg_parser("tests.compat.scenarios", __doc__).parse_args(argv)
    cases = [c for c in scenarios(args.source)
             if not args.patterns or any(fnmatch.fnmatch(c.name, p) for p in args.patterns)]
    return compare(cases, args.kapacitord, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
