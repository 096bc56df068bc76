"""collectd's binary network protocol: parts, values, types.db files and signatures.

A collectd datagram is a sequence of parts, each ``type (uint16) | length (uint16,
header included) | body``, big-endian. String parts (host, plugin, plugin instance,
type, type instance) are NUL-terminated; time and interval parts are uint64 (``-hr``
parts in units of 2^-30 s); a values part is ``count (uint16)``, ``count`` value kinds
(one byte each: 0 counter, 1 gauge, 2 derive, 3 absolute), then ``count`` 8-byte values
(gauge: a little-endian double; counter and absolute: big-endian uint64; derive:
big-endian int64). Host, plugin, type... set state that later parts keep; each values
part yields one point per value. Notifications (message, severity) are ignored, as
InfluxDB's collectd input ignores them; unknown part types are skipped.

Points are named as Kapacitor 1.5.7 (its vendored InfluxDB collectd input) names them:
measurement ``<plugin>_<data source name>`` (the names come from types.db), one float
field ``value``, tags ``host``, ``instance`` (plugin instance), ``type`` and
``type_instance``, each only when non-empty; the time of the packet (a high-resolution
time rounded to the microsecond, as InfluxDB rounds it).

Signatures (part 0x0200) are HMAC-SHA256 over the user name and everything after the
signature part, keyed by the user's password (collectd's ``SecurityLevel Sign``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from kapa_core.plugin_api import Point

PART_HOST = 0x0000
PART_TIME = 0x0001
PART_PLUGIN = 0x0002
PART_PLUGIN_INSTANCE = 0x0003
PART_TYPE = 0x0004
PART_TYPE_INSTANCE = 0x0005
PART_VALUES = 0x0006
PART_INTERVAL = 0x0007
PART_TIME_HR = 0x0008
PART_INTERVAL_HR = 0x0009
PART_MESSAGE = 0x0100
PART_SEVERITY = 0x0101
PART_SIGNATURE = 0x0200
PART_ENCRYPTION = 0x0210

COUNTER, GAUGE, DERIVE, ABSOLUTE = 0, 1, 2, 3
#: Data-source types of a types.db line, as collectd spells them (any case).
DS_TYPES = {"counter": COUNTER, "gauge": GAUGE, "derive": DERIVE, "absolute": ABSOLUTE}

SECURITY_LEVELS = ("none", "sign", "encrypt")

#: The time range a point may have (InfluxDB's MinNanoTime and MaxNanoTime).
MIN_TIME = -9223372036854775806
MAX_TIME = 9223372036854775806

_HEADER = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_GAUGE = struct.Struct("<d")
_NUMBER_PARTS = {PART_TIME: "time", PART_TIME_HR: "time-hr", PART_INTERVAL: "interval",
                 PART_INTERVAL_HR: "interval-hr", PART_SEVERITY: "severity"}

#: Data-source names per type (``{"load": ("shortterm", "midterm", "longterm")}``).
Types = dict[str, tuple[str, ...]]


class TypesDBError(ValueError):
    """A types.db file that cannot be read or parsed (the message names file and line)."""


def parse_types_db(text: str, source: str = "types.db") -> Types:
    """The data sets of a types.db file: ``type ds:KIND:min:max[, ds:KIND:min:max...]``
    per line, ``#`` comments. A bad line fails the file, as collectd's reader does."""
    types: Types = {}
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.replace(",", " ").split()
        if len(words) < 2:
            raise TypesDBError(f"{source}:{number}: a data set needs a name and at least "
                               f"one data source: {line!r}")
        names = []
        for ds in words[1:]:
            parts = ds.split(":")
            if len(parts) != 4:
                raise TypesDBError(f"{source}:{number}: data source {ds!r} is not "
                                   "name:type:min:max")
            if parts[1].lower() not in DS_TYPES:
                raise TypesDBError(f"{source}:{number}: invalid data-source type "
                                   f"{parts[1]!r} (expected COUNTER, GAUGE, DERIVE or "
                                   "ABSOLUTE)")
            names.append(parts[0])
        types[words[0]] = tuple(names)
    return types


def load_types_db(path: str, warn: Callable[[str], None] = lambda message: None) -> Types:
    """The types of ``path``: one types.db file (an error fails the load) or a directory
    read recursively, in name order, a later file's type replacing an earlier one's; a
    file of the directory that does not parse is reported to ``warn`` and skipped, as
    Kapacitor skips it."""
    if not os.path.exists(path):
        raise TypesDBError(f"{path!r}: no such file or directory")
    if not os.path.isdir(path):
        return _read_types_file(path)
    types: Types = {}
    for directory, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(directory, name)
            try:
                types.update(_read_types_file(full))
            except TypesDBError as exc:
                warn(str(exc))
    return types


def _read_types_file(path: str) -> Types:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise TypesDBError(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    return parse_types_db(text, path)


def read_auth_file(path: str) -> dict[str, str]:
    """collectd's AuthFile: ``user: password`` per line; blank lines and ``#`` comments
    are skipped. Raises ValueError naming the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read auth-file {path!r}: {exc}") from exc
    users: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        if not colon or not user.strip():
            raise ValueError(f"{path}:{number}: expected 'user: password'")
        users[user.strip()] = password.strip()
    return users


@dataclass
class Parsed:
    """What one datagram held: its ``points``; ``error`` (empty when every part was
    read) why reading stopped or a part was refused; ``invalid`` values dropped (NaN,
    a type types.db lacks, a time out of range), ``invalid_reason`` the first reason."""

    points: list[Point] = field(default_factory=list)
    error: str = ""
    invalid: int = 0
    invalid_reason: str = ""


def hr_to_ns(value: int) -> int:
    """A collectd high-resolution time (2^-30 s units) in nanoseconds, rounded to the
    microsecond as InfluxDB rounds it."""
    ns = (value >> 30) * 1_000_000_000 + (((value & 0x3FFFFFFF) * 1_000_000_000
                                          + (1 << 29)) >> 30)
    return (ns + 500) // 1000 * 1000


class Parser:
    """Reads datagrams into points with the data-source names of ``types``.

    ``security_level`` ``"none"`` accepts every datagram and skips signatures unchecked;
    ``"sign"`` accepts only values that follow a signature valid for a user of
    ``passwords``.
    """

    def __init__(self, types: Types, security_level: str = "none",
                 passwords: dict[str, str] | None = None) -> None:
        if security_level not in ("none", "sign"):
            raise ValueError(f"security level {security_level!r} is not supported")
        self.types = types
        self.security_level = security_level
        self.passwords = dict(passwords or {})
        #: measurement names per (plugin, type), built on first use
        self._names: dict[tuple[str, str], tuple[str, ...] | None] = {}

    def _measurements(self, plugin: str, type_: str) -> tuple[str, ...] | None:
        key = (plugin, type_)
        names = self._names.get(key, ())
        if names == ():
            sources = self.types.get(type_)
            names = None if sources is None else tuple(f"{plugin}_{ds}" for ds in sources)
            if len(self._names) > 10_000:  # bounded whatever plugin names arrive
                self._names.clear()
            self._names[key] = names
        return names

    def parse(self, data: bytes) -> Parsed:
        """The points of one datagram (never raises, whatever the bytes)."""
        out = Parsed()
        append = out.points.append
        host = plugin = instance = type_ = type_instance = ""
        tags: dict[str, str] | None = {}  # None: to rebuild from the strings above
        time_s = time_hr = ns = 0
        trusted = self.security_level == "none"
        refused = 0  # values refused because they were not signed
        n = len(data)
        pos = 0
        while pos < n:
            if n - pos < 4:
                out.error = f"truncated part header at byte {pos}"
                break
            ptype, plen = _HEADER.unpack_from(data, pos)
            if plen < 5:
                out.error = f"invalid length {plen} of part 0x{ptype:04x} at byte {pos}"
                break
            end = pos + plen
            if end > n:
                out.error = (f"part 0x{ptype:04x} at byte {pos} is truncated ({plen} bytes "
                             f"announced, {n - pos} received)")
                break
            if ptype == PART_VALUES:
                if plen < 6:
                    out.error = f"truncated values part at byte {pos}"
                    break
                count = _U16.unpack_from(data, pos + 4)[0]
                if plen < 6 + 9 * count:
                    out.error = (f"values part at byte {pos} holds {plen} bytes, too few "
                                 f"for {count} values")
                    break
                offset = pos + 6 + count
                kinds = data[pos + 6:offset]
                if count and max(kinds) > ABSOLUTE:
                    bad = next(k for k in kinds if k > ABSOLUTE)
                    out.error = f"unknown value type {bad} in values part at byte {pos}"
                    break
                pos = end
                if not trusted:
                    refused += count
                    continue
                names = self._measurements(plugin, type_)
                if names is None or len(names) < count:
                    self._invalid(out, count, f"type {type_!r} is not in types.db"
                                  if names is None else
                                  f"type {type_!r} has {len(names)} data sources in "
                                  f"types.db, the packet {count} values")
                    continue
                if not MIN_TIME <= ns <= MAX_TIME:
                    self._invalid(out, count, f"time {ns} ns is out of range")
                    continue
                if tags is None:
                    tags = {}
                    if host:
                        tags["host"] = host
                    if instance:
                        tags["instance"] = instance
                    if type_:
                        tags["type"] = type_
                    if type_instance:
                        tags["type_instance"] = type_instance
                for i in range(count):
                    kind = kinds[i]
                    if kind == GAUGE:
                        value = _GAUGE.unpack_from(data, offset)[0]
                        if value != value:  # NaN: InfluxDB refuses the point
                            self._invalid(out, 1, f"NaN value of {names[i]}")
                            offset += 8
                            continue
                    elif kind == DERIVE:
                        value = float(_I64.unpack_from(data, offset)[0])
                    else:
                        value = float(_U64.unpack_from(data, offset)[0])
                    offset += 8
                    append(Point(names[i], tags.copy(), {"value": value}, ns))
                continue
            if ptype <= PART_TYPE_INSTANCE and ptype != PART_TIME:
                text = data[pos + 4:end - 1].decode("utf-8", "replace")
                if ptype == PART_TYPE_INSTANCE:
                    type_instance = text
                elif ptype == PART_HOST:
                    host = text
                elif ptype == PART_PLUGIN:
                    plugin = text
                elif ptype == PART_PLUGIN_INSTANCE:
                    instance = text
                else:
                    type_ = text
                tags = None
            elif ptype in _NUMBER_PARTS:
                if plen < 12:
                    out.error = (f"{_NUMBER_PARTS[ptype]} part at byte {pos} holds "
                                 f"{plen - 4} bytes, expected 8")
                    break
                if ptype == PART_TIME_HR:
                    time_hr = _U64.unpack_from(data, pos + 4)[0]
                elif ptype == PART_TIME:
                    time_s = _U64.unpack_from(data, pos + 4)[0]
                # the high-resolution time when there is one, as Kapacitor prefers it
                ns = hr_to_ns(time_hr) if time_hr > 0 else time_s * 1_000_000_000
            elif ptype == PART_SIGNATURE:
                if self.security_level == "sign":
                    problem = self._verify(data, pos, end)
                    if problem:
                        out.error = problem
                        break
                    trusted = True
            elif ptype == PART_ENCRYPTION:
                out.error = "encrypted part skipped (encrypted data is not supported)"
            # anything else (message, unknown part types) is skipped
            pos = end
        if refused and not out.error:
            out.error = f"{refused} unsigned values refused (security-level is sign)"
        return out

    @staticmethod
    def _invalid(out: Parsed, count: int, reason: str) -> None:
        out.invalid += count
        if not out.invalid_reason:
            out.invalid_reason = reason

    def _verify(self, data: bytes, pos: int, end: int) -> str:
        if end - pos < 36:
            return f"signature part at byte {pos} is too short"
        user = data[pos + 36:end].decode("utf-8", "replace")
        password = self.passwords.get(user)
        if password is None:
            return f"signature by unknown user {user!r}"
        digest = hmac.new(password.encode(), data[pos + 36:], hashlib.sha256).digest()
        if not hmac.compare_digest(digest, data[pos + 4:pos + 36]):
            return f"signature of user {user!r} does not match"
        return ""


def encode_string(part: int, text: str) -> bytes:
    """A string part (host, plugin, plugin instance, type, type instance)."""
    body = text.encode() + b"\0"
    return _HEADER.pack(part, 4 + len(body)) + body


def encode_number(part: int, value: int) -> bytes:
    """A time, time-hr, interval, interval-hr or severity part."""
    return _HEADER.pack(part, 12) + _U64.pack(value)


def encode_values(values: list[tuple[int, float | int]]) -> bytes:
    """A values part from ``(kind, value)`` pairs."""
    body = _U16.pack(len(values)) + bytes(kind for kind, _ in values)
    for kind, value in values:
        if kind == GAUGE:
            body += _GAUGE.pack(float(value))
        elif kind == DERIVE:
            body += _I64.pack(int(value))
        else:
            body += _U64.pack(int(value))
    return _HEADER.pack(PART_VALUES, 4 + len(body)) + body


def sign(payload: bytes, user: str, password: str) -> bytes:
    """``payload`` behind a signature part, as collectd's ``SecurityLevel Sign`` sends."""
    name = user.encode()
    digest = hmac.new(password.encode(), name + payload, hashlib.sha256).digest()
    return _HEADER.pack(PART_SIGNATURE, 36 + len(name)) + digest + name + payload


__all__ = ["ABSOLUTE", "COUNTER", "DERIVE", "GAUGE", "Parsed", "Parser", "SECURITY_LEVELS",
           "Types", "TypesDBError", "encode_number", "encode_string", "encode_values",
           "hr_to_ns", "load_types_db", "parse_types_db", "read_auth_file", "sign"]
