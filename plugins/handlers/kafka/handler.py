"""The ``kafka`` handler: each alert becomes one message on the handler's topic."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    TemplateError,
    option,
    parse_template,
)

from . import wire
from .config import DEFAULT_TIMEOUT, KafkaConfig, seconds
from .service import KafkaService

#: What a kafka handler is made with: the [[kafka]] elements and the running service.
KafkaContext = HandlerContext[tuple[KafkaConfig, ...], KafkaService]

TEMPLATE_NAME = "kafka alert template"


@dataclass(frozen=True, kw_only=True)
class KafkaOptions:
    cluster: str = option("", doc="The [[kafka]] element's id.")
    topic: str = option("", tick="kafkaTopic", doc="The Kafka topic.")
    template: str = option("", doc="Go template for the message value.")
    disable_partition_by_id: bool = option(False, key="disablePartitionById")
    partition_algorithm: str = option("", tick="partitionHashAlgorithm",
                                      key="partitionAlgorithm",
                                      doc="crc32, murmur2, murmur3 or fnv-1a (default: "
                                      "the partition with the fewest bytes).")

    def validate(self) -> None:
        if self.partition_algorithm not in wire.ALGORITHMS:
            raise ConfigError("partitionAlgorithm", f"kafka: invalid partition algorithm "
                              f"{self.partition_algorithm!r} (crc32, murmur2, murmur3, "
                              "fnv-1a)")
        if self.template:
            try:
                parse_template(self.template, TEMPLATE_NAME)
            except TemplateError as exc:
                raise ConfigError("template", f"kafka: {exc}") from None


def alert_data(event: Event) -> Any:
    """Kapacitor's ``alert.Data``, the dot of a Kafka template (``{{ .Data }}`` prints
    its JSON, as Go's models.Result does)."""
    return event.alert_template_data()


class KafkaHandler:
    """Writes each alert to the cluster's topic without waiting for the broker, as
    Kapacitor's asynchronous writer does (so that the alerts of a handler can share a
    partition's batch); a message that cannot be delivered is logged as "alert handler
    failed" by the service."""

    def __init__(self, options: KafkaOptions, context: KafkaContext) -> None:
        self.options = options
        #: the running kafka service; None while [[kafka]] is being re-opened
        self.service = context.service
        self.template = (parse_template(options.template, TEMPLATE_NAME)
                         if options.template else None)

    def _value(self, event: Event) -> bytes:
        if self.template is None:
            return (event.json() + "\n").encode()
        try:
            return self.template.execute(alert_data(event)).encode()
        except TemplateError as exc:
            raise HandlerError(f"kafka: failed to execute alert template: {exc}") from None

    async def handle(self, event: Event) -> None:
        service = self.service
        if service is None:
            raise HandlerError("kafka: the kafka service is not running")
        config = service.cluster(self.options.cluster)
        topic = self.options.topic
        if not topic:
            raise HandlerError("kafka: no topic (set .kafkaTopic('name') or the topic option)")
        value = self._value(event)
        key = event.id.encode()
        timeout = seconds(config.timeout, DEFAULT_TIMEOUT)
        where = f"kafka: cluster {config.id!r}, topic {topic!r}"
        try:
            writer = service.writer(config, topic)
            with trio.fail_after(timeout):
                partitions = await writer.partitions()
            if self.options.disable_partition_by_id:
                partition = writer.next_partition(partitions)
            elif not self.options.partition_algorithm:
                partition = writer.least_bytes(partitions, len(key) + len(value))
            elif not key:
                partition = random.choice(partitions)
            else:
                partition = wire.partition_for(self.options.partition_algorithm, key,
                                               partitions)
            message = wire.Message(key, value, time.time_ns() // 1_000_000)
        except wire.KafkaError as exc:
            raise HandlerError(f"{where}: {exc}") from None
        except trio.TooSlowError:
            raise HandlerError(f"{where}: no answer from the brokers in time") from None

        def report(exc: wire.KafkaError) -> None:
            service.log.error("alert handler failed", kind="kafka", alert=event.id,
                              err=f"{where}: {exc}")

        writer.enqueue(partition, message, report)


