"""Tasks through the real daemon, in the form of Kapacitor's own tests: a script, points
with fixed timestamps written through /write, and the exact httpOut JSON."""

from __future__ import annotations

import itertools
import time

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration
_ids = itertools.count()


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"log-enabled": False}}) as d:
        yield d


def define(daemon: DaemonProcess, script: str, **extra) -> str:
    task_id = f"t{next(_ids)}"
    body = {"id": task_id, "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": script, "status": "enabled", **extra}
    response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json=body)
    assert response.status_code == 200, response.text
    return task_id


def write(daemon: DaemonProcess, lines: str, precision: str = "s") -> None:
    response = httpx.post(f"{daemon.url}/write?db=db&rp=rp&precision={precision}",
                          content=lines.strip().encode())
    assert response.status_code == 204, response.text


def output(daemon: DaemonProcess, task_id: str, expected, endpoint: str = "out"):
    """Poll the httpOut endpoint until it equals ``expected``; after 20 s, the last body."""
    deadline = time.monotonic() + 20
    body = None
    while time.monotonic() < deadline:
        response = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}/{endpoint}")
        if response.status_code == 200:
            body = response.json()
            if body == expected:
                return body
        time.sleep(0.05)
    return body


def node_stats(daemon: DaemonProcess, task_id: str, node: str) -> dict:
    task = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}").json()
    return task["stats"]["node-stats"][node]


def run(daemon, script, lines, expected, **extra):
    task_id = define(daemon, script, **extra)
    write(daemon, lines)
    assert output(daemon, task_id, expected) == expected
    httpx.delete(f"{daemon.url}/kapacitor/v1/tasks/{task_id}")


def test_stream_from_where_keeps_the_last_point_per_group(daemon) -> None:
    run(daemon, """
stream|from().measurement('cpu').where(lambda: "usage" > 50.0).groupBy('host')|httpOut('out')
""", """
cpu,host=a usage=60 1
cpu,host=b usage=10 2
cpu,host=a usage=70 3
mem,host=a usage=99 4
""", {"series": [{"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "usage"],
                  "values": [["1970-01-01T00:00:03Z", 70.0]]}]})


def test_window_mean_per_group_unaligned(daemon) -> None:
    run(daemon, """
stream|from().measurement('cpu').groupBy('host')
  |window().period(10s).every(10s)
  |mean('v')
  |httpOut('out')
""", """
cpu,host=a v=1 0
cpu,host=a v=3 5
cpu,host=b v=10 1
cpu,host=a v=4 10
cpu,host=b v=4 12
""", {"series": [
        {"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "mean"],
         "values": [["1970-01-01T00:00:10Z", 2.0]]},
        {"name": "cpu", "tags": {"host": "b"}, "columns": ["time", "mean"],
         "values": [["1970-01-01T00:00:11Z", 10.0]]}]})


def test_aligned_window_count_and_sum_types(daemon) -> None:
    script = """
var w = stream|from().measurement('m')|window().period(10s).every(10s).align()
w|count('v')|httpOut('out')
w|sum('n')|httpOut('sum')
"""
    task_id = define(daemon, script)
    write(daemon, "\n".join(f"m v={i}.5,n={i}i {i + 1}" for i in range(12)))
    assert output(daemon, task_id, {"series": [{"name": "m", "columns": ["time", "count"],
                                                "values": [["1970-01-01T00:00:10Z", 9]]}]})
    expected_sum = {"series": [{"name": "m", "columns": ["time", "sum"],
                                "values": [["1970-01-01T00:00:10Z", sum(range(9))]]}]}
    assert output(daemon, task_id, expected_sum, "sum") == expected_sum


def test_selector_with_point_times_and_as(daemon) -> None:
    run(daemon, """
stream|from().measurement('m')|window().period(5s).every(5s)
  |max('v').as('peak').usePointTimes()
  |httpOut('out')
""", "m v=1 0\nm v=9 2\nm v=3 4\nm v=0 5\n",
        {"series": [{"name": "m", "columns": ["time", "peak"],
                     "values": [["1970-01-01T00:00:02Z", 9.0]]}]})


def test_eval_keep_and_tags(daemon) -> None:
    run(daemon, """
stream|from().measurement('m')
  |eval(lambda: "used" / "total" * 100.0, lambda: if("used" > 5.0, 'high', 'low'))
    .as('pct', 'state').tags('state').keep('used')
  |httpOut('out')
""", "m used=6,total=8,other=1 1\n",
        # .keep('used') keeps only what it lists: pct is dropped (as Kapacitor does)
        {"series": [{"name": "m", "tags": {"state": "high"}, "columns": [
            "time", "used"], "values": [["1970-01-01T00:00:01Z", 6.0]]}]})


def test_derivative_and_state_count(daemon) -> None:
    run(daemon, """
stream|from().measurement('m')
  |derivative('v').unit(1s).as('rate')
  |stateCount(lambda: "rate" > 0.0)
  |httpOut('out')
""", "m v=0 0\nm v=10 2\nm v=30 4\n",
        {"series": [{"name": "m", "columns": ["time", "rate", "state_count", "v"],
                     "values": [["1970-01-01T00:00:04Z", 10.0, 2, 30.0]]}]})


def test_runtime_errors_are_counted_and_the_task_goes_on(daemon) -> None:
    task_id = define(daemon, """
stream|from().measurement('m')|eval(lambda: "v" + 1.0).as('w')|httpOut('out')
""")
    write(daemon, "m v=1i 1\nm v=2 2\n")  # an int + float is a type error in TICKscript
    expected = {"series": [{"name": "m", "columns": ["time", "w"],
                            "values": [["1970-01-01T00:00:02Z", 3.0]]}]}
    assert output(daemon, task_id, expected) == expected
    wait_until(lambda: node_stats(daemon, task_id, "eval2"), what="eval2 errors == 1",
               until=lambda stats: stats["errors"] == 1)
    daemon.wait_for_text("mismatched type to binary operator")


@pytest.mark.parametrize(("script", "message"), [
    ("stream|from().measurement('m')|window().perid(10s)",
     'line 1 char 41: no method or property "perid" on *pipeline.WindowNode (window2; did '
     "you mean period?)"),
    ("stream|from()\n  .measurement('m')\n  |eval(lambda: \"v\" * 2)",
     "must specify same number of expressions and .as() names: got 0 as names, and 1"),
    ("stream|from()|mean('v')|window().period(1s)\nbatch|query('x')",
     "invalid task type"),
    ('stream|from().measurement("m")', "did you use double quotes"),
    ("stream|from()|httpOut('x'", "parser: unexpected EOF line 1 char 26"),
])
def test_invalid_scripts_are_refused_with_positions(daemon, script, message) -> None:
    response = httpx.post(daemon.url + "/kapacitor/v1/tasks",
                          json={"id": "bad", "type": "stream", "script": script,
                                "dbrps": [{"db": "db", "rp": "rp"}]})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert httpx.get(daemon.url + "/kapacitor/v1/tasks/bad").status_code == 404


def test_dbrp_rules(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/tasks"
    both = httpx.post(url, json={"id": "x1", "script": 'dbrp "a"."b"\nstream|from()',
                                 "dbrps": [{"db": "a", "rp": "b"}]})
    assert both.json()["error"] == "cannot specify dbrp in both implicitly and explicitly"
    neither = httpx.post(url, json={"id": "x2", "script": "stream|from()"})
    assert neither.json()["error"] == "must specify dbrp"
    implicit = httpx.post(url, json={"id": "x3", "script": 'dbrp "a"."b"\nstream|from()'})
    assert implicit.status_code == 200
    assert implicit.json()["dbrps"] == [{"db": "a", "rp": "b"}]
    assert implicit.json()["type"] == "stream"
    assert implicit.json()["status"] == "disabled"
    httpx.delete(url + "/x3")


def test_list_get_patch_delete(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/tasks"
    for name in ("list-a", "list-b", "other"):
        assert httpx.post(url, json={"id": name, "script": "stream|from()",
                                     "dbrps": [{"db": "d", "rp": "r"}]}).status_code == 200
    listed = httpx.get(url, params={"pattern": "list-*", "fields": "status"}).json()
    assert listed == {"tasks": [
        {"link": {"rel": "self", "href": "/kapacitor/v1/tasks/list-a"}, "id": "list-a",
         "status": "disabled"},
        {"link": {"rel": "self", "href": "/kapacitor/v1/tasks/list-b"}, "id": "list-b",
         "status": "disabled"}]}
    page = httpx.get(url, params={"pattern": "list-*", "fields": "id", "offset": 1,
                                  "limit": 1}).json()
    assert [t["id"] for t in page["tasks"]] == ["list-b"]
    assert httpx.get(url, params={"fields": "bogus"}).status_code == 400
    patched = httpx.patch(url + "/list-a", json={"status": "enabled"}).json()
    assert patched["status"] == "enabled" and patched["executing"] is True
    renamed = httpx.patch(url + "/list-b", json={"id": "list-c"})
    assert renamed.json()["id"] == "list-c"
    assert httpx.get(url + "/list-b").status_code == 404
    for name in ("list-a", "list-c", "other"):
        assert httpx.delete(url + "/" + name).status_code == 204
    assert httpx.delete(url + "/never-existed").status_code == 204
    assert httpx.get(url + "/list-a").json() == {"error": "no task exists"}


def test_template_style_vars(daemon) -> None:
    script = """
var threshold float
var field = 'v'
stream|from().measurement('m').where(lambda: "v" > threshold)|httpOut('out')
"""
    url = daemon.url + "/kapacitor/v1/tasks"
    missing = httpx.post(url, json={"id": "vars", "script": script,
                                    "dbrps": [{"db": "db", "rp": "rp"}]})
    assert missing.status_code == 400
    assert 'missing value for var "threshold".' in missing.json()["error"]
    wrong = httpx.post(url, json={"id": "vars", "script": script,
                                  "dbrps": [{"db": "db", "rp": "rp"}],
                                  "vars": {"threshold": {"type": "string", "value": "x"}}})
    assert "invalid type supplied for threshold" in wrong.json()["error"]
    run(daemon, script, "m v=1 1\nm v=5 2\nm v=2 3\n",
        {"series": [{"name": "m", "columns": ["time", "v"],
                     "values": [["1970-01-01T00:00:02Z", 5.0]]}]},
        vars={"threshold": {"type": "float", "value": 4}})


def test_enabled_tasks_survive_a_restart(tmp_path) -> None:
    with DaemonProcess() as first:
        task_id = define(first, "stream|from().measurement('m')|httpOut('out')")
        assert first.stop() == 0
        with DaemonProcess(data_dir=first.data_dir) as second:
            write(second, "m v=7 7")
            expected = {"series": [{"name": "m", "columns": ["time", "v"],
                                    "values": [["1970-01-01T00:00:07Z", 7.0]]}]}
            assert output(second, task_id, expected) == expected


def test_join_with_tolerance_then_eval(daemon) -> None:
    run(daemon, """
var errors = stream|from().measurement('errors').groupBy('service')
var requests = stream|from().measurement('requests').groupBy('service')
errors|join(requests).as('errors', 'requests').tolerance(1s)
  |eval(lambda: "errors.value" / "requests.value").as('rate')
  |httpOut('out')
""", """
errors,service=api value=5 10
requests,service=api value=50 10
errors,service=api value=9 20
requests,service=web value=10 20
""", {"series": [{"name": "errors", "tags": {"service": "api"}, "columns": ["time", "rate"],
                  "values": [["1970-01-01T00:00:10Z", 0.1]]}]})


def test_join_fill_emits_incomplete_sets(daemon) -> None:
    run(daemon, """
var a = stream|from().measurement('a')
var b = stream|from().measurement('b')
a|join(b).as('a', 'b').fill(0.0).streamName('ab')|httpOut('out')
""", "a v=1 1\nb v=2 1\na v=3 2\nb v=4 3\na v=5 3\n",
        {"series": [{"name": "ab", "columns": ["time", "a.v", "b.v"],
                     "values": [["1970-01-01T00:00:03Z", 5.0, 4.0]]}]})


def test_templates_define_tasks_and_updates_reload_them(daemon) -> None:
    base = daemon.url + "/kapacitor/v1"
    script = """
// which measurement
var measurement string
var threshold = 10.0
stream|from().measurement(measurement).where(lambda: "v" > threshold)|httpOut('out')
"""
    created = httpx.post(base + "/templates", json={"id": "tpl", "script": script})
    assert created.status_code == 200, created.text
    assert created.json()["type"] == "stream"
    assert created.json()["vars"] == {
        "measurement": {"type": "string", "value": None, "description": "which measurement"},
        "threshold": {"type": "float", "value": 10.0, "description": ""}}
    task = httpx.post(base + "/tasks", json={
        "id": "from-tpl", "template-id": "tpl", "status": "enabled",
        "dbrps": [{"db": "db", "rp": "rp"}],
        "vars": {"measurement": {"type": "string", "value": "tm"},
                 "threshold": {"type": "float", "value": 1.5}}})
    assert task.status_code == 200, task.text
    assert task.json()["template-id"] == "tpl"
    write(daemon, "tm v=1 1\ntm v=2 2\n")
    expected = {"series": [{"name": "tm", "columns": ["time", "v"],
                            "values": [["1970-01-01T00:00:02Z", 2.0]]}]}
    assert output(daemon, "from-tpl", expected) == expected
    # An update that would break the task is refused and changes nothing.
    broken = httpx.patch(base + "/templates/tpl", json={
        "script": "var measurement int\nstream|from()|httpOut('out')"})
    assert broken.status_code == 400
    assert "from-tpl" in broken.json()["error"]
    # A good update reloads the task with the new script.
    updated = httpx.patch(base + "/templates/tpl", json={"script": script.replace(
        "httpOut('out')", "eval(lambda: \"v\" * 2.0).as('v2')|httpOut('out')")})
    assert updated.status_code == 200, updated.text
    write(daemon, "tm v=3 3\n")
    expected = {"series": [{"name": "tm", "columns": ["time", "v2"],
                            "values": [["1970-01-01T00:00:03Z", 6.0]]}]}
    assert output(daemon, "from-tpl", expected) == expected
    assert httpx.delete(base + "/tasks/from-tpl").status_code == 204
    assert httpx.delete(base + "/templates/tpl").status_code == 204
    assert httpx.get(base + "/templates/tpl").status_code == 404


def test_debug_vars_show_node_and_edge_statistics(daemon) -> None:
    task_id = define(daemon, "stream|from().measurement('dv')|httpOut('out')")
    write(daemon, "dv v=1 1\ndv v=2 2\n")
    expected = {"series": [{"name": "dv", "columns": ["time", "v"],
                            "values": [["1970-01-01T00:00:02Z", 2.0]]}]}
    assert output(daemon, task_id, expected) == expected

    def from1_edge(stats: dict) -> dict:
        return next(e for e in stats["kapacitor"].values() if e["name"] == "edges"
                    and e["tags"]["task"] == task_id and e["tags"]["parent"] == "from1")
    stats = wait_until(lambda: httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json(),
                       what="the from1 edge's emitted == 2 in debug/vars",
                       until=lambda stats: from1_edge(stats)["values"]["emitted"] == 2)
    assert stats["num_enabled_tasks"] >= 1
    entries = stats["kapacitor"].values()
    node = next(e for e in entries if e["name"] == "nodes" and e["tags"]["task"] == task_id
                and e["tags"]["node"] == "from1")
    assert node["tags"]["kind"] == "from" and node["values"]["errors"] == 0
    edge = next(e for e in entries if e["name"] == "edges" and e["tags"]["task"] == task_id
                and e["tags"]["parent"] == "from1")
    assert edge["tags"]["child"] == "http_out2" and edge["values"]["emitted"] == 2
    httpx.delete(f"{daemon.url}/kapacitor/v1/tasks/{task_id}")


def test_dot_in_attribute_and_label_views(daemon) -> None:
    task_id = define(daemon, "stream|from().measurement('dot')|httpOut('out')")
    write(daemon, "dot v=1 1\ndot v=2 2\n")
    expected = {"series": [{"name": "dot", "columns": ["time", "v"],
                            "values": [["1970-01-01T00:00:02Z", 2.0]]}]}
    assert output(daemon, task_id, expected) == expected
    url = f"{daemon.url}/kapacitor/v1/tasks/{task_id}"
    attributes = wait_until(lambda: httpx.get(url).json()["dot"].splitlines(),
                            what="processed=2 on from1 -> http_out2",
                            until=lambda dot: 'from1 -> http_out2 [processed="2"];' in dot)
    assert attributes[0] == f"digraph {task_id} {{"
    assert attributes[1].startswith('graph [throughput="') and attributes[1].endswith(
        ' points/s"];')
    assert 'from1 -> http_out2 [processed="2"];' in attributes
    node = next(line for line in attributes if line.startswith("from1 ["))
    # Kapacitor counts what a node emitted on its edges only, not among its attributes.
    assert 'errors="0"' in node and "emitted" not in node
    labels = httpx.get(url, params={"dot-view": "labels"}).json()["dot"].splitlines()
    assert labels[1].startswith('graph [label="Throughput: ')
    assert 'from1 -> http_out2 [label="processed=2"];' in labels
    node = next(line for line in labels if line.startswith("from1 ["))
    assert node.startswith('from1 [xlabel="') and "errors=0\\r" in node
    listed = httpx.get(daemon.url + "/kapacitor/v1/tasks",
                       params={"dot-view": "labels", "pattern": task_id, "fields": "dot"})
    assert 'processed=2' in listed.json()["tasks"][0]["dot"]
    bad = httpx.get(url, params={"dot-view": "pretty"})
    assert bad.status_code == 400 and "dot-view" in bad.json()["error"]
    stopped = httpx.patch(url, json={"status": "disabled"}).json()["dot"]
    assert stopped == f"digraph {task_id} {{\nstream0 -> from1;\nfrom1 -> http_out2;\n}}"
    httpx.delete(url)


def test_kapacitor_loopback_feeds_another_task(daemon) -> None:
    producer = define(daemon, """
stream|from().measurement('raw')|eval(lambda: "v" * 10.0).as('v10')
  |kapacitorLoopback().database('derived').retentionPolicy('rp').measurement('cooked')
    .tag('source', 'loop')
""")
    consumer = define(daemon, "stream|from().measurement('cooked')|httpOut('out')",
                      dbrps=[{"db": "derived", "rp": "rp"}])
    write(daemon, "raw v=2 5\n")
    expected = {"series": [{"name": "cooked", "tags": {"source": "loop"},
                            "columns": ["time", "v10"],
                            "values": [["1970-01-01T00:00:05Z", 20.0]]}]}
    assert output(daemon, consumer, expected) == expected
    # As in Kapacitor, a loop is found when the task starts: a disabled task is kept.
    loop = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
        "id": "loop", "dbrps": [{"db": "db", "rp": "rp"}], "status": "enabled",
        "script": "stream|from()|kapacitorLoopback().database('db').retentionPolicy('rp')"})
    assert loop.json()["error"] == 'loop detected on dbrp: "db"."rp"'
    for task_id in (producer, consumer):
        httpx.delete(f"{daemon.url}/kapacitor/v1/tasks/{task_id}")


async def test_http_post_sends_rows_and_records_the_status(daemon, nursery) -> None:
    import json as _json

    import trio

    received: list[dict] = []

    async def handler(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(body) < length:
            body += await stream.receive_some(65536)
        received.append(_json.loads(body))
        await stream.send_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
        await stream.aclose()

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    port = listeners[0].socket.getsockname()[1]
    task_id = await trio.to_thread.run_sync(lambda: define(daemon, f"""
stream|from().measurement('hp')|httpPost('http://127.0.0.1:{port}/hook').codeField('code')
  |httpOut('out')
"""))
    await trio.to_thread.run_sync(write, daemon, "hp,host=a v=1 3\n")
    expected = {"series": [{"name": "hp", "tags": {"host": "a"},
                            "columns": ["time", "code", "v"],
                            "values": [["1970-01-01T00:00:03Z", 201, 1.0]]}]}
    got = await trio.to_thread.run_sync(output, daemon, task_id, expected)
    assert got == expected
    # The body is a result with one series, as Kapacitor posts it.
    assert received == [{"series": [{"name": "hp", "tags": {"host": "a"},
                                     "columns": ["time", "v"],
                                     "values": [["1970-01-01T00:00:03Z", 1]]}]}]
    nursery.cancel_scope.cancel()


def test_flatten_on_a_tag(daemon) -> None:
    run(daemon, """
stream|from().measurement('fl').groupBy('dc', 'host')|groupBy('dc')
  |flatten().on('host')
  |httpOut('out')
""", "fl,dc=eu,host=a v=1 1\nfl,dc=eu,host=b v=2 1\nfl,dc=eu,host=a v=3 2\n",
        {"series": [{"name": "fl", "tags": {"dc": "eu"}, "columns": ["time", "a.v", "b.v"],
                     "values": [["1970-01-01T00:00:01Z", 1.0, 2.0]]}]})


def test_sideload_from_files_and_reload(daemon, tmp_path) -> None:
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "a.yml").write_text("threshold: 80.0\nteam: web\n")
    (tmp_path / "default.json").write_text('{"threshold": 90.0}')
    task_id = define(daemon, f"""
stream|from().measurement('sl')
  |sideload().source('file://{tmp_path}').order('hosts/{{{{.host}}}}.yml', 'default.json')
    .field('threshold', 50.0).tag('team', 'none')
  |httpOut('out')
""")
    write(daemon, "sl,host=a v=1 1\n")
    expected = {"series": [{"name": "sl", "tags": {"host": "a", "team": "web"},
                            "columns": ["time", "threshold", "v"],
                            "values": [["1970-01-01T00:00:01Z", 80.0, 1.0]]}]}
    assert output(daemon, task_id, expected) == expected
    write(daemon, "sl,host=zz v=1 2\n")
    expected = {"series": [{"name": "sl", "tags": {"host": "zz", "team": "none"},
                            "columns": ["time", "threshold", "v"],
                            "values": [["1970-01-01T00:00:02Z", 90.0, 1.0]]}]}
    assert output(daemon, task_id, expected) == expected
    (tmp_path / "default.json").write_text('{"threshold": 95.0}')
    assert httpx.post(daemon.url + "/kapacitor/v1/sideload/reload").status_code == 204
    write(daemon, "sl,host=zz v=1 3\n")
    expected["series"][0]["values"] = [["1970-01-01T00:00:03Z", 95.0, 1.0]]
    assert output(daemon, task_id, expected) == expected


def test_point_rows_carry_all_tags_and_batch_rows_the_group_tags(daemon) -> None:
    task_id = define(daemon, """
var data = stream|from().measurement('tg').groupBy('host')
data|httpOut('points')
data|window().period(2s).every(2s)|last('v')|httpOut('out')
""")
    write(daemon, "tg,host=a,region=eu v=1 0\ntg,host=a,region=eu v=2 2\n")
    # a selector's point carries the selected point's tags (as Kapacitor's does)
    expected = {"series": [{"name": "tg", "tags": {"host": "a", "region": "eu"},
                            "columns": ["time", "last"],
                            "values": [["1970-01-01T00:00:02Z", 1.0]]}]}
    assert output(daemon, task_id, expected) == expected
    points = {"series": [{"name": "tg", "tags": {"host": "a", "region": "eu"},
                          "columns": ["time", "v"],
                          "values": [["1970-01-01T00:00:02Z", 2.0]]}]}
    assert output(daemon, task_id, points, "points") == points


def test_combine_pairs_points_of_one_time(daemon) -> None:
    run(daemon, """
stream|from().measurement('req').groupBy('dc')
  |combine(lambda: "kind" == 'total', lambda: "kind" == 'error').as('t', 'e')
  |eval(lambda: "e.n" / "t.n").as('ratio').keep()
  |httpOut('out')
""", """
req,dc=eu,kind=total n=200 1
req,dc=eu,kind=error n=10 1
req,dc=eu,kind=total n=100 2
""", {"series": [{"name": "req", "tags": {"dc": "eu", "e.kind": "error", "t.kind": "total"},
                  "columns": ["time", "e.n", "ratio", "t.n"],
                  "values": [["1970-01-01T00:00:01Z", 10.0, 0.05, 200.0]]}]})


def test_stats_node_reports_the_watched_node(daemon) -> None:
    task_id = define(daemon, """
var data = stream|from().measurement('st')
data|stats(200ms)|httpOut('out')
""")
    write(daemon, "st v=1 1\nst v=2 2\nst v=3 3\n")

    def emitted(body: dict) -> int:
        series = body["series"][0]
        return dict(zip(series["columns"], series["values"][0], strict=True))["emitted"]
    body = wait_until(lambda: httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}/out")
                      .json(), what="a stats row with emitted == 3",
                      until=lambda body: emitted(body) == 3)
    assert body["series"][0]["name"] == "stats"


def test_script_is_formatted_unless_raw_is_asked(daemon) -> None:
    script = "stream|from().measurement('fmt')|httpOut('out')"
    task_id = define(daemon, script)
    url = f"{daemon.url}/kapacitor/v1/tasks/{task_id}"
    assert httpx.get(url).json()["script"] == (
        "stream\n    |from()\n        .measurement('fmt')\n    |httpOut('out')\n")
    assert httpx.get(url, params={"script-format": "raw"}).json()["script"] == script
    assert httpx.get(url, params={"script-format": "pretty"}).status_code == 400
    httpx.delete(url)


def test_idle_barrier_flushes_a_window(daemon) -> None:
    task_id = define(daemon, """
stream|from().measurement('bar')
  |barrier().idle(100ms)
  |window().period(500ms).every(500ms)
  |count('v')
  |httpOut('out')
""")
    write(daemon, "bar v=1 0\nbar v=2 100\n", precision="ms")
    # No more data: the idle barrier moves data time on by 100ms per 100ms of quiet
    # until the window's edge at 500ms is passed, and the window is emitted.
    expected = {"series": [{"name": "bar", "columns": ["time", "count"],
                            "values": [["1970-01-01T00:00:00.5Z", 2]]}]}
    assert output(daemon, task_id, expected) == expected
    # Kapacitor's barrier node has no statistic of its own: only the common ones show.
    assert "barriers" not in node_stats(daemon, task_id, "barrier2")


def test_barrier_needs_idle_or_period(daemon) -> None:
    response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
        "id": "nobar", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from()|barrier()"})
    assert "idle must be greater than zero" in response.json()["error"]  # as Kapacitor


def test_join_of_windowed_batches(daemon) -> None:
    run(daemon, """
var a = stream|from().measurement('ja')|window().period(10s).every(10s)
var b = stream|from().measurement('jb')|window().period(10s).every(10s)
a|join(b).as('a', 'b')|httpOut('out')
""", """
ja v=1 0
jb v=10 0
ja v=2 5
jb v=20 5
jb v=30 7
ja v=9 10
jb v=9 10
""", {"series": [{"name": "ja", "columns": ["time", "a.v", "b.v"],
                  "values": [["1970-01-01T00:00:00Z", 1.0, 10.0],
                             ["1970-01-01T00:00:05Z", 2.0, 20.0]]}]})


def test_trickle_is_not_a_node_of_kapacitor_1_5(daemon) -> None:
    # |trickle() came with Kapacitor 1.6; 1.5.7 has no such method.
    bad = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
        "id": "tr-bad", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from()|window().period(10s)|trickle()"})
    assert bad.status_code == 400
    assert 'no method or property "trickle"' in bad.json()["error"]


def test_the_script_decides_the_task_type(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/tasks"
    dbrps = [{"db": "db", "rp": "rp"}]
    created = httpx.post(url, json={"id": "typed", "type": "batch", "dbrps": dbrps,
                                    "script": "stream|from().measurement('m')"})
    assert created.status_code == 200 and created.json()["type"] == "stream"
    httpx.delete(url + "/typed")
    untyped = httpx.post(url, json={"id": "untyped", "dbrps": dbrps, "script": "var x = 5"})
    assert untyped.json() == {"error": "invalid task type: invalid"}


def test_a_star_in_a_list_var_survives_a_round_trip(daemon) -> None:
    """A list var's star item comes back from GET as {"type": "star", "value": null}
    (as from Kapacitor); sent back as it came (what the console's editor does), it is
    still a star: groupBy(groups) groups by every tag, not by a tag named "*"."""
    script = ("var groups = [*]\nstream\n    |from()\n        .measurement('m')\n"
              "        .groupBy(groups)\n    |window()\n        .period(10s)\n"
              "        .every(10s)\n    |count('v')\n    |httpOut('out')\n")
    task_id = define(daemon, script, vars={
        "groups": {"type": "list", "value": [{"type": "star", "value": "*"}]}})
    url = f"{daemon.url}/kapacitor/v1/tasks/{task_id}"
    stored = httpx.get(url).json()["vars"]["groups"]
    assert stored["value"] == [{"type": "star", "value": None, "description": ""}]
    answer = httpx.patch(url, json={"vars": {"groups": stored}})
    assert answer.status_code == 200, answer.text
    write(daemon, "m,host=a v=1 0\nm,host=b v=1 1\nm,host=b v=1 2\nm,host=a v=1 11\n"
                  "m,host=b v=1 12")

    def groups() -> list[tuple[str, int]]:
        body = httpx.get(f"{url}/out").json()
        return sorted((s["tags"]["host"], s["values"][0][1]) for s in body.get("series", []))

    assert wait_until(groups, until=lambda g: len(g) == 2) == [("a", 1), ("b", 2)]
