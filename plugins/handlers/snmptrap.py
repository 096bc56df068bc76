"""SNMP traps: the [snmptrap] section and the ``snmptrap`` handler.

Each alert event becomes one SNMPv2c Trap (PDU tag ``0xA7``) sent in a UDP datagram to
``addr`` with the configured ``community`` and a random request-id, as Kapacitor sends
it. The variable bindings are, in order:

1. ``sysUpTime.0`` (1.3.6.1.2.1.1.3.0): TimeTicks, always 1000, as Kapacitor 1.5.7
   sends it (not the daemon's uptime);
2. ``snmpTrapOID.0`` (1.3.6.1.6.3.1.1.4.1.0): the handler's trap OID;
3. one binding per ``.data(oid, type, value)``, in the order written. ``value`` is a Go
   template rendered with the event's template data (``{{ .Message }}``,
   ``{{ .Level }}``, ``{{ index .Fields "value" }}``…) and then read according to the
   net-snmp type letter:

   ====  ===========================  =============================================
   c     Counter64 (``0x46``)         a 64-bit integer, as unsigned (Kapacitor sends
                                      Counter64 for ``c``, not net-snmp's Counter32)
   i     INTEGER (``0x02``)           a 64-bit integer, its low 32 bits as signed
   n     NULL (``0x05``)              the value is ignored
   s     OCTET STRING (``0x04``)      the text as UTF-8
   t     TimeTicks (``0x43``)         a 64-bit integer, its low 32 bits as unsigned
   ====  ===========================  =============================================

   These are the letters Kapacitor 1.5.7 takes; a task with another one is refused in
   its words (``unsupported data type "u" for data entry "1.3.6.1.4.1.1.6"``). The
   numbers are read as Kapacitor reads them (Go's ``strconv.ParseInt``: an optional
   sign and ASCII digits, within 64 bits) and wrap around to the type's size as its Go
   conversions do (``i`` 2147483648 is -2147483648, ``t`` -1 is 4294967295).

TICKscript: ``.snmpTrap('1.3.6.1.4.1.1').data('1.3.6.1.4.1.1.5', 's', '{{ .Message }}')``
(``.data`` repeats). Topic handler: kind ``snmptrap`` with options ``trap-oid`` and
``data-list: [{"oid", "type", "value"}]``. The trap OID's presence, type letters and
template syntax are checked when the task or handler is defined; the OIDs, rendering
and value conversion when a trap is sent, failing the event with a
:class:`HandlerError` (as Kapacitor does), as does a disabled [snmptrap] section.

``retries`` is Kapacitor's (its SNMP library's): traps are not acknowledged, so a trap
that was sent is never repeated; a send that fails (address resolution, a socket error,
the send timing out) is attempted up to ``retries`` more times before the event fails.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    Template,
    TemplateError,
    hookimpl,
    option,
    parse_template,
    setting,
)

from . import snmp_ber as ber

#: Seconds one send attempt (resolve, connect, send) may take.
TIMEOUT = 5.0

_DECIMAL = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, kw_only=True)
class SNMPTrapConfig:
    enabled: bool = False
    addr: str = setting("localhost:162", doc="host:port of the trap receiver (UDP).")
    community: str = setting("kapacitor", redact=True)
    retries: int = setting(1, doc="Further attempts when sending a trap fails.")

    def validate(self) -> None:
        if self.enabled:
            host, _, port = self.addr.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError("addr", f"invalid address {self.addr!r} (expected "
                                  "host:port)")
        if self.retries < 0:
            raise ConfigError("retries", "must not be negative")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="snmptrap", schema=SNMPTrapConfig, doc="Send alerts as SNMP traps.")]


def _go_int64(text: str, bits: int, signed: bool, what: str) -> int:
    """``text`` read as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, then converted
    to a ``bits``-wide integer as Go's conversions do (the low bits kept)."""
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"{what}: strconv.ParseInt: parsing {text!r}: invalid syntax")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{what}: strconv.ParseInt: parsing {text!r}: value out of range")
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


#: type letter -> (what it is, value text -> encoded TLV): the letters Kapacitor 1.5.7
#: takes (it refuses a task with any other)
TYPES: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "c": ("Counter64", lambda v: ber.counter64(_go_int64(v, 64, False, "Counter64"))),
    "i": ("INTEGER", lambda v: ber.integer(_go_int64(v, 32, True, "INTEGER"))),
    "n": ("NULL", lambda v: ber.null()),
    "s": ("OCTET STRING", ber.octet_string),
    "t": ("TimeTicks", lambda v: ber.timeticks(_go_int64(v, 32, False, "TimeTicks"))),
}


@dataclass(frozen=True)
class SNMPData:
    """One ``.data(oid, type, value)`` binding; ``value`` is a Go template."""

    oid: str
    type: str
    value: str = ""


@dataclass(frozen=True, kw_only=True)
class SNMPTrapOptions:
    trap_oid: str = ""
    data_list: tuple[SNMPData, ...] = option((), tick="data", key="data-list")

    def validate(self) -> None:
        # What Kapacitor checks when a task is defined, in its words; the OIDs are only
        # read when a trap is sent (an unusable one fails the event), as in Kapacitor.
        if not self.trap_oid:
            raise ConfigError("trap-oid", "you must supply a trap Oid")
        for index, data in enumerate(self.data_list):
            where = f"data-list[{index}]"
            for name in ("oid", "type", "value"):
                if not isinstance(getattr(data, name), str):
                    raise ConfigError(f"{where}.{name}", f"snmptrap: data {name} must be "
                                      f"a string, got {getattr(data, name)!r}")
            if data.type not in TYPES:
                raise ConfigError(f"{where}.type", f"unsupported data type "
                                  f"{json.dumps(data.type)} for data entry "
                                  f"{json.dumps(data.oid)}")
            try:
                parse_template(data.value, "data")
            except TemplateError as exc:
                raise ConfigError(f"{where}.value", f"snmptrap: invalid value template "
                                  f"for OID {data.oid}: {exc}") from None


#: The sysUpTime.0 of every trap: Kapacitor 1.5.7 sends this constant.
SYS_UPTIME_TICKS = 1000


class SNMPTrapHandler:
    """Renders the data bindings for each event and sends one SNMPv2c trap."""

    def __init__(self, options: SNMPTrapOptions,
                 context: HandlerContext[SNMPTrapConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.templates: list[tuple[SNMPData, Template]] = [
            (data, parse_template(data.value, "data")) for data in options.data_list]

    def message(self, event: Event, community: str) -> bytes:
        """The trap datagram for ``event``; HandlerError when a value is unusable."""
        try:
            trap_oid = ber.oid(self.options.trap_oid)
        except ValueError as exc:
            raise HandlerError(f"snmptrap: trap {exc}") from None
        varbinds = [ber.varbind(ber.SYS_UPTIME_0, ber.timeticks(SYS_UPTIME_TICKS)),
                    ber.varbind(ber.SNMP_TRAP_OID_0, trap_oid)]
        template_data = event.template_data()
        for data, template in self.templates:
            try:
                text = template.execute(template_data)
            except TemplateError as exc:
                raise HandlerError(f"snmptrap: data {data.oid}: {exc}") from None
            try:
                value = TYPES[data.type][1](text)
            except ValueError as exc:
                raise HandlerError(f"snmptrap: data {data.oid} (type {data.type!r}): "
                                   f"{exc}") from None
            try:
                varbinds.append(ber.varbind(data.oid, value))
            except ValueError as exc:
                raise HandlerError(f"snmptrap: data {exc}") from None
        return ber.trap_v2c(community, secrets.randbelow(2**31), varbinds)

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("snmptrap: the [snmptrap] section is not enabled")
        datagram = self.message(event, config.community)
        host, _, port = config.addr.rpartition(":")
        host = host.strip("[]")
        error = ""
        for _attempt in range(config.retries + 1):
            with trio.move_on_after(TIMEOUT) as scope:
                try:
                    await _send(host, int(port), datagram)
                    return
                except OSError as exc:
                    error = str(exc) or type(exc).__name__
            if scope.cancelled_caught:
                error = f"timed out after {TIMEOUT:g}s"
        raise HandlerError(f"snmptrap: cannot send the trap to {config.addr}: {error}")


async def _send(host: str, port: int, datagram: bytes) -> None:
    """Send one UDP datagram to host:port (the first address the name resolves to)."""
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    with trio.socket.socket(family, kind, proto) as sock:
        await sock.connect(address)
        await sock.send(datagram)


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="snmptrap", property="snmpTrap", options=SNMPTrapOptions,
                        factory=SNMPTrapHandler, section="snmptrap", args=("trap_oid",),
                        doc="Send alerts as SNMPv2c traps.")]
