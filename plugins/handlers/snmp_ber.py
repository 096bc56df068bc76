"""BER encoding of SNMP values and of an SNMPv2c Trap message (X.690, RFC 3416).

Every encoder returns a complete TLV (tag, length, contents) as ``bytes``:

* lengths use the short form below 128 and the long form (``0x80 | n`` then ``n``
  big-endian bytes) from 128 on;
* INTEGER is the minimal two's complement of the value (``-129`` is ``02 02 ff 7f``);
* the unsigned application types (Counter32, Gauge32, TimeTicks, Counter64) are
  encoded like a non-negative INTEGER, with a leading zero octet when the top bit of
  the first octet is set (``Gauge32 4294967295`` is ``42 05 00 ff ff ff ff``);
* an OBJECT IDENTIFIER packs its first two arcs as ``40 * a + b`` and writes every
  sub-identifier in base 128, high bit set on all octets but the last.

:func:`trap_v2c` builds the whole datagram: ``SEQUENCE { version 1, community,
SNMPv2-Trap-PDU [7] { request-id, error-status 0, error-index 0, SEQUENCE OF
VarBind } }``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
COUNTER64 = 0x46
TRAP_V2_PDU = 0xA7

#: SNMPv2c: the message ``version`` field is 1 (RFC 1901).
VERSION_2C = 1
SYS_UPTIME_0 = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID_0 = "1.3.6.1.6.3.1.1.4.1.0"

_MAX_U32 = 2**32 - 1
_MAX_U64 = 2**64 - 1
_OID_TEXT = re.compile(r"\.?\d+(\.\d+)*")


def length(n: int) -> bytes:
    """The BER length octets of a contents of ``n`` octets (definite form)."""
    if n < 0:
        raise ValueError(f"negative length {n}")
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(body) > 126:
        raise ValueError(f"length {n} is too large")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, contents: bytes) -> bytes:
    """One element: ``tag``, the length of ``contents``, then ``contents``."""
    return bytes([tag]) + length(len(contents)) + contents


def integer_contents(value: int) -> bytes:
    """The minimal two's complement octets of ``value`` (at least one octet)."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return value.to_bytes(size, "big", signed=True)


def integer(value: int) -> bytes:
    """An INTEGER; SNMP's Integer32 range is the caller's to enforce."""
    return tlv(INTEGER, integer_contents(value))


def _unsigned(tag: int, value: int, limit: int, name: str) -> bytes:
    if not 0 <= value <= limit:
        raise ValueError(f"{name} must be between 0 and {limit}, got {value}")
    return tlv(tag, integer_contents(value))


def counter32(value: int) -> bytes:
    return _unsigned(COUNTER32, value, _MAX_U32, "Counter32")


def gauge32(value: int) -> bytes:
    """Gauge32, which SNMPv2 also calls Unsigned32."""
    return _unsigned(GAUGE32, value, _MAX_U32, "Gauge32")


def timeticks(value: int) -> bytes:
    """TimeTicks: hundredths of a second, 0 to 2**32 - 1."""
    return _unsigned(TIMETICKS, value, _MAX_U32, "TimeTicks")


def counter64(value: int) -> bytes:
    return _unsigned(COUNTER64, value, _MAX_U64, "Counter64")


def octet_string(value: bytes | str) -> bytes:
    """An OCTET STRING; text is encoded as UTF-8."""
    return tlv(OCTET_STRING, value.encode() if isinstance(value, str) else bytes(value))


def null() -> bytes:
    return tlv(NULL, b"")


def ip_address(text: str) -> bytes:
    """IpAddress: the four octets of a dotted-quad IPv4 address."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None
    return tlv(IP_ADDRESS, address.packed)


def parse_oid(text: str) -> tuple[int, ...]:
    """The arcs of a dotted OID (a leading dot is allowed) or ValueError.

    The rules are the ones an OID must meet to be encoded: 2 to 128 arcs, each
    between 0 and 2**32 - 1, a first arc of 0, 1 or 2, and a second arc below 40
    when the first is 0 or 1.
    """
    if not isinstance(text, str) or not _OID_TEXT.fullmatch(text):
        raise ValueError(f"invalid OID {text!r}: expected dotted numbers such as 1.3.6.1")
    arcs = tuple(int(part) for part in text.lstrip(".").split("."))
    if not 2 <= len(arcs) <= 128:
        raise ValueError(f"invalid OID {text!r}: it must have 2 to 128 arcs")
    if any(arc > _MAX_U32 for arc in arcs):
        raise ValueError(f"invalid OID {text!r}: an arc is larger than {_MAX_U32}")
    if arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"invalid OID {text!r}: the first arc must be 0, 1 or 2 and, "
                         "under 0 and 1, the second must be below 40")
    return arcs


def _base128(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def oid(text: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted text."""
    arcs = parse_oid(text)
    contents = _base128(arcs[0] * 40 + arcs[1]) + b"".join(_base128(a) for a in arcs[2:])
    return tlv(OBJECT_IDENTIFIER, contents)


def sequence(elements: Iterable[bytes]) -> bytes:
    return tlv(SEQUENCE, b"".join(elements))


def varbind(name: str, value: bytes) -> bytes:
    """``VarBind ::= SEQUENCE { name OBJECT IDENTIFIER, value }``; value is a TLV."""
    return sequence((oid(name), value))


def trap_v2c(community: str, request_id: int, varbinds: Iterable[bytes]) -> bytes:
    """A complete SNMPv2c message carrying an SNMPv2-Trap-PDU.

    ``varbinds`` are encoded VarBinds; RFC 3416 wants sysUpTime.0 and snmpTrapOID.0
    first, which is the caller's to arrange.
    """
    pdu = tlv(TRAP_V2_PDU, integer(request_id) + integer(0) + integer(0)
              + sequence(varbinds))
    return sequence((integer(VERSION_2C), octet_string(community), pdu))
