"""``/kapacitor/v1/debug/pprof/``: Python's profiles at Kapacitor's paths, through the
daemon (and without credentials when ``[http] pprof-enabled`` with auth on)."""

from __future__ import annotations

import threading

import httpx
import pytest

from kapa_core.testing import DaemonProcess

BASE = "/kapacitor/v1/debug/pprof"


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"log-enabled": False}}) as running:
        yield running


def get(daemon: DaemonProcess, path: str, **kw: object) -> httpx.Response:
    return httpx.get(daemon.url + BASE + path, timeout=60, **kw)  # type: ignore[arg-type]


def test_index_lists_the_profiles(daemon: DaemonProcess) -> None:
    response = get(daemon, "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name in ("profile", "goroutine", "heap", "cmdline"):
        assert f'href="{BASE}/{name}"' in response.text


def test_cpu_profile_samples_the_trio_thread_while_it_works(daemon: DaemonProcess) -> None:
    httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
        "id": "busy", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from().measurement('m')|eval(lambda: \"v\" * 2.0).as('w')",
        "status": "enabled"}).raise_for_status()
    body = "\n".join(f"m v={i} {i}" for i in range(20_000)).encode()
    with httpx.Client(base_url=daemon.url, timeout=60) as client:
        def write() -> None:
            for _ in range(10):
                client.post("/write?db=db&rp=rp&precision=s", content=body)

        writer = threading.Thread(target=write)
        writer.start()
        response = client.get(BASE + "/profile", params={"seconds": "1"})
        writer.join()
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert lines[0].startswith("# kapa-core CPU profile: ")
    samples = [line.rsplit(" ", 1) for line in lines if not line.startswith("#")]
    assert samples and all(count.isdigit() for _, count in samples)
    assert sum(int(count) for _, count in samples) > 20  # 1 s at one sample per 5 ms
    assert all("/trio/" in stack for stack, _ in samples)  # trio's loop is on every stack


def test_goroutine_dump_shows_trio_tasks_and_threads(daemon: DaemonProcess) -> None:
    text = get(daemon, "/goroutine").text
    assert text.startswith("trio tasks: ")
    assert "task " in text and "File \"" in text
    assert "threads: " in text and "thread MainThread" in text


def test_heap_traces_on_request_only(daemon: DaemonProcess) -> None:
    off = get(daemon, "/heap").text
    assert "tracemalloc is off" in off
    traced = get(daemon, "/heap", params={"seconds": "0.5"}).text
    assert "# traced: " in traced and " bytes " in traced.splitlines()[-1]
    assert "tracemalloc is off" in get(daemon, "/heap").text  # stopped again


def test_cmdline_symbol_and_unknown_profiles(daemon: DaemonProcess) -> None:
    argv = get(daemon, "/cmdline").text.split("\x00")
    assert "kapa_core" in argv[0] and "run" in argv[1:]
    assert get(daemon, "/symbol").text == "num_symbols: 0\n"
    missing = get(daemon, "/threadcreate")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Unknown profile: threadcreate"}
    bad = get(daemon, "/profile", params={"seconds": "x"})
    assert bad.status_code == 400


def test_open_without_credentials_only_with_pprof_enabled() -> None:
    for enabled, expected in ((True, 200), (False, 401)):
        config = {"http": {"log-enabled": False, "auth-enabled": True,
                           "pprof-enabled": enabled},
                  "auth": {"enabled": True, "bcrypt-cost": 4},
                  }
        with DaemonProcess(config) as secured:
            assert httpx.get(secured.url + BASE + "/goroutine").status_code == expected
