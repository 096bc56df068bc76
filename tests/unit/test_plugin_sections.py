"""The config sections of every built-in plugin: defaults as Kapacitor's, validation paths."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import kapa_plugins
import pytest

from kapa_core.errors import ConfigError
from kapa_core.influxdb import plugin as influxdb_plugin
from kapa_core.models.duration import Duration
from kapa_core.plugins import load_plugins

S = 1_000_000_000


def all_modules():
    out = [influxdb_plugin]
    for package in ("handlers", "inputs", "discovery"):
        pkg = importlib.import_module(f"kapa_plugins.{package}")
        for info in pkgutil.iter_modules(pkg.__path__):
            out.append(importlib.import_module(f"kapa_plugins.{package}.{info.name}"))
    return out


PLUGINS = load_plugins(all_modules(), entry_points=False)


def defaults(name: str):
    return PLUGINS.sections[name].schema()


SPEC_DEFAULTS = {
    "influxdb": {"enabled": True, "name": "default", "urls": ["http://localhost:8086"],
                 "subscription_mode": "cluster", "subscription_protocol": "http",
                 "startup_timeout": Duration(300 * S), "udp_buffer": 1000,
                 "excluded_subscriptions": {"_kapacitor": ["autogen"]},
                 "compression": "gzip", "subscriptions_sync_interval": Duration(60 * S)},
    "alerta": {"enabled": False, "url": "", "token_prefix": "", "timeout": Duration(0)},
    "bigpanda": {"url": "https://api.bigpanda.io/data/v2/alerts",
                 "auto_attributes": "tags,fields"},
    # an element written in the file starts empty (Kapacitor decodes it into a zero
    # Config); only the built-in one is the default (test_builtin_chat_elements)
    "discord": {"enabled": False, "default": False, "workspace": "", "embed_title": ""},
    "hipchat": {"enabled": False, "room": ""},
    "kafka": {"id": "default", "brokers": [], "batch_size": 0, "timeout": Duration(0)},
    "mqtt": {"name": "default", "default": False, "url": "", "client_id": ""},
    "opsgenie": {"url": "https://api.opsgenie.com/v1/json/alert",
                 "recovery_url": "https://api.opsgenie.com/v1/json/alert/note"},
    "opsgenie2": {"url": "https://api.opsgenie.com/v2/alerts", "recovery_action": "notes",
                  "details": False},
    "pagerduty": {"url": "https://events.pagerduty.com/generic/2010-04-15/create_event.json"},
    "pagerduty2": {"url": "https://events.pagerduty.com/v2/enqueue", "routing_key": ""},
    "pushover": {"url": "https://api.pushover.net/1/messages.json"},
    "httppost": {"endpoint": "example", "url": "http://example.com", "headers": {}},
    "smtp": {"enabled": False, "host": "localhost", "port": 25,
             "idle_timeout": Duration(30 * S), "to": [], "to_templates": []},
    "snmptrap": {"addr": "localhost:162", "community": "kapacitor", "retries": 1},
    "sensu": {"source": "Kapacitor", "handlers": []},
    "servicenow": {"url": "https://instance.service-now.com/api/global/em/jsonv2"},
    "slack": {"default": False, "username": "", "channel": ""},
    "talk": {"url": "", "author_name": ""},
    "teams": {"channel_url": "", "global_": False},
    "telegram": {"url": "https://api.telegram.org/bot", "parse_mode": ""},
    "victorops": {"url": "https://alert.victorops.com/integrations/generic/20131114/alert",
                  "json_data": False},
    "zenoss": {"action": "EventsRouter", "method": "add_event", "type": "rpc", "tid": 1,
               "collector": "Kapacitor", "severity_map": {"OK": "Clear", "Info": "Info",
                                                          "Warning": "Warning",
                                                          "Critical": "Critical"}},
    "collectd": {"bind_address": ":25826", "database": "collectd", "batch_size": 5000,
                 "batch_pending": 10, "batch_timeout": Duration(10 * S),
                 "typesdb": "/usr/share/collectd/types.db"},
    "opentsdb": {"bind_address": ":4242", "database": "opentsdb", "batch_size": 1000,
                 "batch_timeout": Duration(S), "log_point_errors": True},
    "graphite": {"bind_address": ":2003", "database": "graphite", "protocol": "tcp",
                 "separator": "."},
    "udp": {"buffer": 1000, "read_buffer": 0},
    "scraper": {"type": "prometheus", "scheme": "http", "metrics_path": "/metrics",
                "scrape_interval": Duration(60 * S), "scrape_timeout": Duration(10 * S)},
    "azure": {"port": 80, "refresh_interval": Duration(300 * S)},
    "consul": {"address": "127.0.0.1:8500", "tag_separator": ",", "scheme": "http"},
    "dns": {"refresh_interval": Duration(30 * S), "type": "SRV", "port": 0},
    "ec2": {"refresh_interval": Duration(60 * S), "port": 80},
    "file-discovery": {"refresh_interval": Duration(300 * S), "files": []},
    "gce": {"port": 80, "tag_separator": ","},
    "marathon": {"timeout": Duration(30 * S), "refresh_interval": Duration(30 * S)},
    "nerve": {"timeout": Duration(10 * S)},
    "serverset": {"timeout": Duration(10 * S)},
    "static-discovery": {"targets": [], "labels": {}},
    "triton": {"port": 9163, "version": 1},
    "kubernetes": {"in_cluster": False, "api_servers": [], "resource": ""},
    "swarm": {"servers": []},
}

REDACTED = {
    "influxdb": {"password", "token"}, "alerta": {"token"}, "bigpanda": {"token"},
    "hipchat": {"token"}, "mqtt": {"password"}, "opsgenie": {"api-key"},
    "opsgenie2": {"api-key"}, "pagerduty": {"service-key"}, "pagerduty2": {"routing-key"},
    "pushover": {"token", "user-key"}, "httppost": {"basic-auth"}, "smtp": {"password"},
    "snmptrap": {"community"}, "servicenow": {"password"}, "slack": {"url", "token"},
    "talk": {"url"}, "telegram": {"token"}, "victorops": {"api-key"}, "zenoss": {"password"},
    "scraper": {"password", "bearer-token"}, "azure": {"client-secret"},
    "consul": {"token", "password"}, "ec2": {"secret-key"}, "marathon": {"bearer-token"},
    "kubernetes": {"token"},
}


def test_every_kapacitor_section_is_registered() -> None:
    assert set(SPEC_DEFAULTS) <= set(PLUGINS.sections)


@pytest.mark.parametrize("name", sorted(SPEC_DEFAULTS))
def test_defaults_match_kapacitor(name: str) -> None:
    value = defaults(name)
    for attr, expected in SPEC_DEFAULTS[name].items():
        assert getattr(value, attr) == expected, f"{name}.{attr}"


def test_builtin_chat_elements() -> None:
    """Without a [[slack]] / [[discord]] in the file, Kapacitor's own element is the
    default one (NewDefaultConfig), and Slack's posts as "kapacitor"."""
    slack, = PLUGINS.sections["slack"].default_raw()
    discord, = PLUGINS.sections["discord"].default_raw()
    assert (slack["default"], slack["username"]) == (True, "kapacitor")
    assert (discord["default"], discord["username"]) == (True, "")


@pytest.mark.parametrize("name", sorted(REDACTED))
def test_secrets_are_redacted(name: str) -> None:
    assert REDACTED[name] <= set(PLUGINS.sections[name].redacted_keys())


def test_every_plugin_section_can_be_overridden() -> None:
    # Kapacitor refuses overrides of its input sections; kapa-core takes them (an
    # override re-opens only the listener elements it changed).
    fixed = {n for n, s in PLUGINS.sections.items() if not s.overridable}
    plugin_fixed = fixed - {s for s, owner in PLUGINS.section_owner.items()
                            if owner == "kapa-core"}
    assert plugin_fixed == set()
    assert {"collectd", "opentsdb", "graphite", "udp"} <= set(PLUGINS.sections)


def build_error(name: str, raw) -> str:
    with pytest.raises(ConfigError) as err:
        PLUGINS.sections[name].build(raw)
    return str(err.value)


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("slack", [{"enabled": True, "url": "not a url"}], "slack[0].url: invalid URL"),
    ("slack", [{"workspace": "a"}, {"workspace": "a"}], "slack[1].workspace: duplicate"),
    ("slack", [{"workspace": "a", "enabled": True, "url": "http://s/1", "default": True},
               {"workspace": "b", "enabled": True, "url": "http://s/2", "default": True}],
     "slack[1].default: more than one"),
    ("slack", [{"workspace": "a"}, {"workspace": "b"}],
     "slack.default: at least one Slack config must be set as default"),
    ("discord", [{"workspace": "a", "default": True}, {}],
     "discord[1].workspace: id must not be empty"),
    ("slack", [{"global": True}], "slack[0].global: only the default config"),
    ("discord", [{"default": True, "state-changes-only": True}],
     "discord[0].state-changes-only: stateChangesOnly may only be assigned"),
    ("discord", [{"enabled": True}], "discord[0].url: must be set"),
    ("teams", {"enabled": True, "channel-url": "ftp://x"}, "teams.channel-url: invalid URL"),
    ("smtp", {"enabled": True, "port": 0}, "smtp.port: invalid port 0"),
    ("smtp", {"enabled": True, "host": ""}, "smtp.host: must be set"),
    ("kafka", [{"enabled": True}], "kafka[0].brokers: must specify at least one broker"),
    ("kafka", [{"id": "x"}, {"id": "x"}], "kafka[1].id: duplicate id 'x'"),
    ("mqtt", [{"enabled": True, "url": "http://broker:1883"}], "mqtt[0].url: invalid URL"),
    ("opsgenie2", {"recovery_action": "delete"}, "opsgenie2.recovery_action: invalid value"),
    ("telegram", {"parse-mode": "BBCode"}, "telegram.parse-mode: invalid value 'BBCode'"),
    ("zenoss", {"severity-map": {"Bad": "x"}}, "zenoss.severity-map.Bad: unknown level"),
    ("httppost", [{"endpoint": ""}], "httppost[0].endpoint: must be set"),
    ("scraper", [{"name": "s", "db": "d"}], "scraper[0].rp: must be set"),
    ("scraper", [{"name": "s", "db": "d", "rp": "r", "type": "x"}],
     "scraper[0].type: invalid value 'x'"),
    ("dns", [{"enabled": True, "id": "d", "record-names": ["x"], "type": "A"}],
     "dns[0].port: must be set for A records"),
    ("consul", [{"enabled": True}], "consul[0].id: must be set"),
    ("kubernetes", [{"enabled": True, "id": "k", "in-cluster": True,
                     "api-servers": ["http://x"]}], "kubernetes[0].in-cluster: cannot be"),
    ("udp", [{"enabled": True, "bind-address": ":9100"}], "udp[0].database: must be set"),
    ("collectd", {"enabled": True, "bind-address": "25826"}, "collectd.bind-address"),
    ("influxdb", [{"urls": ["localhost:8086"]}], "influxdb[0].urls[0]: 'localhost:8086' "
     "has no scheme"),
    ("influxdb", [{"urls": []}], "influxdb[0].urls: must specify at least one"),
    ("influxdb", [{"name": "bad name"}], "influxdb[0].name: invalid name"),
    ("influxdb", [{"subscription-protocol": "tcp"}], "influxdb[0].subscription-protocol"),
    ("influxdb", [{"ssl-cert": "/c.pem"}], "influxdb[0].ssl-cert: ssl-cert and ssl-key"),
    ("influxdb", [{"name": "a"}, {"name": "a"}], "influxdb[1].name: duplicate name 'a'"),
    ("influxdb", [{"name": "a"}, {"name": "b"}], "none has default = true"),
    ("influxdb", [{"name": "a", "default": True}, {"name": "b", "default": True}],
     "influxdb[1].default: more than one"),
])
def test_validation_names_the_key(name: str, raw, expected: str) -> None:
    assert expected in build_error(name, raw)


def test_one_enabled_cluster_needs_no_default_flag() -> None:
    section = PLUGINS.sections["influxdb"]
    value = section.build([{"name": "a"}, {"name": "b", "enabled": False}])
    assert [e.name for e in value] == ["a", "b"]


def test_plugins_import_only_the_plugin_api() -> None:
    root = Path(kapa_plugins.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.startswith("kapa_core"):
                assert node.module == "kapa_core.plugin_api", f"{path}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("kapa_core"), f"{path}: {alias.name}"
