"""ZooKeeper member data (``[[serverset]]`` and ``[[nerve]]``) decoded into targets and
labels as Prometheus' ZooKeeper discovery vendored by Kapacitor 1.5.7 decodes it, and
the sections' configuration.

The expected answers below were produced by running that vendored discovery code
(``github.com/prometheus/prometheus/discovery/zookeeper`` at Kapacitor v1.5.7, built
with Kapacitor's Go 1.19) against a real ZooKeeper holding these nodes; regenerate them
with

    python -m tests.unit.test_zookeeper_discovery --kapacitor-src /opt/kgo/src/github.com/influxdata/kapacitor

which builds a small Go program (:data:`ORACLE_GO`) against Kapacitor's vendor tree,
starts ZooKeeper (see tests/integration/test_discovery_zookeeper.py), and prints the
tables. None means the node gives no target (Go fails to decode it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kapa_plugins.discovery import nerve, serverset
from kapa_plugins.discovery.prometheus_sd import join_host_port, sanitize_label_name
from kapa_plugins.discovery.zookeeper import (
    GoJSONError,
    TreeWatcher,
    _find,
    _Node,
    server_list,
)

from kapa_core.errors import ConfigError

FULL = (b'{"serviceEndpoint":{"host":"10.0.0.1","port":9100},"additionalEndpoints":'
        b'{"http":{"host":"10.0.0.2","port":8080},"a.b-c":{"host":"h","port":1}},'
        b'"status":"ALIVE","shard":3}')

#: name (a ZooKeeper node name) -> data
SERVERSET_CASES: dict[str, bytes] = {
    "full": FULL,
    "folded": b'{"SERVICEENDPOINT":{"HOST":"a","Port":1},"Status":"x","SHARD":2,'
              b'"AdditionalEndpoints":{"Z":{"hOST":"z","PORT":26}}}',
    "kelvin": '{"\u017ferviceEndpoint":{"ho\u017ft":"b","port":2},"\u017ftatus":"\u212a"}'
              .encode(),
    "shard_float": b'{"serviceEndpoint":{"host":"a","port":1},"shard":1.0}',
    "port_string": b'{"serviceEndpoint":{"host":"a","port":"80"}}',
    "port_exp": b'{"serviceEndpoint":{"host":"a","port":1e2}}',
    "top_null": b"null",
    "top_array": b"[]",
    "top_true": b"true",
    "empty": b"",
    "blank": b"  \n",
    "map_nulled": b'{"additionalEndpoints":{"x":{"host":"x","port":1}},'
                  b'"additionalEndpoints":null,"serviceEndpoint":{"host":"a","port":5}}',
    "merged": b'{"serviceEndpoint":{"host":"a"},"serviceEndpoint":{"port":7},'
              b'"additionalEndpoints":{"p":{"host":"p","port":1}},'
              b'"additionalEndpoints":{"q":{"port":2}}}',
    "map_entry_dup": b'{"serviceEndpoint":{"host":"a","port":1},'
                     b'"additionalEndpoints":{"p":{"host":"p","port":1},"p":{"port":2}}}',
    "odd_names": '{"serviceEndpoint":{"host":"a","port":1},"additionalEndpoints":'
                 '{"\u00fcber":{"host":"u","port":1},"":{"host":"e","port":2},'
                 '"9x":{"host":"n","port":3}}}'.encode(),
    "entry_null": b'{"serviceEndpoint":{"host":"a","port":1},"additionalEndpoints":{"n":null}}',
    "unknown": b'{"serviceEndpoint":{"host":"a","port":1,"extra":[1,{"x":null}]},'
               b'"weight":1.5,"status":"ALIVE","member_id":"m"}',
    "port_max": b'{"serviceEndpoint":{"host":"a","port":9223372036854775807},"shard":-0}',
    "port_over": b'{"serviceEndpoint":{"host":"a","port":9223372036854775808}}',
    "port_negative": b'{"serviceEndpoint":{"host":"a","port":-1},"shard":-5}',
    "bad_utf8": b'{"serviceEndpoint":{"host":"a\xff\xe2\x82b","port":1},"status":"\xed\xa0\x80"}',
    "surrogate": b'{"serviceEndpoint":{"host":"\\ud800x\\ud83d\\ude00","port":1}}',
    "trailing": b'{"serviceEndpoint":{"host":"a","port":1}} x',
    "nan": b'{"serviceEndpoint":{"host":"a","port":NaN}}',
    "padded": b' \t\r\n{"serviceEndpoint":{"host":"a","port":1}}\n ',
    "status_number": b'{"serviceEndpoint":{"host":"a","port":1},"status":1}',
    "endpoint_string": b'{"serviceEndpoint":"a:1"}',
    "endpoints_array": b'{"serviceEndpoint":{"host":"a","port":1},"additionalEndpoints":[]}',
    "ipv6": b'{"serviceEndpoint":{"host":"fe80::1","port":443}}',
    "bom": b'\xef\xbb\xbf{"serviceEndpoint":{"host":"a","port":1}}',
    "nulls": b'{"serviceEndpoint":null,"status":null,"shard":null,"additionalEndpoints":null}',
    "bool_port": b'{"serviceEndpoint":{"host":"a","port":true}}',
    "escaped_key": b'{"serviceEndpoin\\u0074":{"host":"a","port":1}}',
    "control_char": b'{"serviceEndpoint":{"host":"a\x01","port":1}}',
}

NERVE_CASES: dict[str, bytes] = {
    "full": b'{"host":"10.0.0.1","port":9100,"name":"web-1","weight":1,"labels":{"a":"b"}}',
    "folded": b'{"HOST":"a","PORT":1,"Name":"n"}',
    "missing_port": b'{"host":"a","name":"n"}',
    "top_null": b"null",
    "empty": b"",
    "name_number": b'{"host":"a","port":1,"name":5}',
    "port_float": b'{"host":"a","port":80.5}',
    "ipv6": b'{"host":"::1","port":8080,"name":"v6"}',
    "long_s": '{"ho\u017ft":"s","port":3}'.encode(),
    "not_json": b"host=a port=1",
}

#: Kapacitor 1.5.7's answers (see the module docs): name -> (target, labels) or None
SERVERSET_EXPECTED: dict[str, Any] = {'bad_utf8': ['a���b:1',
              {'__meta_serverset_endpoint_host': 'a���b',
               '__meta_serverset_endpoint_port': '1',
               '__meta_serverset_path': '/oracle/serverset/bad_utf8',
               '__meta_serverset_shard': '0',
               '__meta_serverset_status': '���'}],
 'blank': None,
 'bom': None,
 'bool_port': None,
 'control_char': None,
 'empty': None,
 'endpoint_string': None,
 'endpoints_array': None,
 'entry_null': ['a:1',
                {'__meta_serverset_endpoint_host': 'a',
                 '__meta_serverset_endpoint_host_n': '',
                 '__meta_serverset_endpoint_port': '1',
                 '__meta_serverset_endpoint_port_n': '0',
                 '__meta_serverset_path': '/oracle/serverset/entry_null',
                 '__meta_serverset_shard': '0',
                 '__meta_serverset_status': ''}],
 'escaped_key': ['a:1',
                 {'__meta_serverset_endpoint_host': 'a',
                  '__meta_serverset_endpoint_port': '1',
                  '__meta_serverset_path': '/oracle/serverset/escaped_key',
                  '__meta_serverset_shard': '0',
                  '__meta_serverset_status': ''}],
 'folded': ['a:1',
            {'__meta_serverset_endpoint_host': 'a',
             '__meta_serverset_endpoint_host_Z': 'z',
             '__meta_serverset_endpoint_port': '1',
             '__meta_serverset_endpoint_port_Z': '26',
             '__meta_serverset_path': '/oracle/serverset/folded',
             '__meta_serverset_shard': '2',
             '__meta_serverset_status': 'x'}],
 'full': ['10.0.0.1:9100',
          {'__meta_serverset_endpoint_host': '10.0.0.1',
           '__meta_serverset_endpoint_host_a_b_c': 'h',
           '__meta_serverset_endpoint_host_http': '10.0.0.2',
           '__meta_serverset_endpoint_port': '9100',
           '__meta_serverset_endpoint_port_a_b_c': '1',
           '__meta_serverset_endpoint_port_http': '8080',
           '__meta_serverset_path': '/oracle/serverset/full',
           '__meta_serverset_shard': '3',
           '__meta_serverset_status': 'ALIVE'}],
 'ipv6': ['[fe80::1]:443',
          {'__meta_serverset_endpoint_host': 'fe80::1',
           '__meta_serverset_endpoint_port': '443',
           '__meta_serverset_path': '/oracle/serverset/ipv6',
           '__meta_serverset_shard': '0',
           '__meta_serverset_status': ''}],
 'kelvin': ['b:2',
            {'__meta_serverset_endpoint_host': 'b',
             '__meta_serverset_endpoint_port': '2',
             '__meta_serverset_path': '/oracle/serverset/kelvin',
             '__meta_serverset_shard': '0',
             '__meta_serverset_status': 'K'}],
 'map_entry_dup': ['a:1',
                   {'__meta_serverset_endpoint_host': 'a',
                    '__meta_serverset_endpoint_host_p': '',
                    '__meta_serverset_endpoint_port': '1',
                    '__meta_serverset_endpoint_port_p': '2',
                    '__meta_serverset_path': '/oracle/serverset/map_entry_dup',
                    '__meta_serverset_shard': '0',
                    '__meta_serverset_status': ''}],
 'map_nulled': ['a:5',
                {'__meta_serverset_endpoint_host': 'a',
                 '__meta_serverset_endpoint_port': '5',
                 '__meta_serverset_path': '/oracle/serverset/map_nulled',
                 '__meta_serverset_shard': '0',
                 '__meta_serverset_status': ''}],
 'merged': ['a:7',
            {'__meta_serverset_endpoint_host': 'a',
             '__meta_serverset_endpoint_host_p': 'p',
             '__meta_serverset_endpoint_host_q': '',
             '__meta_serverset_endpoint_port': '7',
             '__meta_serverset_endpoint_port_p': '1',
             '__meta_serverset_endpoint_port_q': '2',
             '__meta_serverset_path': '/oracle/serverset/merged',
             '__meta_serverset_shard': '0',
             '__meta_serverset_status': ''}],
 'nan': None,
 'nulls': [':0',
           {'__meta_serverset_endpoint_host': '',
            '__meta_serverset_endpoint_port': '0',
            '__meta_serverset_path': '/oracle/serverset/nulls',
            '__meta_serverset_shard': '0',
            '__meta_serverset_status': ''}],
 'odd_names': ['a:1',
               {'__meta_serverset_endpoint_host': 'a',
                '__meta_serverset_endpoint_host_': 'e',
                '__meta_serverset_endpoint_host_9x': 'n',
                '__meta_serverset_endpoint_host__ber': 'u',
                '__meta_serverset_endpoint_port': '1',
                '__meta_serverset_endpoint_port_': '2',
                '__meta_serverset_endpoint_port_9x': '3',
                '__meta_serverset_endpoint_port__ber': '1',
                '__meta_serverset_path': '/oracle/serverset/odd_names',
                '__meta_serverset_shard': '0',
                '__meta_serverset_status': ''}],
 'padded': ['a:1',
            {'__meta_serverset_endpoint_host': 'a',
             '__meta_serverset_endpoint_port': '1',
             '__meta_serverset_path': '/oracle/serverset/padded',
             '__meta_serverset_shard': '0',
             '__meta_serverset_status': ''}],
 'port_exp': None,
 'port_max': ['a:9223372036854775807',
              {'__meta_serverset_endpoint_host': 'a',
               '__meta_serverset_endpoint_port': '9223372036854775807',
               '__meta_serverset_path': '/oracle/serverset/port_max',
               '__meta_serverset_shard': '0',
               '__meta_serverset_status': ''}],
 'port_negative': ['a:-1',
                   {'__meta_serverset_endpoint_host': 'a',
                    '__meta_serverset_endpoint_port': '-1',
                    '__meta_serverset_path': '/oracle/serverset/port_negative',
                    '__meta_serverset_shard': '-5',
                    '__meta_serverset_status': ''}],
 'port_over': None,
 'port_string': None,
 'shard_float': None,
 'status_number': None,
 'surrogate': ['�x😀:1',
               {'__meta_serverset_endpoint_host': '�x😀',
                '__meta_serverset_endpoint_port': '1',
                '__meta_serverset_path': '/oracle/serverset/surrogate',
                '__meta_serverset_shard': '0',
                '__meta_serverset_status': ''}],
 'top_array': None,
 'top_null': [':0',
              {'__meta_serverset_endpoint_host': '',
               '__meta_serverset_endpoint_port': '0',
               '__meta_serverset_path': '/oracle/serverset/top_null',
               '__meta_serverset_shard': '0',
               '__meta_serverset_status': ''}],
 'top_true': None,
 'trailing': None,
 'unknown': ['a:1',
             {'__meta_serverset_endpoint_host': 'a',
              '__meta_serverset_endpoint_port': '1',
              '__meta_serverset_path': '/oracle/serverset/unknown',
              '__meta_serverset_shard': '0',
              '__meta_serverset_status': 'ALIVE'}]}

NERVE_EXPECTED: dict[str, Any] = {'empty': None,
 'folded': ['a:1',
            {'__meta_nerve_endpoint_host': 'a',
             '__meta_nerve_endpoint_name': 'n',
             '__meta_nerve_endpoint_port': '1',
             '__meta_nerve_path': '/oracle/nerve/folded'}],
 'full': ['10.0.0.1:9100',
          {'__meta_nerve_endpoint_host': '10.0.0.1',
           '__meta_nerve_endpoint_name': 'web-1',
           '__meta_nerve_endpoint_port': '9100',
           '__meta_nerve_path': '/oracle/nerve/full'}],
 'ipv6': ['[::1]:8080',
          {'__meta_nerve_endpoint_host': '::1',
           '__meta_nerve_endpoint_name': 'v6',
           '__meta_nerve_endpoint_port': '8080',
           '__meta_nerve_path': '/oracle/nerve/ipv6'}],
 'long_s': ['s:3',
            {'__meta_nerve_endpoint_host': 's',
             '__meta_nerve_endpoint_name': '',
             '__meta_nerve_endpoint_port': '3',
             '__meta_nerve_path': '/oracle/nerve/long_s'}],
 'missing_port': ['a:0',
                  {'__meta_nerve_endpoint_host': 'a',
                   '__meta_nerve_endpoint_name': 'n',
                   '__meta_nerve_endpoint_port': '0',
                   '__meta_nerve_path': '/oracle/nerve/missing_port'}],
 'name_number': None,
 'not_json': None,
 'port_float': None,
 'top_null': [':0',
              {'__meta_nerve_endpoint_host': '',
               '__meta_nerve_endpoint_name': '',
               '__meta_nerve_endpoint_port': '0',
               '__meta_nerve_path': '/oracle/nerve/top_null'}]}


def parsed(module: Any, name: str, data: bytes, root: str) -> Any:
    path = f"{root}/{name}"
    try:
        target, labels = module.parse_member(data, path)
    except GoJSONError:
        return None
    return [target, labels]


@pytest.mark.parametrize("name", sorted(SERVERSET_CASES))
def test_serverset_members_decode_as_kapacitor(name: str) -> None:
    expected = SERVERSET_EXPECTED[name]
    assert parsed(serverset, name, SERVERSET_CASES[name], "/oracle/serverset") == expected


@pytest.mark.parametrize("name", sorted(NERVE_CASES))
def test_nerve_members_decode_as_kapacitor(name: str) -> None:
    expected = NERVE_EXPECTED[name]
    assert parsed(nerve, name, NERVE_CASES[name], "/oracle/nerve") == expected


def test_errors_name_the_node() -> None:
    with pytest.raises(GoJSONError, match="error unmarshaling serverset member '/a/b'"):
        serverset.parse_member(b"[]", "/a/b")
    with pytest.raises(GoJSONError, match="error unmarshaling nerve member '/n'"):
        nerve.parse_member(b"{", "/n")


def test_helpers() -> None:
    assert join_host_port("::1", 80) == "[::1]:80"
    assert join_host_port("", 0) == ":0"
    assert sanitize_label_name("a.b-c\u00fc_9") == "a_b_c__9"
    assert server_list(["zk1", " zk2:2182 ", "[::1]:2181"]) == "zk1:2181,zk2:2182,[::1]:2181"
    for bad in (["a:1/chroot"], ["a:1,b:2"], [""], []):
        with pytest.raises(ValueError):
            server_list(bad)


def test_find_walks_and_makes_nodes_within_a_tree_only() -> None:
    root = _Node()
    assert _find("/a", root, "/a") is root
    assert _find("/a", root, "/ab") is None
    assert _find("/a", root, "/b/c") is None
    node = _find("/a", root, "/a/b/c")
    assert node is not None and root.children["b"].children["c"] is node
    top = _Node()
    assert _find("/", top, "/x") is top.children["x"]


@pytest.mark.parametrize("module,schema,message", [
    (nerve, nerve.NerveConfig, "nerve discovery paths must begin with '/': rel"),
    (serverset, serverset.ServersetConfig,
     "serverset discovery config paths must begin with '/': rel"),
])
def test_config_checks(module: Any, schema: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        schema(enabled=True, id="x", servers=["zk:2181"], paths=["/ok", "rel"]).validate()
    assert info.value.path == "paths[1]" and info.value.message == message
    schema(enabled=True, id="x", servers=["zk:2181"], paths=["/ok"]).validate()
    with pytest.raises(ConfigError, match="id"):
        schema(enabled=True, servers=["zk:2181"]).validate()
    with pytest.raises(ConfigError, match="servers"):
        schema(enabled=True, id="x").validate()
    schema().validate()
    assert schema().timeout == 10_000_000_000


def test_sections_and_kinds_are_registered() -> None:
    for module, name in ((nerve, "nerve"), (serverset, "serverset")):
        (section,) = module.kapa_config_sections()
        assert section.name == name and section.service is not None
        (kind,) = module.kapa_discovery_kinds()
        assert kind.section == name and kind.factory is module.discoverer


# -- regenerating the expected answers ----------------------------------------------

ORACLE_GO = r'''
// zkoracle runs the Prometheus ZooKeeper discoverers vendored by Kapacitor 1.5.7 and
// prints every target group they send as one JSON line.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/log"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/zookeeper"
	"golang.org/x/net/context"
)

func main() {
	kind := flag.String("kind", "serverset", "serverset or nerve")
	servers := flag.String("servers", "", "comma separated")
	paths := flag.String("paths", "", "comma separated")
	flag.Parse()
	to := model.Duration(10 * time.Second)
	srv, pth := strings.Split(*servers, ","), strings.Split(*paths, ",")
	var d *zookeeper.Discovery
	if *kind == "nerve" {
		d = zookeeper.NewNerveDiscovery(&config.NerveSDConfig{Servers: srv, Paths: pth, Timeout: to}, log.Base())
	} else {
		d = zookeeper.NewServersetDiscovery(&config.ServersetSDConfig{Servers: srv, Paths: pth, Timeout: to}, log.Base())
	}
	ch := make(chan []*config.TargetGroup)
	go d.Run(context.Background(), ch)
	enc := json.NewEncoder(os.Stdout)
	for tgs := range ch {
		for _, tg := range tgs {
			enc.Encode(map[string]interface{}{"source": tg.Source, "targets": tg.Targets})
		}
	}
}
'''


def build_oracle(kapacitor_src: str, workdir: str) -> str:
    """Build :data:`ORACLE_GO` in GOPATH mode against Kapacitor's vendor tree."""
    import os
    import subprocess

    package = os.path.join(workdir, "src", "zkoracle")
    os.makedirs(package, exist_ok=True)
    with open(os.path.join(package, "main.go"), "w") as f:
        f.write(ORACLE_GO)
    vendor = os.path.join(package, "vendor")
    if not os.path.exists(vendor):
        os.symlink(os.path.join(kapacitor_src, "vendor"), vendor)
    binary = os.path.join(workdir, "zkoracle")
    env = dict(os.environ, GO111MODULE="off", GOPATH=workdir, GOFLAGS="")
    subprocess.run(["go", "build", "-o", binary, "."], cwd=package, env=env, check=True)
    return binary


def oracle_answers(binary: str, servers: str, kind: str, root: str,
                   cases: dict[str, bytes]) -> dict[str, Any]:
    """Register ``cases`` under ``root`` and take what the Go discoverer sends."""
    import subprocess
    import time

    from kazoo.client import KazooClient

    zk = KazooClient(servers)
    zk.start()
    try:
        zk.ensure_path(root)
        for name, data in cases.items():
            zk.create(f"{root}/{name}", data)
        proc = subprocess.Popen([binary, "-kind", kind, "-servers", servers, "-paths", root],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(3)
        proc.terminate()
        out, _ = proc.communicate()
    finally:
        zk.delete(root, recursive=True)
        zk.stop()
        zk.close()
    last: dict[str, Any] = {}
    for line in out.decode().splitlines():
        group = json.loads(line)
        last[group["source"]] = group["targets"]
    answers: dict[str, Any] = {}
    for name in cases:
        targets = last.get(f"{root}/{name}") or []
        if not targets:
            answers[name] = None
            continue
        (labels,) = targets
        address = labels.pop("__address__")
        answers[name] = [address, dict(sorted(labels.items()))]
    return answers


def main() -> None:
    import argparse
    import pprint
    import tempfile

    from tests.integration.test_discovery_zookeeper import ZooKeeperServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--kapacitor-src", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, ZooKeeperServer() as zk:
        binary = build_oracle(args.kapacitor_src, workdir)
        for kind, cases in (("serverset", SERVERSET_CASES), ("nerve", NERVE_CASES)):
            answers = oracle_answers(binary, zk.servers, kind, f"/oracle/{kind}", cases)
            print(f"{kind.upper()}_EXPECTED: dict[str, Any] = ", end="")
            pprint.pprint(answers, width=88, sort_dicts=True)


if __name__ == "__main__":
    main()


def test_connections_are_checked_against_the_deny_list_first() -> None:
    """Every connection kazoo makes is offered to ``check_outgoing`` with the address it
    resolved; a refusal (an OSError, as the deny list raises) is a failed attempt."""
    import socket
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # would accept, were the address allowed
        port = s.getsockname()[1]
        checked: list[str] = []
        refused = threading.Event()

        def check(url: str) -> None:
            checked.append(url)
            refused.set()
            raise OSError(f"connections to {url} are not allowed")

        notes: list[tuple[str, str]] = []
        watcher = TreeWatcher([f"localhost:{port}"], ["/x"], 5.0, lambda c, f: None,
                              lambda level, message, fields: notes.append((level, message)),
                              check_outgoing=check, name="deny-test")
        watcher.start()
        try:
            assert refused.wait(10)
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.accept()
        finally:
            watcher.stop()
    assert set(checked) <= {f"tcp://127.0.0.1:{port}", f"tcp://[::1]:{port}"} and checked
    assert ("info", "connected to ZooKeeper") not in notes
