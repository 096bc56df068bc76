"""MQTT: the [[mqtt]] section (one element per broker) and the ``mqtt`` handler.

Each alert event is published to an MQTT broker: the payload is the alert message text
(the alert node's ``.message()``), the topic a Go template rendered per event with the
alert's template data (``{{ .TaskName }}``, ``{{ .Level }}``, ``{{ index .Tags "host" }}``
… as in Kapacitor 1.5.4+). In TICKscript::

    |alert()
        .crit(lambda: "value" > 90)
        .mqtt('alerts/{{ .TaskName }}/{{ .Level }}')
            .brokerName('local')
            .qos(1)
            .retained(TRUE)

As a topic handler: ``{"kind": "mqtt", "options": {"broker-name": "local", "topic":
"alerts/{{ .ID }}", "qos": 2, "retained": true}}``.

Options: ``broker-name`` picks the [[mqtt]] element by ``name`` (empty: the element with
``default = true``, or the only one); ``topic`` is required and may not render to an
empty name or contain the wildcards ``+``/``#``; ``qos`` is 0 (fire and forget), 1 (the
broker's PUBACK is awaited) or 2 (PUBREC/PUBREL/PUBCOMP), anything else is refused when
the task or handler is defined; ``retained`` sets the retain flag, so a subscriber
arriving later still receives the last alert of the topic.

Connections belong to the section's service: one MQTT 3.1.1 session per broker (clean
session, keep-alive 30 s, client id ``client-id`` or else the element's ``name`` (as Kapacitor),
``username``/``password`` when set), opened by the first alert and reused by every
handler of that broker. The sessions are paho-mqtt clients driven from trio's worker
threads (one call at a time per broker, no thread of their own). The service pings idle
sessions to keep them alive; a publish on a session that dropped reconnects (QoS 1 and 2
notice it by the missing acknowledgement and publish once more on a new session, QoS 0
pings an idle session first), and it sends DISCONNECT when it closes (shutdown, or a
config override of [[mqtt]]). URLs:
``tcp://`` and ``mqtt://`` (port 1883 by default), ``ssl://``, ``tls://`` and
``mqtts://`` (port 8883) with ``ssl-ca``, ``ssl-cert``, ``ssl-key`` and
``insecure-skip-verify``; MQTT over WebSocket with ``ws://host[:port][/path]`` (port 80)
and ``wss://`` (port 443, TLS with the same settings): paho's websockets transport,
upgraded at the URL's path and query, ``/mqtt`` when it has none, with subprotocol
``mqtt``. A refused CONNECT or WebSocket upgrade, an unreachable or silent broker, a
disabled or unknown broker fail the event with a HandlerError naming the broker, which
the alert framework logs as "alert handler failed".
"""

from __future__ import annotations

from kapa_core.plugin_api import HandlerKind, Section, hookimpl

from . import broker
from .broker import CLOSE_TIMEOUT, BrokerClient, ConnectionLost, MQTTError, Session
from .config import BrokerAddress, MQTTConfig, broker_address, check_elements
from .handler import MQTTHandler, MQTTOptions
from .service import MQTTService

__all__ = ["CLOSE_TIMEOUT", "BrokerAddress", "BrokerClient", "ConnectionLost", "MQTTConfig",
           "MQTTError", "MQTTHandler", "MQTTOptions", "MQTTService", "Session",
           "broker", "broker_address", "kapa_config_sections", "kapa_handler_kinds"]


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="mqtt", schema=MQTTConfig, multiple=True, element_key="name",
                    default_elements=1, check=check_elements, service=MQTTService.from_context,
                    doc="Publish alerts to MQTT brokers.")]


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="mqtt", options=MQTTOptions, factory=MQTTHandler,
                        section="mqtt", args=("topic",),
                        doc="Publish the alert message to an MQTT topic.")]
