"""[cluster] (a kapa-core addition): several daemons sharing one workload on NATS
JetStream. docs/cluster.md describes the design; off by default, so one daemon on its
SQLite store stays the embedded default and behaves exactly as before.

Daemons with the same ``name`` on the same NATS servers form one cluster: the name
prefixes every stream, consumer, bucket and subject the cluster uses, so two clusters
can share NATS servers without seeing each other. NATS subject tokens and stream names
allow neither dots, spaces, ``*``, ``>`` nor slashes, hence the narrow alphabet of
``name`` and ``member-id``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kapa_core.config.schema import Section, setting
from kapa_core.errors import ConfigError
from kapa_core.models.duration import HOUR, MILLISECOND, SECOND, Duration

#: What a cluster name or a member ID may hold (a NATS subject token, a stream name).
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
URL = re.compile(r"^(nats|tls|ws|wss)://[^\s/]+$")


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """[cluster]: scale-out on NATS JetStream (kapa-core addition, docs/cluster.md)."""

    enabled: bool = setting(False, doc="Join the cluster named by name on the NATS "
                            "servers of urls; off: one daemon on its own store.")
    urls: list[str] = setting(["nats://127.0.0.1:4222"], doc="NATS servers (with "
                              "JetStream on), any of which the daemon may connect to.")
    name: str = setting("kapa", doc="The cluster: daemons with the same name share one "
                        "workload; the prefix of its streams, buckets and subjects.")
    member_id: str = setting("", doc="This daemon's ID in the cluster, stable across "
                             "restarts; empty: its server ID (made once, kept in its "
                             "store).")
    username: str = setting("", doc="NATS user (with password).")
    password: str = setting("", redact=True)
    token: str = setting("", redact=True, doc="NATS token (instead of a user).")
    creds_file: str = setting("", doc="NATS credentials file (JWT and NKey seed).")
    ssl_ca: str = setting("", doc="PEM CA file to verify the NATS servers' certificates.")
    ssl_cert: str = setting("", doc="PEM client certificate for the NATS servers.")
    ssl_key: str = setting("", redact=True, doc="Its private key.")
    insecure_skip_verify: bool = setting(False, doc="Do not verify the NATS servers' "
                                         "certificates (testing only).")
    replicas: int = setting(1, doc="Copies JetStream keeps of each stream and bucket: "
                            "1 on one NATS server, 3 on a cluster of three.")
    retention: Duration = setting(Duration(24 * HOUR), doc="How long written points stay "
                                  "in the stream (a task's owner must read them by then).")
    heartbeat_interval: Duration = setting(Duration(1 * SECOND), doc="How often a member "
                                           "says it is alive.")
    member_timeout: Duration = setting(Duration(5 * SECOND), doc="A member silent this "
                                       "long is gone: its tasks move to the others.")
    checkpoint_interval: Duration = setting(Duration(1 * SECOND), doc="How often an owner "
                                            "saves its tasks' state and acknowledges what "
                                            "they processed.")
    publish_timeout: Duration = setting(
        Duration(15 * SECOND), doc="How long a write waits for JetStream's acknowledgement "
        "before it fails (a killed stream leader takes JetStream 5 to 7 s to replace).")

    def validate(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError("name", f"{self.name!r}: use 1 to 64 letters, digits, - or _")
        if self.member_id and not NAME.match(self.member_id):
            raise ConfigError("member-id", f"{self.member_id!r}: use 1 to 64 letters, "
                              "digits, - or _")
        if self.enabled and not self.urls:
            raise ConfigError("urls", "at least one NATS server is needed")
        for url in self.urls:
            if not URL.match(url):
                raise ConfigError("urls", f"{url!r} is not a NATS URL "
                                  "(nats://host:port, tls://, ws:// or wss://)")
        if not 1 <= self.replicas <= 5:
            raise ConfigError("replicas", f"{self.replicas}: JetStream keeps 1 to 5 copies")
        if self.enabled and self.token and (self.username or self.password):
            raise ConfigError("token", "give a token or a username and password, not both")
        if self.enabled and bool(self.ssl_cert) != bool(self.ssl_key):
            raise ConfigError("ssl-cert", "a client certificate needs its key (ssl-key)")
        for key, value in (("heartbeat-interval", self.heartbeat_interval),
                           ("checkpoint-interval", self.checkpoint_interval),
                           ("publish-timeout", self.publish_timeout),
                           ("retention", self.retention)):
            if value < 10 * MILLISECOND:
                raise ConfigError(key, f"{value} is too short (10ms at least)")
        if self.member_timeout < 2 * self.heartbeat_interval:
            raise ConfigError("member-timeout", f"{self.member_timeout} must be at least "
                              f"twice heartbeat-interval ({self.heartbeat_interval})")


SECTION = Section(name="cluster", schema=ClusterConfig, overridable=False)
