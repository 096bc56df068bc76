"""The configuration layers: defaults < file < environment < overrides < command line."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

import pytest

from kapa_core.config.loader import CommandLine, ConfigLayers, find_config_path
from kapa_core.config.overrides import Override
from kapa_core.config.schema import Section, setting
from kapa_core.config.toml_out import dump
from kapa_core.errors import ConfigError
from kapa_core.models.duration import MINUTE, SECOND, Duration


@dataclass(frozen=True, kw_only=True)
class Auth:
    username: str = ""
    password: str = setting("", redact=True)


@dataclass(frozen=True, kw_only=True)
class Cluster:
    enabled: bool = True
    name: str = "default"
    urls: list[str] = setting(["http://localhost:8086"])
    password: str = setting("", redact=True)
    timeout: Duration = Duration(0)
    retries: int = 3
    ratio: float = 0.5
    subscriptions: dict[str, list[str]] = setting({})
    headers: dict[str, str] = setting({})
    basic_auth: Auth = setting(default_factory=Auth)
    global_: bool = False

    def validate(self) -> None:
        for i, url in enumerate(self.urls):
            if "://" not in url:
                raise ConfigError(f"urls[{i}]", f"{url!r} has no scheme (expected http://)")


def check_unique(elements: tuple[Cluster, ...]) -> None:
    seen: set[str] = set()
    for i, element in enumerate(elements):
        if element.name in seen:
            raise ConfigError(f"[{i}].name", f"duplicate name {element.name!r}")
        seen.add(element.name)


@dataclass(frozen=True, kw_only=True)
class Mail:
    enabled: bool = False
    host: str = "localhost"
    port: int = 25
    to: list[str] = setting([])


SECTIONS = [
    Section(name="cluster", schema=Cluster, multiple=True, element_key="name",
            default_elements=1, check=check_unique),
    Section(name="mail", schema=Mail),
]


def layers(file: dict | None = None, env: dict | None = None,
           cli: CommandLine | None = None) -> ConfigLayers:
    from kapa_core.config.core_sections import CORE_SECTIONS

    result = ConfigLayers([*CORE_SECTIONS, *SECTIONS])
    result.load(file, env or {}, cli or CommandLine())
    return result


def build(file: dict | None = None, env: dict | None = None, overrides=(),
          cli: CommandLine | None = None):
    result = layers(file, env, cli)
    return result.build(result.effective_raw(overrides))


def test_defaults_without_file() -> None:
    config = build()
    assert config["http"].bind_address == ":9092"
    assert config["cluster"][0].urls == ["http://localhost:8086"]
    assert config["mail"].port == 25
    assert config.root.hostname == "localhost"


def test_directories_default_under_data_dir() -> None:
    config = build({"data_dir": "/srv/kapa"})
    assert config["storage"].boltdb == "/srv/kapa/kapacitor.db"
    assert config["replay"].dir == "/srv/kapa/replay"
    assert config["load"].dir == "/srv/kapa/load"


def test_file_overrides_defaults_and_array_elements_start_from_defaults() -> None:
    config = build({"mail": {"host": "smtp.example.com"},
                    "cluster": [{"name": "a"}, {"name": "b", "retries": 5}]})
    assert config["mail"].host == "smtp.example.com"
    assert config["mail"].port == 25
    assert [(c.name, c.retries, c.urls) for c in config["cluster"]] == [
        ("a", 3, ["http://localhost:8086"]), ("b", 5, ["http://localhost:8086"])]


def test_env_overrides_file() -> None:
    config = build({"mail": {"port": 26}}, {"KAPACITOR_MAIL_PORT": "2525",
                                            "KAPACITOR_MAIL_ENABLED": "true"})
    assert (config["mail"].port, config["mail"].enabled) == (2525, True)


def test_env_array_elements_lists_and_maps() -> None:
    env = {
        "KAPACITOR_CLUSTER_0_URLS_0": "http://influx:8086",
        "KAPACITOR_CLUSTER_0_TIMEOUT": "1m0s",
        "KAPACITOR_CLUSTER_0_HEADERS_Authorization": "Bearer x",
        "KAPACITOR_CLUSTER_0_SUBSCRIPTIONS_mydb": "autogen,longterm",
        "KAPACITOR_CLUSTER_0_BASIC_AUTH_USERNAME": "bob",
        "KAPACITOR_CLUSTER_0_GLOBAL": "T",
        "KAPACITOR_CLUSTER_0_RATIO": "0.25",
        "KAPACITOR_CLUSTER_0_RETRIES": "0x10",
    }
    (cluster,) = build(None, env)["cluster"]
    assert cluster.urls == ["http://influx:8086"]
    assert cluster.timeout == MINUTE
    assert cluster.headers == {"Authorization": "Bearer x"}
    assert cluster.subscriptions == {"mydb": ["autogen", "longterm"]}
    assert cluster.basic_auth.username == "bob"
    assert (cluster.global_, cluster.ratio, cluster.retries) == (True, 0.25, 16)


def test_env_single_element_index_may_be_left_out() -> None:
    (cluster,) = build(None, {"KAPACITOR_CLUSTER_ENABLED": "false"})["cluster"]
    assert cluster.enabled is False


def test_env_whole_list_comma_separated() -> None:
    (cluster,) = build(None, {"KAPACITOR_CLUSTER_0_URLS": "http://a:1, http://b:2"})["cluster"]
    assert cluster.urls == ["http://a:1", "http://b:2"]


def test_env_only_existing_elements() -> None:
    result = layers(None, {"KAPACITOR_CLUSTER_3_RETRIES": "1"})
    assert "environment variable KAPACITOR_CLUSTER_3_RETRIES" in result.unknown


def test_env_root_keys() -> None:
    config = build(None, {"KAPACITOR_SKIP_CONFIG_OVERRIDES": "true",
                          "KAPACITOR_HOSTNAME": "kapa.example"})
    assert config.root.skip_config_overrides is True
    assert config.root.hostname == "kapa.example"


def test_env_bad_value_names_variable_key_and_type() -> None:
    with pytest.raises(ConfigError) as err:
        build(None, {"KAPACITOR_MAIL_PORT": "twenty"})
    message = str(err.value)
    assert "mail.port" in message
    assert "'twenty'" in message
    assert "an integer" in message
    assert "KAPACITOR_MAIL_PORT" in message


def test_env_bad_duration() -> None:
    with pytest.raises(ConfigError, match=r"cluster\[0\]\.timeout: invalid value '5 minutes' "
                       r"\(expected a duration"):
        build(None, {"KAPACITOR_CLUSTER_0_TIMEOUT": "5 minutes"})


def test_special_variables_are_not_keys() -> None:
    result = layers(None, {"KAPACITOR_OPTS": "-pidfile x", "KAPACITOR_URL": "http://x"})
    assert result.unknown == []


def test_file_type_error_names_path() -> None:
    with pytest.raises(ConfigError, match=r"^mail\.port: invalid value '25' \(expected an "
                       r"integer\)"):
        build({"mail": {"port": "25"}})


def test_validate_error_gets_element_path() -> None:
    with pytest.raises(ConfigError, match=r"^cluster\[1\]\.urls\[0\]: 'x:1' has no scheme"):
        build({"cluster": [{"name": "a"}, {"name": "b", "urls": ["x:1"]}]})


def test_cross_element_check_gets_section_path() -> None:
    with pytest.raises(ConfigError, match=r"^cluster\[1\]\.name: duplicate name 'a'"):
        build({"cluster": [{"name": "a"}, {"name": "a"}]})


def test_unknown_keys_and_sections_are_reported_by_name() -> None:
    result = layers({"mail": {"hots": "x"}, "maill": {}, "cluster": [{"nmae": "x"}]})
    assert "mail.hots" in result.unknown
    assert "maill (did you mean mail?)" in result.unknown
    assert "cluster[0].nmae" in result.unknown


def test_overrides_beat_env_and_command_line_beats_all() -> None:
    overrides = [Override("mail", "", {"port": 2600}),
                 Override("logging", "", {"level": "ERROR"})]
    config = build({"mail": {"port": 26}}, {"KAPACITOR_MAIL_PORT": "2525"}, overrides,
                   CommandLine(hostname="cli-host", log_level="warn"))
    assert config["mail"].port == 2600
    assert config["logging"].level == "warn"
    assert config.root.hostname == "cli-host"


def test_override_create_and_delete_elements() -> None:
    overrides = [Override("cluster", "", {"name": "extra", "urls": ["http://e:1"]},
                          create=True),
                 Override("cluster", "default", delete=True)]
    config = build(None, None, overrides)
    assert [c.name for c in config["cluster"]] == ["extra"]


def test_override_values_are_coerced_like_kapacitor() -> None:
    config = build(None, None, [Override("cluster", "default",
                                          {"timeout": "30s", "retries": "7", "ratio": 1})])
    (cluster,) = config["cluster"]
    assert (cluster.timeout, cluster.retries, cluster.ratio) == (30 * SECOND, 7, 1.0)


def test_invalid_override_raises() -> None:
    with pytest.raises(ConfigError, match=r"cluster\[0\]\.nope: unknown option"):
        build(None, None, [Override("cluster", "default", {"nope": 1})])


def test_dump_is_valid_toml_and_round_trips(tmp_path) -> None:
    config = build({"mail": {"to": ["a@b.c"]}, "cluster": [{"name": "x",
                    "subscriptions": {"db": ["rp"]}, "headers": {"X-A": "1"}}]})
    text = dump(config.root, [(s, config.get(s.name)) for s in layers().sections.values()])
    data = tomllib.loads(text)
    assert data["mail"]["to"] == ["a@b.c"]
    assert data["cluster"][0]["subscriptions"] == {"db": ["rp"]}
    assert data["cluster"][0]["headers"] == {"X-A": "1"}
    assert data["http"]["shutdown-timeout"] == "10s"
    again = layers(data)
    assert again.build(again.effective_raw())["cluster"][0].name == "x"


def test_dump_never_prints_a_set_secret() -> None:
    config = build({"cluster": [{"name": "x", "password": "hunter2",
                                 "basic-auth": {"username": "u", "password": "s3cret"}}]})
    text = dump(config.root, [(s, config.get(s.name)) for s in layers().sections.values()])
    assert "hunter2" not in text
    assert "s3cret" not in text
    assert "# password = (redacted: set)" in text
    tomllib.loads(text)


def test_config_path_lookup(tmp_path, monkeypatch) -> None:
    assert find_config_path("/x.conf", {"KAPACITOR_CONFIG_PATH": "/y.conf"}) == "/x.conf"
    assert find_config_path(None, {"KAPACITOR_CONFIG_PATH": "/y.conf"}) == "/y.conf"
    monkeypatch.setattr("kapa_core.config.loader.DEFAULT_PATHS", (str(tmp_path / "none"),))
    assert find_config_path(None, {}) is None


@pytest.mark.parametrize("value", [1e308, -1e308, 2**63, "3000000h", "9223372036854775808ns",
                                   "-2562047h47m16.854775809s"])
def test_durations_outside_int64_nanoseconds_are_refused(value) -> None:
    with pytest.raises(ConfigError, match=r"^cluster\[0\]\.timeout: invalid value .*"
                       r"\(expected a duration such as 10s or 1m0s\): out of range"):
        build({"cluster": [{"timeout": value}]})
    with pytest.raises(ConfigError, match=r"cluster\[0\]\.timeout: .*out of range"):
        build(None, None, [Override("cluster", "default", {"timeout": value})])


def test_a_huge_duration_from_the_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cluster\[0\]\.timeout: .*out of range"):
        build(None, {"KAPACITOR_CLUSTER_0_TIMEOUT": "99999999999h"})


@pytest.mark.parametrize("value", [1e308, 2**64, -(2**63) - 1])
def test_integers_outside_int64_are_refused(value) -> None:
    with pytest.raises(ConfigError, match=r"^mail\.port: invalid value .* \(expected an "
                       r"integer\): out of range"):
        build({"mail": {"port": value}})
    with pytest.raises(ConfigError, match=r"mail\.port: .*out of range"):
        build(None, {"KAPACITOR_MAIL_PORT": str(int(value))})


@pytest.mark.parametrize(("file", "message"), [
    # Kapacitor's FunctionConfig.Validate: timeout <= 1ms is "too small".
    ({"udf": {"functions": {"f": {"prog": "x", "timeout": "1ms"}}}},
     r"^udf\.functions\.f\.timeout: timeout is too small: 1ms"),
    ({"udf": {"functions": {"f": {"prog": "x", "timeout": "-1s"}}}},
     r"^udf\.functions\.f\.timeout: timeout is too small: -1s"),
    # Kapacitor panics when a global deadman ticks with a non-positive interval.
    ({"deadman": {"global": True, "interval": "0s"}},
     r"^deadman\.interval: must be greater than 0s when global = true, got 0s"),
    ({"deadman": {"global": True, "interval": "-10s"}}, r"^deadman\.interval: must be"),
])
def test_durations_kapacitor_refuses(file, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build(file)


def test_durations_kapacitor_accepts_negative_stay_accepted() -> None:
    config = build({"http": {"shutdown-timeout": "-1s"},
                    "task": {"snapshot-interval": "-1m"},
                    "deadman": {"interval": "-1s"}})  # unused unless global = true
    assert config["http"].shutdown_timeout == -SECOND
    assert config["task"].snapshot_interval == -MINUTE
    assert build({"udf": {"functions": {"f": {"prog": "x", "timeout": "2ms"}}}})


def test_smtp_idle_timeout_is_refused_negative_even_when_disabled() -> None:
    from kapa_plugins.handlers.smtp import SMTPConfig

    from kapa_core.config.schema import build as build_section

    with pytest.raises(ConfigError, match=r"^smtp\.idle-timeout: must not be negative"):
        build_section(SMTPConfig, {"enabled": False, "idle-timeout": "-1s"}, "smtp")
    assert build_section(SMTPConfig, {"idle-timeout": "0s"}, "smtp").idle_timeout == 0
