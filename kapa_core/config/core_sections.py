"""The core's own config sections: root keys, [http], [tls], [auth], [logging], [storage]...

These belong to kapa-core itself rather than to a plugin and none of them can be
overridden over the HTTP API (as in Kapacitor). Directory keys left empty are placed
under ``data_dir`` when the configuration is resolved (see ``loader.resolve_paths``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kapa_core.config.cluster_section import SECTION as CLUSTER
from kapa_core.config.schema import Section, setting
from kapa_core.errors import ConfigError
from kapa_core.models.duration import MILLISECOND, SECOND, Duration
from kapa_core.tlsconfig import parse_policy

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
TLS_VERSIONS = ("", "tls1.0", "tls1.1", "tls1.2", "tls1.3")


def default_data_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".kapacitor")


@dataclass(frozen=True, kw_only=True)
class RootConfig:
    """Keys at the top of the file, outside any table."""

    hostname: str = setting("localhost", doc="Hostname other services (InfluxDB "
                            "subscriptions) use to reach this instance.")
    data_dir: str = setting("", key="data_dir",
                            doc="Where kapa-core keeps its data; empty means ~/.kapacitor.")
    skip_config_overrides: bool = setting(
        False, doc="Ignore configuration overrides stored through the HTTP API at startup.")
    default_retention_policy: str = setting(
        "", doc="Retention policy for writes that give none.")

    def validate(self) -> None:
        if not self.hostname:
            raise ConfigError("hostname", "must not be empty")


@dataclass(frozen=True, kw_only=True)
class HTTPConfig:
    """[http]: the API and write endpoint (always on)."""

    bind_address: str = setting(":9092", doc="host:port the API listens on.")
    auth_enabled: bool = False
    log_enabled: bool = setting(True, doc="Log every request (access log).")
    write_tracing: bool = setting(False, doc="Log the body of every write.")
    pprof_enabled: bool = False
    https_enabled: bool = False
    https_certificate: str = "/etc/ssl/kapacitor.pem"
    https_private_key: str = setting("", doc="Separate private key; empty means the key "
                                     "is inside https-certificate.")
    shutdown_timeout: Duration = setting(Duration(10 * SECOND),
                                         doc="How long in-flight requests get at shutdown.")
    shared_secret: str = setting("", redact=True, doc="HMAC secret for JWT bearer tokens.")
    max_body_size: int = setting(
        25_000_000, doc="Largest request body accepted, in bytes (after gzip decoding); "
        "0 means no limit. kapa-core only.")
    read_header_timeout: Duration = setting(
        Duration(30 * SECOND), doc="How long a client may take to send a request's "
        "headers; slower connections are closed. kapa-core only.")
    idle_timeout: Duration = setting(
        Duration(120 * SECOND), doc="How long an idle keep-alive connection, or a request "
        "body that stops arriving, is waited for. kapa-core only.")

    def validate(self) -> None:
        for name in ("read_header_timeout", "idle_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(name.replace("_", "-"), "must be positive")
        _host, sep, port = self.bind_address.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port, e.g. :9092 or 127.0.0.1:9092)")
        if self.max_body_size < 0:
            raise ConfigError("max-body-size", "must not be negative")


@dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """[tls]: TLS policy of the HTTPS API."""

    ciphers: list[str] = setting([], doc="Cipher suites by Go name, in priority order; "
                                 "empty means the TLS library's defaults.")
    min_version: str = setting("", doc="tls1.0, tls1.1, tls1.2 or tls1.3.")
    max_version: str = ""

    def validate(self) -> None:
        # Names and versions as Kapacitor's tlsconfig accepts them (case-insensitive,
        # "tls1.2" or "1.2"); what OpenSSL can honour is checked when HTTPS starts.
        parse_policy(self.ciphers, self.min_version, self.max_version)


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """[auth]: users stored by kapa-core, or an InfluxDB Enterprise meta API."""

    enabled: bool = False
    cache_expiration: Duration = Duration(600 * SECOND)
    bcrypt_cost: int = 10
    meta_addr: str = ""
    meta_username: str = ""
    meta_password: str = setting("", redact=True)
    meta_internal_shared_secret: str = setting("", redact=True)
    meta_use_tls: bool = False
    meta_ca: str = ""
    meta_cert: str = ""
    meta_key: str = ""
    meta_insecure_skip_verify: bool = False

    def validate(self) -> None:
        if self.enabled and not 4 <= self.bcrypt_cost <= 31:
            raise ConfigError("bcrypt-cost", f"invalid cost {self.bcrypt_cost} "
                              "(expected an integer from 4 to 31)")


@dataclass(frozen=True, kw_only=True)
class ConfigOverrideConfig:
    """[config-override]: whether /kapacitor/v1/config may change settings."""

    enabled: bool = True


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """[logging]"""

    file: str = setting("STDERR", doc="A file path, STDOUT or STDERR.")
    level: str = setting("INFO", doc="DEBUG, INFO, WARN or ERROR.")

    def validate(self) -> None:
        if self.level.upper() not in (*LOG_LEVELS, "WARNING"):
            raise ConfigError("level", f"invalid level {self.level!r} "
                              "(expected DEBUG, INFO, WARN or ERROR)")


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """[load]: tasks, templates and topic handlers loaded from a directory at startup."""

    enabled: bool = False
    dir: str = setting("", doc="Empty means <data_dir>/load.")


@dataclass(frozen=True, kw_only=True)
class ReplayConfig:
    """[replay]: where recordings are stored."""

    dir: str = setting("", doc="Empty means <data_dir>/replay.")


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """[storage]: the SQLite database (the key keeps Kapacitor's name)."""

    boltdb: str = setting("", doc="SQLite file; empty means <data_dir>/kapacitor.db.")


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """[task]: deprecated task directory; snapshot interval of node state; the size limits
    of TICKscripts (kapa-core's own keys, see :mod:`kapa_core.tick.limits` for why)."""

    dir: str = setting("", doc="Empty means <data_dir>/tasks.")
    snapshot_interval: Duration = Duration(60 * SECOND)
    # 1 MiB: ten times the largest real scripts we know of, three times the 300 kB
    # stress scripts of our tests; a script at the limit costs a few seconds of a
    # worker thread and up to ~200 MB while it is parsed.
    max_script_size: int = setting(
        1_048_576, doc="Largest TICKscript of a task or template (API or [load] "
        "directory), in bytes; 0 means no limit. kapa-core only.")
    # 10,000: real tasks have tens of nodes; each node costs memory and a little time
    # for every point.
    max_nodes: int = setting(
        10_000, doc="Most pipeline nodes one task may have; 0 means no limit. "
        "kapa-core only.")

    def validate(self) -> None:
        for name in ("max_script_size", "max_nodes"):
            if getattr(self, name) < 0:
                raise ConfigError(name.replace("_", "-"), "must not be negative (0 means "
                                  "no limit)")


@dataclass(frozen=True, kw_only=True)
class FluxTaskConfig:
    """[fluxtask]: accepted for compatibility; Flux tasks are not run by kapa-core."""

    enabled: bool = False
    task_run_influxdb: str = ""
    task_run_bucket: str = "kapacitor_fluxtask_logs"
    task_run_org: str = ""
    task_run_orgid: str = ""
    task_run_measurement: str = "runs"
    secrets: dict[str, str] = setting({}, redact=True)
    default_influxdb: str = ""


@dataclass(frozen=True, kw_only=True)
class AlertConfig:
    """[alert]"""

    persist_topics: bool = setting(True, doc="Keep topic and event state in storage.")
    topic_buffer_length: int = 5000


@dataclass(frozen=True, kw_only=True)
class DeadmanConfig:
    """[deadman]: the deadman's switch, per node or global."""

    interval: Duration = Duration(10 * SECOND)
    threshold: float = 0.0
    id: str = "{{ .Group }}:NODE_NAME for task '{{ .TaskName }}'"
    message: str = ('{{ .ID }} is {{ if eq .Level "OK" }}alive{{ else }}dead{{ end }}: '
                    '{{ index .Fields "emitted" | printf "%0.3f" }} points/INTERVAL.')
    global_: bool = setting(False, doc="Add a deadman to the source node of every task.")

    def validate(self) -> None:
        # Kapacitor takes any interval here and panics when a global deadman ticks with
        # one that is not positive; kapa-core refuses it up front.
        if self.global_ and self.interval <= 0:
            raise ConfigError("interval", f"must be greater than 0s when global = true, "
                              f"got {self.interval}")


@dataclass(frozen=True, kw_only=True)
class StatsConfig:
    """[stats]: internal statistics written into the stream."""

    enabled: bool = True
    stats_interval: Duration = Duration(10 * SECOND)
    database: str = "_kapacitor"
    retention_policy: str = "autogen"
    timing_sample_rate: float = setting(0.1, doc="Share of node executions timed for "
                                        "avg_exec_time_ns (0 to 1; 0 times none).")
    timing_movavg_size: int = setting(1000, doc="avg_exec_time_ns is the mean of this "
                                      "many latest timings.")

    def validate(self) -> None:
        if not 0 <= self.timing_sample_rate <= 1:
            raise ConfigError("timing-sample-rate", f"must be between 0 and 1, got "
                              f"{self.timing_sample_rate:g}")
        if self.timing_movavg_size < 1:
            raise ConfigError("timing-movavg-size", f"must be at least 1, got "
                              f"{self.timing_movavg_size}")
        if self.enabled and self.stats_interval <= 0:
            raise ConfigError("stats-interval", f"must be greater than 0s, got "
                              f"{self.stats_interval} (or set enabled = false)")


@dataclass(frozen=True, kw_only=True)
class ReportingConfig:
    """[reporting]: accepted for compatibility; kapa-core never sends usage reports."""

    enabled: bool = False
    url: str = "https://usage.influxdata.com"


@dataclass(frozen=True, kw_only=True)
class UDFFunctionConfig:
    """[udf.functions.<name>]: one user defined function."""

    prog: str = ""
    args: list[str] = setting([])
    env: dict[str, str] = setting({})
    socket: str = ""
    timeout: Duration = Duration(10 * SECOND)
    bridge: str = setting("", doc="kapa-core: the UDF bridge plugin that runs this function "
                          "(e.g. an in-process one); prog and socket are then not needed.")
    python: str = setting("", doc="kapa-core: \"package.module:Class\", a UDF handler "
                          "class (written with kapa_core.udf.agent) run inside the daemon, "
                          "imported from its sys.path; instead of prog or socket.")

    def validate(self) -> None:
        if self.prog and self.socket:
            raise ConfigError("", "cannot set both prog and socket")
        if self.python and (self.prog or self.socket):
            raise ConfigError("python", "cannot set python with prog or socket")
        if not self.prog and not self.socket and not self.python and not self.bridge:
            raise ConfigError("", "must set prog or socket")
        if self.timeout <= MILLISECOND:  # Kapacitor's limit and words
            raise ConfigError("timeout", f"timeout is too small: {self.timeout}")


@dataclass(frozen=True, kw_only=True)
class UDFConfig:
    """[udf]"""

    functions: dict[str, UDFFunctionConfig] = setting({})


ROOT = Section(name="", schema=RootConfig, overridable=False)

CORE_SECTIONS: tuple[Section, ...] = (
    Section(name="http", schema=HTTPConfig, overridable=False),
    Section(name="tls", schema=TLSConfig, overridable=False),
    Section(name="auth", schema=AuthConfig, overridable=False),
    Section(name="config-override", schema=ConfigOverrideConfig, overridable=False),
    Section(name="logging", schema=LoggingConfig, overridable=False),
    Section(name="load", schema=LoadConfig, overridable=False),
    Section(name="replay", schema=ReplayConfig, overridable=False),
    Section(name="storage", schema=StorageConfig, overridable=False),
    Section(name="task", schema=TaskConfig, overridable=False),
    Section(name="fluxtask", schema=FluxTaskConfig, overridable=False),
    Section(name="alert", schema=AlertConfig, overridable=False),
    Section(name="deadman", schema=DeadmanConfig, overridable=False),
    Section(name="stats", schema=StatsConfig, overridable=False),
    Section(name="reporting", schema=ReportingConfig, overridable=False),
    # kapa-core: [udf] takes config overrides (Kapacitor's cannot be overridden); an
    # override asks every function for its info again.
    Section(name="udf", schema=UDFConfig),
    CLUSTER,  # kapa-core: scale-out on NATS JetStream (docs/cluster.md)
)
