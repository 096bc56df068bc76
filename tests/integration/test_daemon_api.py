"""The daemon's HTTP API end to end: ping, headers, writes, config overrides, storage."""

from __future__ import annotations

import gzip
import signal

import httpx
import pytest

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"max-body-size": 2_000_000}}) as d:
        yield d


def ingress(daemon: DaemonProcess) -> dict[tuple[str, str, str], int]:
    stats = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()["kapacitor"]
    return {(s["tags"]["database"], s["tags"]["retention_policy"], s["tags"]["measurement"]):
            s["values"]["points_received"] for s in stats.values() if s["name"] == "ingress"}


def test_ping_get_and_head(daemon) -> None:
    for method in ("GET", "HEAD"):
        response = httpx.request(method, daemon.url + "/kapacitor/v1/ping")
        assert response.status_code == 204
        assert response.content == b""
        assert response.headers["Request-Id"]
        assert "X-Kapacitor-Version" in response.headers


def test_every_response_has_request_id_and_version(daemon) -> None:
    ids = set()
    for path in ("/kapacitor/v1/ping", "/nope", "/kapacitor/v1/config/nope"):
        response = httpx.get(daemon.url + path)
        ids.add(response.headers["Request-Id"])
        assert response.headers["X-Kapacitor-Version"]
    assert len(ids) == 3


def test_unknown_path_is_json_404(daemon) -> None:
    response = httpx.get(daemon.url + "/kapacitor/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


def test_keep_alive_and_concurrent_clients(daemon) -> None:
    with httpx.Client(base_url=daemon.url) as client:
        for _ in range(20):
            assert client.get("/kapacitor/v1/ping").status_code == 204

    import concurrent.futures

    def ping(_: int) -> int:
        return httpx.get(daemon.url + "/kapacitor/v1/ping").status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        assert set(pool.map(ping, range(60))) == {204}


@pytest.mark.parametrize("path", ["/write", "/kapacitor/v1/write"])
def test_write_reaches_the_stream(daemon, path: str) -> None:
    db = "db" + path.replace("/", "_")
    body = b"cpu,host=a value=1 1\ncpu,host=b value=2 2\nmem free=3i 3\n"
    response = httpx.post(f"{daemon.url}{path}?db={db}&rp=autogen&precision=s", content=body)
    assert response.status_code == 204, response.text
    counts = ingress(daemon)
    assert counts[(db, "autogen", "cpu")] == 2
    assert counts[(db, "autogen", "mem")] == 1


def test_write_gzip_body(daemon) -> None:
    body = gzip.compress(b"\n".join(b"gz value=%d %d" % (i, i) for i in range(1000)))
    response = httpx.post(daemon.url + "/write?db=gzdb&rp=rp", content=body,
                          headers={"Content-Encoding": "gzip"})
    assert response.status_code == 204
    assert ingress(daemon)[("gzdb", "rp", "gz")] == 1000


def test_write_without_database(daemon) -> None:
    response = httpx.post(daemon.url + "/write", content=b"m v=1")
    assert response.status_code == 400
    assert response.text.strip() == "database is required"


def test_write_unknown_precision_is_nanoseconds(daemon) -> None:
    # As Kapacitor: an unknown precision is not refused (see test_api_strictness.py).
    response = httpx.post(daemon.url + "/write?db=x&precision=fortnight", content=b"m v=1")
    assert response.status_code == 204


def test_malformed_lines_refuse_the_whole_body_like_kapacitor(daemon) -> None:
    body = b"ok value=1 1\nbad value= 2\nok value=3 3\nworse 4\n"
    response = httpx.post(daemon.url + "/write?db=partial&rp=rp", content=body)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "(line 2)" in response.text and "(line 4)" in response.text
    assert "missing field value" in response.text
    assert ("partial", "rp", "ok") not in ingress(daemon)


def test_empty_body_answers_200(daemon) -> None:
    assert httpx.post(daemon.url + "/write?db=x", content=b"").status_code == 200


def test_missing_rp_uses_default_retention_policy() -> None:
    with DaemonProcess({"default-retention-policy": "autogen"}) as d:
        assert httpx.post(d.url + "/write?db=norp", content=b"m v=1").status_code == 204
        assert ingress(d)[("norp", "autogen", "m")] == 1


def test_oversized_body_is_refused_and_daemon_lives(daemon) -> None:
    body = b"big value=1 1\n" * 200_000  # 2.8 MB > 2 MB limit
    response = httpx.post(daemon.url + "/write?db=big", content=body)
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert ("big", "", "big") not in ingress(daemon)
    assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204


def test_bad_json_to_config_api(daemon) -> None:
    response = httpx.post(daemon.url + "/kapacitor/v1/config/smtp/", content=b"{not json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


def test_loglevel_endpoint(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/loglevel"
    assert httpx.post(url, json={"level": "info"}).status_code == 204
    assert httpx.post(url, json={"level": "chatty"}).status_code == 400
    assert httpx.post(url, content=b"nope").status_code == 400
    assert httpx.post(url, json={"level": "debug"}).status_code == 204


def test_routes_listing(daemon) -> None:
    routes = httpx.get(daemon.url + "/kapacitor/v1/:routes").json()
    assert "POST" in routes["/write"]
    assert "GET" in routes["/kapacitor/v1/ping"]


# -- configuration API -------------------------------------------------------------------

def test_config_lists_overridable_sections_only(daemon) -> None:
    body = httpx.get(daemon.url + "/kapacitor/v1/config").json()
    assert body["link"] == {"rel": "self", "href": "/kapacitor/v1/config"}
    assert "influxdb" in body["sections"]
    for core in ("http", "logging", "storage", "tls", "auth"):
        assert core not in body["sections"]
    influx = body["sections"]["influxdb"]
    assert influx["link"]["href"] == "/kapacitor/v1/config/influxdb"
    (element,) = influx["elements"]
    assert element["link"]["href"] == "/kapacitor/v1/config/influxdb/default"
    assert element["options"]["startup-timeout"] == "5m0s"
    assert element["options"]["password"] is False
    assert "password" in element["redacted"]


def test_config_section_and_element(daemon) -> None:
    section = httpx.get(daemon.url + "/kapacitor/v1/config/influxdb").json()
    assert section["link"]["href"] == "/kapacitor/v1/config/influxdb"
    element = httpx.get(daemon.url + "/kapacitor/v1/config/influxdb/default").json()
    assert element == section["elements"][0]
    missing = httpx.get(daemon.url + "/kapacitor/v1/config/influxdb/nope")
    assert missing.status_code == 404
    assert httpx.get(daemon.url + "/kapacitor/v1/config/nosuch").status_code == 404


def test_non_overridable_section_is_refused(daemon) -> None:
    response = httpx.post(daemon.url + "/kapacitor/v1/config/http/",
                          json={"set": {"bind-address": ":1"}})
    assert response.status_code == 403
    assert "cannot be overridden" in response.json()["error"]


def test_override_set_redacted_then_delete(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/config/influxdb/default"
    response = httpx.post(url, json={"set": {"username": "bob", "password": "s3cret",
                                             "timeout": "30s"}})
    assert response.status_code == 204, response.text
    options = httpx.get(url).json()["options"]
    assert (options["username"], options["password"], options["timeout"]) == (
        "bob", True, "30s")
    assert "s3cret" not in httpx.get(daemon.url + "/kapacitor/v1/config").text
    assert httpx.post(url, json={"delete": ["username", "password", "timeout"]}
                      ).status_code == 204
    options = httpx.get(url).json()["options"]
    assert (options["username"], options["password"], options["timeout"]) == ("", False, "0s")


def test_override_validation_error_changes_nothing(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/config/influxdb/default"
    response = httpx.post(url, json={"set": {"urls": ["no-scheme:8086"]}})
    assert response.status_code == 400
    assert "urls[0]" in response.json()["error"]
    assert httpx.get(url).json()["options"]["urls"] == ["http://localhost:8086"]
    response = httpx.post(url, json={"set": {"no-such-option": 1}})
    assert response.status_code == 400
    assert "no-such-option" in response.json()["error"]


def test_add_and_remove_elements(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/config/influxdb"
    added = httpx.post(url, json={"add": {"name": "second", "enabled": False,
                                          "urls": ["http://127.0.0.1:1"]}})
    assert added.status_code == 204, added.text
    names = [e["options"]["name"] for e in httpx.get(url).json()["elements"]]
    assert names == ["default", "second"]
    assert httpx.post(url, json={"remove": ["second"]}).status_code == 204
    names = [e["options"]["name"] for e in httpx.get(url).json()["elements"]]
    assert names == ["default"]


# -- persistence ----------------------------------------------------------------------------

def test_overrides_survive_restart_and_kill_9(tmp_path) -> None:
    first = DaemonProcess()
    try:
        first.start()
        url = first.url + "/kapacitor/v1/config/influxdb/default"
        assert httpx.post(url, json={"set": {"username": "persisted"}}).status_code == 204
        first.proc.send_signal(signal.SIGKILL)  # right after the 204
        first.proc.wait(10)
        with DaemonProcess(data_dir=first.data_dir) as second:
            url = second.url + "/kapacitor/v1/config/influxdb/default"
            assert httpx.get(url).json()["options"]["username"] == "persisted"
            assert second.stop() == 0
        with DaemonProcess({"skip-config-overrides": True}, data_dir=first.data_dir) as third:
            url = third.url + "/kapacitor/v1/config/influxdb/default"
            assert httpx.get(url).json()["options"]["username"] == ""
    finally:
        first.close()


def test_config_override_disabled() -> None:
    with DaemonProcess({"config-override": {"enabled": False}}) as daemon:
        for method, path in (("GET", "/kapacitor/v1/config"),
                             ("GET", "/kapacitor/v1/config/influxdb"),
                             ("POST", "/kapacitor/v1/config/influxdb/default")):
            response = httpx.request(method, daemon.url + path, json={"set": {"timeout": 1}})
            assert response.status_code == 403
            assert response.json() == {"error": "config override service is not enabled"}
