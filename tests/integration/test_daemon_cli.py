"""The kapa-core command line: commands, flags, config lookup, bad configuration."""

from __future__ import annotations

import os
import signal
import tomllib
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, run_cli, to_toml

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("args", [["--help"], ["help"], ["run", "--help"], ["config", "-h"],
                                  ["version", "--help"], ["plugins", "--help"],
                                  ["help", "run"]])
def test_help_on_every_command(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_run_help_lists_kapacitor_flags() -> None:
    out = run_cli("run", "--help").stdout
    for flag in ("-config", "-hostname", "-pidfile", "-log-file", "-log-level",
                 "-blacklist-cidrs", "-disable-handlers"):
        assert flag in out


def test_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("kapa-core version ")


def test_config_prints_complete_valid_toml(tmp_path: Path) -> None:
    result = run_cli("config", env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    data = tomllib.loads(result.stdout)
    for section in ("http", "tls", "logging", "storage", "load", "replay", "deadman",
                    "stats", "alert", "config-override", "udf", "influxdb"):
        assert section in data, section
    assert data["http"]["bind-address"] == ":9092"
    assert data["influxdb"][0]["urls"] == ["http://localhost:8086"]
    assert data["storage"]["boltdb"] == str(tmp_path / ".kapacitor" / "kapacitor.db")


def test_config_merges_file_env_and_hostname_flag(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(to_toml({"hostname": "from-file", "http": {"bind-address": ":1111"},
                             "logging": {"level": "WARN"}}))
    result = run_cli("config", "-config", str(conf), "-hostname", "from-flag",
                     env={"KAPACITOR_LOGGING_LEVEL": "ERROR"})
    assert result.returncode == 0, result.stderr
    assert f"Merging with configuration at: {conf}" in result.stderr
    data = tomllib.loads(result.stdout)
    assert data["hostname"] == "from-flag"
    assert data["http"]["bind-address"] == ":1111"
    assert data["logging"]["level"] == "ERROR"


def test_config_path_from_environment(tmp_path: Path) -> None:
    conf = tmp_path / "env.conf"
    conf.write_text('hostname = "via-env-path"\n')
    result = run_cli("config", env={"KAPACITOR_CONFIG_PATH": str(conf)})
    assert tomllib.loads(result.stdout)["hostname"] == "via-env-path"


@pytest.mark.parametrize(("config", "env", "expected"), [
    ({"http": {"bind-address": "9092"}}, {}, "http.bind-address: invalid address '9092'"),
    ({"logging": {"level": "LOUD"}}, {}, "logging.level: invalid level 'LOUD'"),
    ({"influxdb": [{"urls": ["localhost:8086"]}]}, {}, "influxdb[0].urls[0]"),
    ({}, {"KAPACITOR_HTTP_AUTH_ENABLED": "maybe"}, "http.auth-enabled: invalid value 'maybe'"),
    ({}, {"KAPACITOR_DEADMAN_INTERVAL": "often"}, "deadman.interval: invalid value 'often'"),
])
def test_bad_configuration_fails_fast(tmp_path: Path, config, env, expected) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(to_toml({"data_dir": str(tmp_path / "data"), **config}))
    result = run_cli("run", "-config", str(conf), env=env, timeout=30)
    assert result.returncode == 1
    assert expected in result.stderr
    assert not (tmp_path / "data" / "kapacitor.db").exists()  # nothing half-started


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "broken.conf"
    conf.write_text("[http\nbind-address = 1\n")
    result = run_cli("run", "-config", str(conf))
    assert result.returncode == 1
    assert str(conf) in result.stderr and "invalid TOML" in result.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    result = run_cli("run", "-config", str(tmp_path / "nope.conf"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_pidfile_and_log_level_from_kapacitor_opts(tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "kapa.pid"
    daemon = DaemonProcess(env={"KAPACITOR_OPTS": f"-pidfile={pidfile} -log-level=info"})
    with daemon:
        assert int(pidfile.read_text()) == daemon.proc.pid
        assert daemon.stop(signal.SIGTERM) == 0
        daemon.wait_for_text('lvl=info msg="kapa-core ready"')  # the whole log was read
        assert "lvl=debug" not in daemon.log()  # -log-level from KAPACITOR_OPTS applied
    assert not pidfile.exists()


def test_command_line_flag_beats_kapacitor_opts() -> None:
    with DaemonProcess(args=["-log-level", "debug"],
                       env={"KAPACITOR_OPTS": "-log-level=error"}) as daemon:
        daemon.wait_for_text("lvl=info")
        daemon.wait_for_text("lvl=debug")


def test_log_file_flag_writes_logfmt(tmp_path: Path) -> None:
    logfile = tmp_path / "logs" / "k.log"
    with DaemonProcess(args=["-log-file", str(logfile)]) as daemon:
        assert daemon.stop() == 0  # the daemon has exited: its stderr and file are complete
        assert "kapa-core starting" not in daemon.log()  # not on stderr
    written = logfile.read_text()
    line = next((line for line in written.splitlines() if 'msg="kapa-core ready"' in line),
                None)
    assert line is not None, written
    assert line.startswith("ts=") and " lvl=info " in line and "service=server" in line


def test_ready_line_is_printed_whatever_the_log_level() -> None:
    with DaemonProcess({"logging": {"level": "ERROR"}}) as daemon:
        assert daemon.url.startswith("http://127.0.0.1:")
        assert daemon.stop() == 0  # the daemon has exited: its stderr is complete
        assert "lvl=info" not in daemon.log()


def test_sigint_and_sigterm_exit_zero() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with DaemonProcess() as daemon:
            assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204
            assert daemon.stop(sig) == 0
            assert "shutting down gracefully" in daemon.log()


def test_unknown_keys_are_logged_by_name() -> None:
    with DaemonProcess({"http": {"bind-adress": ":1"}, "smtpp": {"enabled": True}}) as daemon:
        daemon.wait_for_log(r'unknown configuration key ignored.*key=http\.bind-adress')
        daemon.wait_for_log(r'unknown configuration key ignored.*smtpp \(did you mean smtp\?\)')


def test_hostname_flag_beats_file_and_env() -> None:
    with DaemonProcess({"hostname": "file-host"}, args=["-hostname", "flag-host"],
                       env={"KAPACITOR_HOSTNAME": "env-host"}) as daemon:
        assert httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()["host"] == "flag-host"


def test_env_beats_file() -> None:
    with DaemonProcess({"hostname": "file-host"},
                       env={"KAPACITOR_HOSTNAME": "env-host"}) as daemon:
        assert httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()["host"] == "env-host"


def test_config_path_from_environment_for_run() -> None:
    daemon = DaemonProcess({"hostname": "found-by-env"}, use_config_flag=False)
    daemon.env["KAPACITOR_CONFIG_PATH"] = daemon.config_path
    with daemon:
        vars_ = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()
        assert vars_["host"] == "found-by-env"
        assert os.path.exists(os.path.join(daemon.data_dir, "kapacitor.db"))


def test_config_found_in_home_kapacitor_dir() -> None:
    daemon = DaemonProcess({"hostname": "found-in-home"}, use_config_flag=False)
    home_conf = daemon.dir / ".kapacitor" / "kapacitor.conf"
    home_conf.parent.mkdir()
    home_conf.write_text(Path(daemon.config_path).read_text())
    with daemon:
        vars_ = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()
        assert vars_["host"] == "found-in-home"


def test_double_dash_flags_work_too(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text('hostname = "double-dash"\n')
    result = run_cli("config", "--config", str(conf))
    assert tomllib.loads(result.stdout)["hostname"] == "double-dash"
    result = run_cli("config", f"-config={conf}")
    assert tomllib.loads(result.stdout)["hostname"] == "double-dash"


def test_bad_blacklist_cidr_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(to_toml({"data_dir": str(tmp_path / "d")}))
    result = run_cli("run", "-config", str(conf), "-blacklist-cidrs", "10.0.0.0/8,banana")
    assert result.returncode == 1
    assert "invalid CIDR 'banana'" in result.stderr


def test_blacklist_and_disabled_handlers_are_accepted() -> None:
    with DaemonProcess(args=["-blacklist-cidrs", "private,192.0.2.0/24",
                             "-disable-handlers", "exec,httppost"]) as daemon:
        line = daemon.wait_for_log(r'msg="alert handlers disabled"')
        assert "kinds=exec,httppost" in line
