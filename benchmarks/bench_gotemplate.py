"""Go template render rate, in renders per second.

    python benchmarks/bench_gotemplate.py [--runs N] [--renders N]

Renders the templates an alert node renders for every event: Kapacitor's default ID
template ``{{ .Name }}:{{ .Group }}`` (on a dict, as the alert node passes it), the default
message ``{{ .ID }} is {{ .Level }}`` (on the alert's template data, a dict subclass), and
a heavier message using ``if``/``else``, ``eq``, ``index`` and ``printf``. Also times
parsing the heavy one, since templates are parsed once per task. Prints the median rate of
``--runs`` runs and the time per render.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from kapa_core.alert import gojson
from kapa_core.gotemplate import GoTime, StringMap, parse
from kapa_core.models.duration import Duration

HEAVY = ('{{ if eq .Level "OK" }}{{ .ID }} recovered{{ else }}{{ .ID }} on '
         '{{ index .Tags "host" }}: value={{ index .Fields "value" | printf "%0.3f" }} '
         'for {{ .Duration }}{{ end }}')

EVENT = gojson.Struct(
    Name="cpu", TaskName="cpu_alert", Group="host=server01", Tags=StringMap(host="server01"),
    ServerInfo={"Hostname": "localhost"}, ID="cpu:host=server01", Fields={"value": 97.123456},
    Level="CRITICAL", Time=GoTime(1_700_000_000_000_000_000), Duration=Duration(90_000_000_000))


def cases() -> list[tuple[str, Callable[[], object]]]:
    id_template = parse("{{ .Name }}:{{ .Group }}", "id")
    message = parse("{{ .ID }} is {{ .Level }}", "message")
    heavy = parse(HEAVY, "message")
    id_data = {"Name": "cpu", "TaskName": "cpu_alert", "Group": "host=server01",
               "Tags": StringMap(host="server01"), "ServerInfo": {"Hostname": "localhost"}}
    assert id_template.execute(id_data) == "cpu:host=server01"
    assert message.execute(EVENT) == "cpu:host=server01 is CRITICAL"
    assert heavy.execute(EVENT) == "cpu:host=server01 on server01: value=97.123 for 1m30s"
    return [("id      {{ .Name }}:{{ .Group }}", lambda: id_template.execute(id_data)),
            ("message {{ .ID }} is {{ .Level }}", lambda: message.execute(EVENT)),
            ("heavy   if/eq/index/printf", lambda: heavy.execute(EVENT)),
            ("parse   heavy (parse + compile)", lambda: parse(HEAVY, "message"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per template (default 5)")
    parser.add_argument("--renders", type=int, default=100_000,
                        help="renders per run (default 100,000; parsing does a tenth)")
    args = parser.parse_args()
    for label, render in cases():
        count = args.renders // 10 if label.startswith("parse") else args.renders
        rates = []
        for _ in range(args.runs):
            started = time.perf_counter()
            for _ in range(count):
                render()
            rates.append(count / (time.perf_counter() - started))
        rate = statistics.median(rates)
        print(f"{label:<36} {rate:>12,.0f} renders/s  {1e6 / rate:7.2f} µs each "
              f"(best {max(rates):,.0f}/s)")


if __name__ == "__main__":
    main()
