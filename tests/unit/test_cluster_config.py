"""[cluster]: off by default, set by the file or KAPACITOR_CLUSTER_*, and checked."""

from __future__ import annotations

import pytest

from kapa_core.config.core_sections import CORE_SECTIONS
from kapa_core.config.loader import ConfigLayers
from kapa_core.errors import ConfigError
from kapa_core.models.duration import SECOND


def build(file: dict | None = None, env: dict | None = None):
    layers = ConfigLayers(CORE_SECTIONS)
    layers.load(file, env or {})
    return layers.build(layers.effective_raw(()))["cluster"]


def test_off_by_default() -> None:
    cluster = build()
    assert cluster.enabled is False
    assert cluster.urls == ["nats://127.0.0.1:4222"]
    assert (cluster.name, cluster.member_id, cluster.replicas) == ("kapa", "", 1)
    assert cluster.member_timeout == 5 * SECOND


def test_file_and_environment() -> None:
    cluster = build({"cluster": {"enabled": True, "urls": ["nats://a:4222", "tls://b:4222"],
                                 "name": "prod", "replicas": 3}},
                    {"KAPACITOR_CLUSTER_MEMBER_ID": "node-1",
                     "KAPACITOR_CLUSTER_HEARTBEAT_INTERVAL": "500ms"})
    assert cluster.enabled and cluster.urls == ["nats://a:4222", "tls://b:4222"]
    assert (cluster.name, cluster.member_id, cluster.replicas) == ("prod", "node-1", 3)
    assert cluster.heartbeat_interval == SECOND // 2


@pytest.mark.parametrize(("section", "key", "words"), [
    ({"name": "a.b"}, "name", "letters, digits"),
    ({"name": ""}, "name", "letters, digits"),
    ({"member-id": "x y"}, "member-id", "letters, digits"),
    ({"enabled": True, "urls": []}, "urls", "at least one"),
    ({"urls": ["http://x:4222"]}, "urls", "not a NATS URL"),
    ({"replicas": 0}, "replicas", "1 to 5"),
    ({"replicas": 7}, "replicas", "1 to 5"),
    ({"enabled": True, "token": "t", "username": "u"}, "token", "not both"),
    ({"enabled": True, "ssl-cert": "/c.pem"}, "ssl-cert", "needs its key"),
    ({"heartbeat-interval": "1ms"}, "heartbeat-interval", "too short"),
    ({"heartbeat-interval": "3s", "member-timeout": "5s"}, "member-timeout", "twice"),
])
def test_bad_values_say_what_is_wrong(section: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        build({"cluster": section})
    assert f"cluster.{key}" in str(info.value) and words in str(info.value)


def test_credentials_of_a_disabled_section_are_not_checked() -> None:
    """Checked when the cluster is used: a file may keep them while it is off."""
    cluster = build({"cluster": {"token": "t", "username": "u", "ssl-key": "/k.pem"}})
    assert cluster.enabled is False and cluster.token == "t"


def test_secrets_are_redacted() -> None:
    from kapa_core.config.cluster_section import SECTION
    assert {"password", "token", "ssl-key"} <= set(SECTION.redacted_keys())
