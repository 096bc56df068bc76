"""Kafka: the [[kafka]] section (one element per cluster) and the ``kafka`` handler.

Each alert becomes one Kafka message on the handler's topic: the key is the alert ID and
the value the alert JSON as Kapacitor writes it (Go's ``json.Encoder``, so with a
trailing newline) or, with a ``template``, that Go template rendered with the alert data
Kapacitor gives it (``.ID .Message .Details .Time .Duration .Level .Data
.PreviousLevel .Recoverable``).

TICKscript::

    |alert()
        .kafka()
            .cluster('prod')               // the [[kafka]] element's id
            .kafkaTopic('alerts')          // the Kafka topic (required)
            .template('{{.ID}}: {{.Message}}')
            .partitionHashAlgorithm('murmur2')
            .disablePartitionById()

Topic handler (``kind: kafka``) options: ``cluster``, ``topic``, ``template``,
``disablePartitionById``, ``partitionAlgorithm``.

Partitioning: by default, as Kapacitor 1.5.7's writer (kafka-go's LeastBytes balancer)
does, each message goes to the partition that has had the fewest bytes (keys and
values) from this writer so far, the lowest-numbered one on a tie, so the first message
goes to the first partition. ``partitionHashAlgorithm`` (Kapacitor 1.6) makes the alert
ID's hash choose instead, so one alert always lands in the same partition: ``crc32``
(also called ``crc32c``) is ``crc32(id) % partitions``; ``murmur2`` is Kafka's Java
partitioner; ``murmur3`` and ``fnv-1a`` take the 32-bit hash as a signed number, as
sarama does. ``disablePartitionById`` spreads messages over the partitions in turn.

Delivery: the ``kafka`` service keeps one writer per cluster and topic. A writer sends
with ``acks=-1`` (all in-sync replicas have stored it, kafka-go's default), asks the
broker to answer within ``timeout`` less one second as kafka-go does, and waits at
most ``timeout`` (0 means 10s) for the broker. As kafka-go batches them, each
partition's messages go together, one Produce request per partition, once
``batch-size`` (0 means 100) of them are waiting or ``batch-timeout`` (0 means 1s) after
the first of them arrived, whichever comes first. A failed delivery fails the handler, which is logged as
"alert handler failed" with the broker's error, and the task goes on.

Connections use TLS with ``use-ssl`` (``ssl-ca``, ``ssl-cert``, ``ssl-key``,
``insecure-skip-verify``) and SASL when ``sasl-username`` or ``sasl-mechanism`` is set:
PLAIN (the default), SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, with
``sasl_extensions``; ``sasl-version`` 0 or 1 (the default) selects the handshake. The
OAUTHBEARER token is the static ``sasl-access-token``, or one fetched with OAuth 2.0
client credentials (``sasl-oauth-client-id``/``-secret`` at ``sasl-oauth-token-url``, or
Auth0 / Azure AD through ``sasl-oauth-service``; see :mod:`.oauth2_token`) and renewed
before it expires. GSSAPI (Kerberos) is refused with a clear error.
"""

from __future__ import annotations

from kapa_core.plugin_api import HandlerKind, Section, hookimpl, unique_elements

from .config import CLIENT_ID, KafkaConfig
from .handler import KafkaHandler, KafkaOptions
from .service import KafkaService, TopicWriter

__all__ = ["CLIENT_ID", "KafkaConfig", "KafkaHandler", "KafkaOptions", "KafkaService",
           "TopicWriter", "kapa_config_sections", "kapa_handler_kinds"]


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="kafka", schema=KafkaConfig, multiple=True, element_key="id",
                    default_elements=1, check=unique_elements("id"), service=KafkaService,
                    doc="Send alerts to Apache Kafka.")]


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="kafka", options=KafkaOptions, factory=KafkaHandler,
                        section="kafka", doc="Write alerts to a Kafka topic.")]
