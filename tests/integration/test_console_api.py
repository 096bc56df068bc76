"""The console's server side through a real daemon: its files (policy, validators, no
path outside the folder), ``/about``, ``/me``, topic handlers written as YAML (checked
against the handler the ``kapa define-topic-handler`` command makes from the same file),
and the start-up line that says where the console is."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core import __version__
from kapa_core.http.console_api import load_assets
from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

HANDLER_YAML = """topic: cpu
id: to-slack
kind: slack
match: changed() == TRUE
options:
  channel: '#ops'
  username: kapa
  icon-emoji: ':fire:'
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess() as running:
        yield running


def test_files_policy_validators_and_paths(daemon: DaemonProcess) -> None:
    page = httpx.get(f"{daemon.url}/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy and "http" not in policy  # no other host
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    again = httpx.get(f"{daemon.url}/console/", headers={"if-none-match": page.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == page.headers["etag"]
    stale = httpx.get(f"{daemon.url}/console/", headers={"if-none-match": '"other"'})
    assert stale.status_code == 200
    assert httpx.head(f"{daemon.url}/console/app.js").content == b""
    script = httpx.get(f"{daemon.url}/console/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.content == load_assets()["app.js"].body
    # only the folder's own files: no way out, nothing else
    for path in ("/console/../kapacitor.conf", "/console/%2e%2e/kapacitor.conf",
                 "/console/nothing.js", "/console/__init__.py", "/console/sub/app.js"):
        answer = httpx.get(daemon.url + path)
        assert answer.status_code == 404, path
    assert "content-security-policy" in httpx.get(f"{daemon.url}/console/x.js").headers
    moved = httpx.get(f"{daemon.url}/console")
    assert (moved.status_code, moved.headers["location"]) == (301, "/console/")
    # big files go out compressed when the browser asks for it
    packed = httpx.get(f"{daemon.url}/console/console.css",
                       headers={"accept-encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"


def test_every_module_the_page_imports_is_served(daemon: DaemonProcess) -> None:
    page = httpx.get(f"{daemon.url}/console/").text
    wanted = set(re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css|svg))"', page))
    seen: set[str] = set()
    while wanted - seen:
        name = sorted(wanted - seen)[0]
        seen.add(name)
        answer = httpx.get(f"{daemon.url}/console/{name}")
        assert answer.status_code == 200, name
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([\w.-]+\.js)"', answer.text))
    assert {"app.js", "api.js", "graph.js", "editor.js", "tick.js"} <= seen
    assert sum(len(httpx.get(f"{daemon.url}/console/{n}").content) for n in seen) < 300_000


def test_about_and_me(daemon: DaemonProcess) -> None:
    about = httpx.get(f"{daemon.url}/kapacitor/v1/about").json()
    assert about["version"] == __version__ and about["kapacitor_version"] == "1.5.7"
    assert about["uptime"] > 0 and about["auth_enabled"] is False
    assert about["line_protocol_parser"] in ("compiled",) or \
        about["line_protocol_parser"].startswith("pure Python")
    listed = subprocess.run([sys.executable, "-m", "kapa_core.cli.daemon", "plugins"],
                            capture_output=True, text=True, check=True).stdout
    names = {p["name"] for p in about["plugins"]}
    assert names == set(re.findall(r"^  (\S+)\s+kapa-core", listed, re.M))
    assert {"smtp", "slack", "collectd"} <= names
    me = httpx.get(f"{daemon.url}/kapacitor/v1/me").json()
    assert me == {"auth": False, "authenticated": False, "username": "", "admin": True,
                  "permissions": ["all"]}


def test_topic_handler_from_yaml_matches_the_cli(daemon: DaemonProcess,
                                                 tmp_path: Path) -> None:
    base = f"{daemon.url}/kapacitor/v1/alerts/topics"
    spec = tmp_path / "handler.yaml"
    spec.write_text(HANDLER_YAML.replace("to-slack", "from-cli"))
    subprocess.run([sys.executable, "-m", "kapa_core.cli.kapa", "-url", daemon.url,
                    "define-topic-handler", str(spec)], check=True, capture_output=True)
    made = httpx.post(f"{base}/cpu/handlers", content=HANDLER_YAML,
                      headers={"content-type": "application/yaml"})
    assert made.status_code == 200, made.text
    by_cli = httpx.get(f"{base}/cpu/handlers/from-cli").json()
    by_yaml = made.json()
    for key in ("kind", "match", "options"):
        assert by_yaml[key] == by_cli[key], key
    assert by_yaml["id"] == "to-slack"

    changed = HANDLER_YAML.replace("'#ops'", "'#alerts'")
    put = httpx.put(f"{base}/cpu/handlers/to-slack", content=changed,
                    headers={"content-type": "application/x-yaml; charset=utf-8"})
    assert put.status_code == 200, put.text
    assert httpx.get(f"{base}/cpu/handlers/to-slack").json()["options"]["channel"] == "#alerts"

    other = httpx.post(f"{base}/mem/handlers", content=HANDLER_YAML,
                       headers={"content-type": "application/yaml"})
    assert other.status_code == 400
    assert other.json()["error"] == ('invalid handler yaml: topic "cpu" is not this '
                                     'topic "mem"')
    bad = httpx.post(f"{base}/cpu/handlers", content="id: [oops\n",
                     headers={"content-type": "application/yaml"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("invalid handler yaml: error converting YAML")
    unknown = httpx.post(f"{base}/cpu/handlers", content="id: x\nkind: nope\n",
                         headers={"content-type": "application/yaml"})
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]
    # JSON stays the default, as in Kapacitor
    assert httpx.post(f"{base}/cpu/handlers", content=HANDLER_YAML).status_code == 400
    ids = {h["id"] for h in httpx.get(f"{base}/cpu/handlers").json()["handlers"]}
    assert ids == {"from-cli", "to-slack"}


def test_start_up_says_where_the_console_is() -> None:
    with DaemonProcess({"http": {"bind-address": "127.0.0.1:0"}}) as running:
        banner = running.stdout_lines[-1]
        assert banner.endswith(f"(web console: {running.url}/console/)"), banner
        running.wait_for_text(f'msg="web console" service=server url={running.url}/console/')
        assert httpx.get(f"{running.url}/console/").status_code == 200
