"""Handler service sections that Kapacitor 1.5.7 refuses to start with, refused by
kapa-core too; and the ones it starts with, accepted (each checked against kapacitord
1.5.7 with the same section in its config file)."""

from __future__ import annotations

import pytest
from kapa_plugins.handlers import (
    discord,
    httppost,
    opsgenie,
    pagerduty,
    pushover,
    slack,
    telegram,
    victorops,
)

from kapa_core.errors import ConfigError
from kapa_core.plugins import load_plugins

PLUGINS = load_plugins([discord, httppost, opsgenie, pagerduty, pushover, slack, telegram,
                        victorops], entry_points=False)
URL = "http://127.0.0.1:9/x"


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("telegram", {"enabled": True, "url": URL}, "telegram.token: must specify token"),
    ("pushover", {"enabled": True, "url": URL, "user-key": "u"},
     "pushover.token: must specify token"),
    ("pushover", {"enabled": True, "url": URL, "token": "t"},
     "pushover.user-key: must specify user key"),
    ("opsgenie", {"url": ""}, "opsgenie.url: url cannot be empty"),
    ("opsgenie", {"recovery_url": ""}, "opsgenie.recovery_url: recovery_url cannot be"),
    ("opsgenie", {"enabled": True, "url": URL}, "opsgenie.api-key: api-key cannot be"),
    ("opsgenie2", {"enabled": True, "url": URL}, "opsgenie2.api-key: api-key cannot be"),
    ("opsgenie2", {"url": ""}, "opsgenie2.url: url cannot be empty"),
    ("pagerduty", {"url": ""}, "pagerduty.url: url cannot be empty"),
    ("pagerduty2", {"url": ""}, "pagerduty2.url: url cannot be empty"),
    ("victorops", {"url": ""}, "victorops.url: url cannot be empty"),
    ("httppost", [{"endpoint": "a", "url": "http://x/{{ .Foo"}],
     "httppost[0].url: invalid URL template syntax"),
    ("httppost", [{"endpoint": "a", "url": URL, "alert-template-file": "x.tmpl"}],
     "httppost[0].alert-template-file: must use an absolute path"),
    ("httppost", [{"endpoint": "a", "url": URL, "row-template-file": "rows/x.tmpl"}],
     "httppost[0].row-template-file: must use an absolute path"),
    # elements written in the file start empty: none is the default unless it says so
    ("slack", [{"workspace": "a", "url": URL}, {"workspace": "b", "url": URL}],
     "slack.default: at least one Slack config must be set as default"),
    ("slack", [{"default": True, "url": URL}, {"workspace": "b", "url": URL}],
     "slack[0].workspace: id must not be empty"),
    ("slack", [{"enabled": True, "global": True, "url": URL}],
     "slack[0].global: only the default config may be assigned as global"),
    ("discord", [{"enabled": True, "default": True, "state-changes-only": True,
                  "url": URL}], "discord[0].state-changes-only: stateChangesOnly may"),
])
def test_refused_as_kapacitor_refuses(name: str, raw, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        PLUGINS.sections[name].build(raw)
    assert str(err.value).startswith(expected), str(err.value)


@pytest.mark.parametrize(("name", "raw"), [
    ("telegram", {"enabled": False}),
    ("pushover", {"enabled": False}),
    ("victorops", {"enabled": True, "url": URL}),
    ("opsgenie", {"enabled": True, "url": URL, "api-key": "k"}),
    ("httppost", [{"endpoint": "a", "url": "http://x/{{ .Tags.host }}"}]),
    ("slack", [{"workspace": "main", "default": True, "global": True,
                "state-changes-only": True, "url": URL},
               {"workspace": "ops", "url": URL}]),
    ("discord", [{"workspace": "main", "default": True, "url": URL},
                 {"workspace": "ops", "url": URL}]),
])
def test_accepted_as_kapacitor_accepts(name: str, raw) -> None:
    PLUGINS.sections[name].build(raw)
