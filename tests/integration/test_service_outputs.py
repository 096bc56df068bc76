"""What the alert handlers that talk to a service other than over HTTP (sensu, exec,
snmptrap, email, kafka) and influxDBOut send, compared with what Kapacitor 1.5.7 sends
for the same script and points.

Each case runs on a throw-away kapa-core configured to send to a local receiver (the
receivers of tests/compat/scenarios_services.py: a Sensu client socket, programs that
keep their stdin, a UDP socket decoding traps, an SMTP server, a Kafka broker, a real
``influxd`` behind a recording proxy), and what the receiver got must equal, as data
and where it matters byte for byte, what it got from Kapacitor 1.5.7. Those answers
are in service_outputs.json, taken from kapacitord (never written by hand) with:

    python -m tests.integration.test_service_outputs --kapacitord BIN [NAME...]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.casefile import Case
from tests.compat.scenarios_services import (
    ExecReceiver,
    InfluxReceiver,
    KafkaSink,
    Receiver,
    SensuReceiver,
    SMTPReceiver,
    SNMPReceiver,
    TCPReceiver,
    on_kapa_core,
    on_kapacitor,
)

pytestmark = pytest.mark.integration

EXPECTED = Path(__file__).with_name("service_outputs.json")


@dataclass(frozen=True)
class ServiceCase:
    receiver: Callable[[Path], Receiver]
    script: str
    points: str

    def case(self, name: str, receiver: Receiver) -> Case:
        return Case(f"services/{name}", EXPECTED, {
            "script": receiver.rewrite(self.script), "points": self.points.strip(),
            "db": "mydb", "rp": "myrp"})


def PLAIN_INFLUX(workdir: Path) -> InfluxReceiver:  # noqa: N802
    """influxd behind the proxy; kapa-core told not to gzip its writes (its own
    [[influxdb]] compression setting, gzip by default; Kapacitor 1.5.7 never
    compresses)."""
    return InfluxReceiver(workdir, compression="none")


CASES: dict[str, ServiceCase] = {
    # Go's json.Encoder over a map: sorted keys, HTML escapes, Go numbers; metadata
    # never replaces a standard key; the source is the handler's.
    "sensu_metadata_and_levels": ServiceCase(SensuReceiver, """
stream
    |from()
        .measurement('load')
        .groupBy('host')
    |alert()
        .id('load.{{ index .Tags "host" }}')
        .message('{{ .ID }} <{{ .Level }}> & {{ index .Fields "v" }}')
        .info(lambda: "v" > 1)
        .warn(lambda: "v" > 5)
        .crit(lambda: "v" > 10)
        .sensu()
            .source('probe')
            .handlers('h1', 'h2')
            .metadata('ratio', 0.25)
            .metadata('big', 1000000000000000000000.0)
            .metadata('on', TRUE)
            .metadata('count', 3)
            .metadata('name', 'ignored')
            .metadata('note', 'a<b')
""", """
load,host=alpha v=2 31536000
load,host=beta v=7.5 31536000
load,host=alpha v=12i 31536001
load,host=beta v=0.5 31536002
"""),
    # The alert JSON and a newline on each program's stdin, the arguments as given.
    "exec_alert_json_on_stdin": ServiceCase(ExecReceiver, """
stream
    |from()
        .measurement('temp')
        .groupBy('room')
    |alert()
        .id('{{ index .Tags "room" }}')
        .message('{{ .ID }} is {{ .Level }}: é <&> {{ index .Fields "t" }}')
        .details('')
        .warn(lambda: "t" > 20.5)
        .crit(lambda: "t" > 30)
        .exec('/bin/my-script', 'a b', '--flag=1')
        .exec('/bin/my-other-script')
""", """
temp,room=kitchen t=21.25 31536000
temp,room=hall t=35i,label="x" 31536000
temp,room=kitchen t=19 31536005
"""),
    # An .exec('') is accepted (each event fails to run it): the task still runs its
    # other handlers.
    "exec_empty_prog_accepted": ServiceCase(ExecReceiver, """
stream
    |from()
        .measurement('m')
    |alert()
        .id('m')
        .details('')
        .crit(lambda: "v" > 1)
        .exec('')
        .exec('/bin/my-script')
""", """
m v=2 31536000
"""),
    # sysUpTime.0 is 1000; each .data() type letter Kapacitor knows, from templates.
    "snmptrap_types_and_uptime": ServiceCase(SNMPReceiver, """
stream
    |from()
        .measurement('ports')
        .groupBy('dev')
    |alert()
        .id('{{ index .Tags "dev" }}')
        .message('{{ .ID }} {{ .Level }} ü')
        .warn(lambda: "errors" > 3)
        .crit(lambda: "errors" > 10)
        .snmpTrap('1.3.6.1.4.1.98.1')
            .data('1.3.6.1.4.1.98.1.1', 's', '{{ .Message }}')
            .data('1.3.6.1.4.1.98.1.2', 'i', '{{ index .Fields "errors" }}')
            .data('1.3.6.1.4.1.98.1.3', 'c', '{{ index .Fields "total" }}')
            .data('1.3.6.1.4.1.98.1.4', 't', '4294967295')
            .data('1.3.6.1.4.1.98.1.5', 'n', '')
            .data('1.3.6.1.4.1.98.1.6', 'i', '-7')
""", """
ports,dev=sw1 errors=5i,total=123456789012i 31536000
ports,dev=sw2 errors=11i,total=0i 31536000
"""),
    # c, i and t values are read as 64-bit integers and wrap around to the type's size;
    # a value Go's ParseInt refuses sends no trap.
    "snmptrap_integer_wrapping": ServiceCase(SNMPReceiver, """
stream
    |from()
        .measurement('m')
    |alert()
        .id('a')
        .crit(lambda: "v" > 1)
        .snmpTrap('1.2.3')
            .data('1.2.3.1', 'i', '2147483648')
            .data('1.2.3.2', 'i', '+4294967295')
            .data('1.2.3.3', 't', '-1')
            .data('1.2.3.4', 't', '4294967296')
            .data('1.2.3.5', 'c', '-9223372036854775808')
        .snmpTrap('1.2.4')
            .data('1.2.4.1', 'i', '9223372036854775808')
        .snmpTrap('1.2.5')
            .data('1.2.5.1', 'c', '{{ index .Fields "v" }}')
""", """
m v=2.5 31536000
"""),
    # OIDs are read when a trap is sent: an unusable one fails that handler's event,
    # not the task.
    "snmptrap_unusable_oid_fails_the_event": ServiceCase(SNMPReceiver, """
stream
    |from()
        .measurement('m')
    |alert()
        .id('a')
        .crit(lambda: "v" > 1)
        .snmpTrap('1.3.six')
            .data('1.2.1', 's', 'never')
        .snmpTrap('1.2.3')
            .data('3.1', 's', 'never')
        .snmpTrap('.1.2.4')
            .data('.1.2.4.1', 's', 'sent')
""", """
m v=2 31536000
"""),
    # gomail's message: Q-encoded non-ASCII subject split into words, quoted-printable
    # body (soft breaks, trailing blanks, '=', UTF-8), envelope from the addresses.
    "email_encodings": ServiceCase(SMTPReceiver, """
stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |alert()
        .id('{{ index .Tags "host" }}')
        .message('Température élevée sur {{ index .Tags "host" }} — niveau {{ .Level }} ✓ and a subject long enough for two encoded words')
        .details('''<p>Value = {{ index .Fields "v" }}   </p>
a line that is much longer than seventy-six characters so that the writer has to break it softly
tab	end	
ünïcödé and =equals= signs''')
        .crit(lambda: "v" > 1)
        .email('ops@example.com', 'Dev Team <dev@example.com>', 'ops@example.com')
""", """
cpu,host=web-1 v=2.5 31536000
"""),
    # The section's source and handlers stand in for a handler's own; several handlers
    # of one alert each send.
    "sensu_section_defaults": ServiceCase(lambda d: SensuReceiver(d, handlers=["cfg-a"]), """
stream
    |from()
        .measurement('q')
        .groupBy('svc')
    |alert()
        .id('q_{{ index .Tags "svc" }}')
        .details('')
        .warn(lambda: "depth" > 10)
        .sensu()
        .sensu()
            .handlers('own')
            .source('')
""", """
q,svc=api depth=11i 31536000
q,svc=db depth=3i 31536000
q,svc=api depth=2i 31536001
"""),
    # [smtp] global: every alert node mails [smtp] to, without .email(); with
    # state-changes-only, only when the level changes.
    "email_global_state_changes": ServiceCase(lambda d: SMTPReceiver(
        d, **{"global": True, "state-changes-only": True, "to": ["all@example.com"]}), """
stream
    |from()
        .measurement('cpu')
    |alert()
        .id('cpu')
        .message('{{ .Level }} {{ index .Fields "v" }}')
        .details('{{ .Message }}')
        .warn(lambda: "v" > 1)
        .crit(lambda: "v" > 5)
""", """
cpu v=2 31536000
cpu v=3 31536001
cpu v=6 31536002
cpu v=0 31536003
"""),
    # .tcp() addresses are dialled when an alert is sent: an unusable one fails that
    # event only, and ":port" is the local system.
    "tcp_address_forms": ServiceCase(TCPReceiver, """
stream
    |from()
        .measurement('m')
    |alert()
        .id('a')
        .details('')
        .crit(lambda: "v" > 1)
        .tcp('')
        .tcp('no-port')
        .tcp(':{{TCP_PORT}}')
""", """
m v=2 31536000
"""),
    # kafka-go's LeastBytes: each message to the partition with the fewest bytes so far.
    "kafka_least_bytes_partitions": ServiceCase(KafkaSink, """
stream
    |from()
        .measurement('disk')
        .groupBy('host')
    |alert()
        .id('disk/{{ index .Tags "host" }}')
        .message('{{ .ID }} {{ .Level }}')
        .details('')
        .crit(lambda: "used" > 90)
        .kafka()
            .cluster('default')
            .kafkaTopic('disk')
        .kafka()
            .cluster('default')
            .kafkaTopic('disk-ids')
            .template('{{ .ID }}')
""", """
disk,host=a used=91 31536000
disk,host=bbbbbbbbbbbb used=95 31536001
disk,host=cc used=99 31536002
disk,host=dddddd used=92 31536003
disk,host=a used=50 31536004
"""),
    # With the default batch-size, each partition's messages of the batch-timeout go
    # together in one Produce request.
    "kafka_batches_per_partition": ServiceCase(lambda d: KafkaSink(d, **{"batch-size": 0}),
                                               """
stream
    |from()
        .measurement('m')
        .groupBy('h')
    |alert()
        .id('{{ index .Tags "h" }}')
        .details('')
        .crit(lambda: "v" > 1)
        .kafka()
            .cluster('default')
            .kafkaTopic('t')
            .template('{{ .ID }} {{ .Level }}')
""", """
m,h=a v=2 31536000
m,h=b v=3 31536000
m,h=c v=3 31536000
m,h=d v=3 31536000
m,h=e v=3 31536000
m,h=f v=3 31536000
m,h=g v=3 31536000
"""),
    # A broker offering Metadata and Produce v0-v8 gets kafka-go's Metadata v1 and
    # Produce v7.
    "kafka_protocol_versions": ServiceCase(lambda d: KafkaSink(d, offered=(0, 8)), """
stream
    |from()
        .measurement('m')
    |alert()
        .id('v')
        .details('')
        .crit(lambda: "v" > 1)
        .kafka()
            .cluster('default')
            .kafkaTopic('versions')
""", """
m v=2 31536000
"""),
    # A template runs on alert.Data: {{ .Data }} prints its JSON, .Time and .Duration
    # print as Go's; HTML is not escaped.
    "kafka_template_alert_data": ServiceCase(KafkaSink, """
stream
    |from()
        .measurement('m')
        .groupBy('h')
    |alert()
        .id('{{ index .Tags "h" }}')
        .message('<{{ .Level }}> é')
        .details('')
        .warn(lambda: "v" > 1)
        .crit(lambda: "v" > 2)
        .kafka()
            .cluster('default')
            .kafkaTopic('tmpl')
            .template('{{ .ID }}|{{ .Level }}|{{ .Time }}|{{ .Duration }}|{{ .Data }}|{{ .PreviousLevel }}|{{ .Recoverable }}|{{ index (index .Data.Series 0).Tags "h" }}|{{ .Message }}|{{ .Details }}')
""", """
m,h=x v=2 31536000
m,h=x v=3.5 31536001
m,h=y v=0 31536001
m,h=x v=0 31536002
"""),
    # The time column of .Data's rows is a time.Time: printed and used as Go's.
    "kafka_template_row_times": ServiceCase(KafkaSink, """
stream
    |from()
        .measurement('m')
        .groupBy('h')
    |alert()
        .id('{{ index .Tags "h" }}')
        .details('')
        .crit(lambda: "v" > 1)
        .kafka()
            .cluster('default')
            .kafkaTopic('rows')
            .template('{{ (index .Data.Series 0).Values }}|{{ (index (index (index .Data.Series 0).Values 0) 0).Unix }}')
""", """
m,h=a v=2 31536000
m,h=b v=3.5,s="x" 31536001
"""),
    # CREATE DATABASE with names quoted only where InfluxQL needs it; every /write
    # parameter; the client's headers.
    "influxdb_out_create_and_quote": ServiceCase(PLAIN_INFLUX, """
stream
    |from()
        .measurement('cpu')
    |influxDBOut()
        .create()
        .database('my-db')
        .retentionPolicy('select')
        .measurement('cpu out')
        .precision('ms')
        .writeConsistency('any')
        .tag('kind', 'copy')
        .buffer(4)
        .flushInterval(1h)
""", """
cpu,host=a,dc=x v=1.5,n=3i,s="text",b=true 31536000
cpu,host=b,dc=x v=2 31536001
cpu,host=a,dc=y n=-4i 31536002
cpu,host=c s="q\\"uote" 31536003
"""),
    # No .create(), no precision and no retention policy: the point's own, and empty
    # parameters still sent.
    "influxdb_out_point_rp": ServiceCase(lambda d: InfluxReceiver(
        d, ('CREATE DATABASE plain WITH NAME myrp',), compression="none"), """
stream
    |from()
        .measurement('mem')
        .groupBy('host')
    |influxDBOut()
        .database('plain')
        .buffer(3)
        .flushInterval(1h)
""", """
mem,host=a used=10i 31536000
mem,host=b used=20i 31536000
mem,host=a used=11i 31536001
"""),
    # Batches (a window's mean) go to .database() and .retentionPolicy(); the node's tag
    # replaces the group's.
    "influxdb_out_window_batches": ServiceCase(lambda d: InfluxReceiver(
        d, ('CREATE DATABASE agg WITH NAME "1h"',), compression="none"), """
stream
    |from()
        .measurement('net')
        .groupBy('if')
    |window()
        .period(2s)
        .every(2s)
    |mean('bytes')
        .as('mean')
    |influxDBOut()
        .database('agg')
        .retentionPolicy('1h')
        .tag('if', 'all')
        .tag('src', 'w')
        .buffer(2)
        .flushInterval(1h)
""", """
net,if=eth0 bytes=10i 31536000
net,if=eth1 bytes=3i 31536000
net,if=eth0 bytes=11i 31536001
net,if=eth1 bytes=4i 31536001
net,if=eth0 bytes=1i 31536002
net,if=eth1 bytes=1i 31536002
"""),
    # A Go duration unit is sent as written; only ms, s, m and h scale the times, so
    # 'us' goes with nanoseconds.
    "influxdb_out_precision_us": ServiceCase(lambda d: InfluxReceiver(
        d, ('CREATE DATABASE x WITH NAME myrp',), compression="none"), """
stream
    |from()
        .measurement('m')
    |influxDBOut()
        .database('x')
        .precision('us')
        .buffer(2)
        .flushInterval(1h)
""", """
m v=1 31536000
m v=-0.125 31536001
"""),
    # Line protocol escapes of measurement, tag and field keys, tag values and string
    # fields; big floats in full decimals.
    "influxdb_out_escapes": ServiceCase(lambda d: InfluxReceiver(
        d, ('CREATE DATABASE x WITH NAME myrp',), compression="none"), """
stream
    |from()
        .measurement('m')
    |eval(lambda: "v" * 2.0, lambda: string("v") + 'a\\b"c')
        .as('x y', 's=t')
        .keep()
    |influxDBOut()
        .database('x')
        .measurement('a,b c')
        .tag('t k', 'v=w,z')
        .buffer(2)
        .flushInterval(1h)
""", r"""
m,h=1\ 2,e=q v=1 31536000
m,h=3 v=100000000000000000000000.5 31536001
"""),
}


def expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text(encoding="utf-8")) if EXPECTED.exists() else {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_what_the_service_receives_equals_kapacitors(name: str, tmp_path: Path) -> None:
    want = expected().get(name)
    if want is None:
        pytest.fail(f"no answer of Kapacitor for {name}: take it with "
                    "python -m tests.integration.test_service_outputs --kapacitord BIN")
    if name.startswith("influxdb") and shutil.which("influxd") is None:
        pytest.skip("influxd is not installed")
    spec = CASES[name]
    receiver = spec.receiver(tmp_path)
    try:
        got, log = on_kapa_core(spec.case(name, receiver), receiver, tmp_path, want)
    finally:
        receiver.close()
    assert got == want, "\n".join(line for line in log if "ERROR" in line or "WARN" in line)


def main(argv: list[str] | None = None) -> int:
    """Take Kapacitor's answers for the named cases (all by default) into
    service_outputs.json."""
    parser = argparse.ArgumentParser(prog="python -m tests.integration.test_service_outputs")
    parser.add_argument("names", nargs="*")
    parser.add_argument("--kapacitord", required=True)
    args = parser.parse_args(argv)
    answers = expected()
    for name, spec in CASES.items():
        if args.names and not any(fnmatch.fnmatch(name, p) for p in args.names):
            continue
        workdir = Path(tempfile.mkdtemp(prefix="service-outputs-"))
        receiver = spec.receiver(workdir)
        try:
            answers[name] = on_kapacitor(args.kapacitord, spec.case(name, receiver),
                                         receiver, workdir)
        finally:
            receiver.close()
            shutil.rmtree(workdir, ignore_errors=True)
        print(name, json.dumps(answers[name], sort_keys=True)[:300], flush=True)
    EXPECTED.write_text(json.dumps(answers, indent=1, sort_keys=True, ensure_ascii=False)
                        + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
