"""The ``[[mqtt]]`` section's service: picks brokers and owns their sessions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from kapa_core.plugin_api import HandlerError, KapaError, ServiceContext

from .broker import BrokerClient, Log, MQTTError, check_topic_name
from .config import MQTTConfig

#: one "exactly-one", while its encoder writes "exactly-once", which it then refuses).
TEST_QOS = {"at-most-once": 0, "at-least-once": 1, "exactly-one": 2}
_TEST_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "broker-name": str, "topic": str, "message": str, "qos": str, "retained": bool}
_GO_TYPES = {"broker-name": "string", "topic": "string", "message": "string",
             "qos": "mqtt.QoSLevel", "retained": "bool"}


def _json_kind(value: Any) -> str:
    """How Go's encoding/json names the kind of a decoded JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _go_quote(text: str) -> str:
    """``text`` as Go's %q writes a plain string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class _QuietLog:
    """Stands in for a logger when a handler runs without one."""

    def _ignore(self, msg: str, **kv: Any) -> None:
        pass

    debug = info = warn = error = _ignore


class MQTTService:
    """The [[mqtt]] section's service: picks brokers and owns their sessions."""

    def __init__(self, config: tuple[MQTTConfig, ...], log: Log | None = None,
                 check_outgoing: Callable[[str], None] | None = None) -> None:
        self.config = tuple(config or ())
        self.log: Log = log if log is not None else _QuietLog()
        self._check_outgoing = check_outgoing
        self._clients: dict[str, BrokerClient] = {}
        self._nursery: trio.Nursery | None = None

    @classmethod
    def from_context(cls, context: ServiceContext) -> MQTTService:
        return cls(context.config, context.logger, context.check_outgoing)

    async def serve(self, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for client in self._clients.values():
                    nursery.start_soon(client.keep_alive)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    # -- /kapacitor/v1/service-tests/mqtt, as Kapacitor's mqtt service answers it -------
    def default_broker_name(self) -> str:
        """Kapacitor's default broker: the element with ``default = true``, or the only
        element there is (enabled or not); empty when neither."""
        name = next((e.name for e in self.config if e.default), "")
        return self.config[0].name if len(self.config) == 1 else name

    def test_options(self) -> dict[str, Any]:
        return {"broker-name": self.default_broker_name(), "topic": "",
                "message": "test MQTT message", "qos": "at-most-once", "retained": False}

    async def test(self, options: dict[str, Any]) -> None:
        """Publish ``message`` as it is (no template) to ``topic`` of the broker."""
        defaults = self.test_options()
        options = {key: defaults[key] if options.get(key) is None else options[key]
                   for key in defaults}  # a JSON null leaves a Go field as it was
        for key, kind in _TEST_OPTION_TYPES.items():
            value = options.get(key)
            if not isinstance(value, kind) or (kind is str and isinstance(value, bool)):
                raise KapaError(f"failed to decode JSON body:json: cannot unmarshal "
                                f"{_json_kind(value)} into Go struct field "
                                f"testOptions.{key} of type {_GO_TYPES[key]}")
        qos_name = options["qos"]
        if qos_name not in TEST_QOS:
            raise KapaError("failed to decode JSON body:invalid QoS")
        topic = options["topic"]
        if not topic:
            raise KapaError("missing MQTT topic")
        name = options["broker-name"] or self.default_broker_name()
        if not any(e.name == name and e.enabled for e in self.config):
            raise KapaError(f"unknown MQTT broker {_go_quote(name)}")
        try:
            check_topic_name(topic)
        except MQTTError as exc:
            raise HandlerError(f"mqtt: cannot publish: {exc}") from None
        await self.publish(name, topic, options["message"].encode(), TEST_QOS[qos_name],
                           options["retained"])

    def check_outgoing(self, url: str) -> None:
        if self._check_outgoing is None:
            return
        try:
            self._check_outgoing(url)
        except KapaError as exc:
            raise HandlerError(f"mqtt: {exc}") from None

    def element(self, name: str) -> MQTTConfig:
        """The [[mqtt]] element ``name``, or the default one when ``name`` is empty."""
        if name:
            for element in self.config:
                if element.name == name:
                    break
            else:
                known = ", ".join(repr(e.name) for e in self.config) or "none"
                raise HandlerError(f"mqtt: unknown broker {name!r} (configured: {known})")
        else:
            defaults = [e for e in self.config if e.default]
            if defaults:
                element = defaults[0]
            elif len(self.config) == 1:
                element = self.config[0]
            else:
                raise HandlerError("mqtt: no broker name given and no default broker: set "
                                   ".brokerName() or default = true on one [[mqtt]] element")
        if not element.enabled:
            raise HandlerError(f"mqtt: broker {element.name!r} is not enabled "
                               "([[mqtt]] enabled = false)")
        return element

    def client(self, name: str) -> BrokerClient:
        config = self.element(name)
        client = self._clients.get(config.name)
        if client is None:
            client = BrokerClient(config, self.log, self.check_outgoing)
            self._clients[config.name] = client
            if self._nursery is not None:
                self._nursery.start_soon(client.keep_alive)
        return client

    async def publish(self, broker_name: str, topic: str, payload: bytes, qos: int,
                      retain: bool) -> None:
        await self.client(broker_name).publish(topic, payload, qos, retain)
