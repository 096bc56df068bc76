"""How the ``kapacitor`` client writes values: Go's ``fmt``, ``time`` and ``encoding/json``
forms of what the API answers, so that ``kapa`` prints the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kapa_core.cli.kapa.flags import go_quote
from kapa_core.cli.kapa.registry import CommandError
from kapa_core.gotemplate.funcs import sprintf
from kapa_core.gotemplate.gofmt import format_float, go_format
from kapa_core.models.duration import Duration

__all__ = [
    "dbrps_text", "decoder_error", "go_type_name", "go_json", "go_sprintf", "humanize_bytes", "join_path", "os_error",
    "rfc822", "var_value", "width",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?"
                   r"(?:([Zz])|([+-])(\d\d):(\d\d))$")


def go_sprintf(fmt: str, *args: Any) -> str:
    """``fmt.Sprintf``."""
    return sprintf(fmt, *args)


def width(text: str) -> int:
    """``len(s)`` in Go: bytes of UTF-8 (the client sizes its columns with it)."""
    return len(text.encode("utf-8"))


def _local_zone(epoch: float) -> tuple[str, int]:
    try:
        local = time.localtime(epoch)
    except (OverflowError, OSError, ValueError):
        return "UTC", 0
    return local.tm_zone or "UTC", local.tm_gmtoff or 0


def _zone_text(name: str, offset: int) -> str:
    if name:
        return name
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return f"{sign}{offset // 3600:02d}{offset // 60 % 60:02d}"


def rfc822(text: str | None, *, local: bool = False) -> str:
    """A JSON time as ``t.Format(time.RFC822)`` writes it (``t.Local()`` first if
    ``local``): ``02 Jan 06 15:04 MST``. A time that is not RFC 3339 fails as Go's
    decoder does."""
    if text is None:
        text = "0001-01-01T00:00:00Z"
    match = _TIME.match(text)
    if match is None:
        raise CommandError(f"failed to decode JSON: parsing time {go_quote(text)} as "
                           '"2006-01-02T15:04:05Z07:00": cannot parse')
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if match.group(8):
        offset = 0
        name = "UTC"
    else:
        offset = (int(match.group(10)) * 3600 + int(match.group(11)) * 60) * (
            -1 if match.group(9) == "-" else 1)
        name = ""
    try:
        moment = dt.datetime(year, month, day, hour, minute, second,
                             tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    except ValueError as exc:
        raise CommandError(f"failed to decode JSON: parsing time {go_quote(text)}: {exc}"
                           ) from None
    try:
        epoch = moment.timestamp()
    except (OverflowError, ValueError):
        epoch = None
    if local and epoch is not None:
        try:
            lt = time.localtime(epoch)
        except (OverflowError, OSError, ValueError):
            lt = None
        if lt is not None:
            return (f"{lt.tm_mday:02d} {_MONTHS[lt.tm_mon - 1]} {lt.tm_year % 100:02d} "
                    f"{lt.tm_hour:02d}:{lt.tm_min:02d} "
                    f"{_zone_text(lt.tm_zone or '', lt.tm_gmtoff or 0)}")
    if not name and epoch is not None:
        zone, zone_offset = _local_zone(epoch)
        if zone_offset == offset:
            # Go's decoder makes a time whose offset is the local zone's a Local time.
            name = zone
    return (f"{moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year % 100:02d} "
            f"{moment.hour:02d}:{moment.minute:02d} {_zone_text(name, offset)}")


def dbrps_text(dbrps: Iterable[Mapping[str, Any]] | None) -> str:
    """``fmt.Sprint([]client.DBRP)``: ``["db"."rp" "db2"."autogen"]``."""
    items = [f'{go_quote(str(d.get("db", "")))}.{go_quote(str(d.get("rp", "")))}'
             for d in dbrps or ()]
    return "[" + " ".join(items) + "]"


def var_value(var: Mapping[str, Any], name: str) -> Any:
    """A task or template var's value as the Go client holds it, for ``%v``.

    Durations become :class:`Duration` (printed ``1m0s``), ints and floats keep their
    type, a list becomes ``[a, b]`` (strings and stars only, as ``varListToStr``).
    """
    kind = var.get("type")
    value = var.get("value")
    if value is None:
        return None
    if kind == "duration":
        if isinstance(value, bool):
            raise CommandError(f"invalid var {name}: expected int or string value")
        if isinstance(value, (int, float)):
            return Duration(int(value))
        if isinstance(value, str):
            try:
                return Duration.parse(value, tick=True)
            except ValueError as exc:
                raise CommandError(f"invalid duration string for var {name}: {exc}"
                                   ) from None
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "list":
        if not isinstance(value, list):
            raise CommandError(f"invalid var {name}: expected list of vars")
        parts = []
        for item in value:
            if not isinstance(item, dict):
                raise CommandError(f"invalid var {name}: expected list of vars")
            item_type = item.get("type")
            if item_type == "string":
                if not isinstance(item.get("value"), str):
                    raise CommandError(f"invalid var {name}: non string value in string var")
                parts.append(item["value"])
            elif item_type == "star":
                parts.append("*")
            else:
                raise CommandError(f"invalid var {name}: lists can only contain strings or "
                                   f"a star, got {item_type}")
        return "[" + ", ".join(parts) + "]"
    return value


def _json_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise CommandError(f"json: unsupported value: {go_format(value)}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e", -1)
        text = re.sub(r"e([+-])0(\d)$", r"e\1\2", text)
        return text
    return format_float(value, "f", -1)


def go_json(value: Any) -> str:
    """``json.Marshal`` of a value decoded into ``interface{}`` (numbers are float64):
    compact, map keys sorted, ``<``, ``>``, ``&`` escaped as Go escapes them."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _json_float(float(value))
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return (text.replace("<", "\\u003c").replace(">", "\\u003e")
                .replace("&", "\\u0026").replace("\u2028", "\\u2028")
                .replace("\u2029", "\\u2029"))
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{go_json(str(k))}:{go_json(value[k])}"
                              for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return go_json(str(value))


def humanize_bytes(size: int) -> str:
    """``humanize.Bytes``: SI units (``kB`` = 1000 bytes), ``1.5 kB``, ``12 MB``."""
    if size < 10:
        return f"{size} B"
    sizes = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    exp = int(math.floor(math.log(size) / math.log(1000)))
    exp = min(exp, len(sizes) - 1)
    val = math.floor(size / 1000**exp * 10 + 0.5) / 10
    return f"{val:.1f} {sizes[exp]}" if val < 10 else f"{val:.0f} {sizes[exp]}"


def join_path(*parts: str) -> str:
    """Go's ``path.Join``: non-empty parts joined with ``/``, then cleaned."""
    joined = "/".join(p for p in parts if p)
    if not joined:
        return ""
    rooted = joined.startswith("/")
    out: list[str] = []
    for piece in joined.split("/"):
        if piece in ("", "."):
            continue
        if piece == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(piece)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def os_error(op: str, path: str, exc: OSError) -> str:
    """An ``*os.PathError`` as Go writes it: ``open x.tick: no such file or directory``."""
    reason = (exc.strerror or str(exc)).lower() if exc.errno else str(exc)
    return f"{op} {path}: {reason}"


def go_type_name(message: str, type_name: str) -> str:
    """A decoding error about a map, said of the Go type the client decodes into."""
    return message.replace("map[string]interface {}", type_name)


def decoder_error(message: str, type_name: str, data: bytes) -> str:
    """A decoding error as ``json.NewDecoder(r).Decode`` words it (a stream that ends
    early is ``unexpected EOF``; an empty one ``EOF``)."""
    if not data.strip(b" \t\r\n"):
        return "EOF"
    if message == "unexpected end of JSON input":
        return "unexpected EOF"
    return go_type_name(message, type_name)
