"""Handler options: one dataclass per handler kind, seen two ways.

In TICKscript each field is a chained method of the handler property
(``.slack().channel('#ops').iconEmoji(':fire:')``); in a topic-handler spec it is an
``options`` key (``{"channel": "#ops", "icon-emoji": ":fire:"}``). Names follow
Kapacitor's rule — camelCase for TICKscript, kebab-case for options — unless the field
says otherwise with :func:`option`. The field's type decides the arguments:

=====================  ==================================  ===========================
type                   TICKscript                          options JSON
=====================  ==================================  ===========================
str / int / float      ``.x('v')`` / ``.x(3)`` / ``.x(0.5)``  string / number
bool                   ``.x()`` (or ``.x(TRUE)``)          true/false
Duration               ``.x(10s)``                         ``"10s"`` or nanoseconds
tuple[str, ...]        ``.x('a', 'b')`` (calls add up)     ``["a", "b"]``
dict[str, ...]         ``.x('k', 'v')`` per pair           ``{"k": "v"}``
tuple[Record, ...]     ``.x(a, b)`` adds Record(a, b)      ``[{"a":…, "b":…}]``
=====================  ==================================  ===========================
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kapa_core.errors import ConfigError
from kapa_core.models.duration import Duration


def option(default: Any = dataclasses.MISSING, *, tick: str = "", key: str = "",
           doc: str = "", default_factory: Any = dataclasses.MISSING) -> Any:
    """A handler option whose TICKscript method or options key breaks the naming rule."""
    metadata = {"tick": tick, "key": key, "doc": doc}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass(frozen=True)
class OptionInfo:
    attr: str
    tick: str
    key: str
    kind: str  # str int float bool duration list map records
    record: type | None = None
    doc: str = ""


def _describe(options_cls: type) -> tuple[OptionInfo, ...]:
    hints = typing.get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        hint = hints[f.name]
        kind, record = _kind(hint)
        out.append(OptionInfo(f.name, f.metadata.get("tick") or camel(f.name),
                              f.metadata.get("key") or f.name.rstrip("_").replace("_", "-"),
                              kind, record, f.metadata.get("doc", "")))
    return tuple(out)


#: The options of a class, worked out once per class. Typed as a plain callable: the
#: cache wrapper's ``Hashable`` parameters refuse ``type(x)`` for an ``x`` typed Any.
describe: Callable[[type], tuple[OptionInfo, ...]] = functools.cache(_describe)


def _kind(hint: Any) -> tuple[str, type | None]:
    if hint is bool:
        return "bool", None
    if hint is Duration:
        return "duration", None
    if hint in (str, int, float):
        return hint.__name__, None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is dict:
        return "map", None
    if origin in (tuple, list):
        item = args[0] if args else str
        if dataclasses.is_dataclass(item):
            return "records", item
        return "list", None
    return "str", None


def by_tick(options_cls: type) -> dict[str, OptionInfo]:
    return {o.tick: o for o in describe(options_cls)}


def by_key(options_cls: type) -> dict[str, OptionInfo]:
    out = {}
    for o in describe(options_cls):
        out[o.key] = o
        out[o.key.replace("-", "_")] = o
        out[o.tick] = o
    return out


def tick_value(info: OptionInfo, current: Any, args: list[Any], method: str) -> Any:
    """The option's new value after ``.method(args…)`` in TICKscript."""
    def need(count: int) -> None:
        if len(args) != count:
            raise ValueError(f"{method}: expected {count} argument(s), got {len(args)}")

    kind = info.kind
    if kind == "bool":
        if not args:
            return True
        need(1)
        if not isinstance(args[0], bool):
            raise ValueError(f"{method}: expected a boolean")
        return args[0]
    if kind == "list":
        if not all(isinstance(a, str) for a in args):
            raise ValueError(f"{method}: every argument must be a string")
        return (*(current or ()), *args)
    if kind == "map":
        need(2)
        if not isinstance(args[0], str):
            raise ValueError(f"{method}: the key must be a string")
        return {**(current or {}), args[0]: args[1]}
    if kind == "records":
        assert info.record is not None
        names = [f.name for f in dataclasses.fields(info.record)]
        required = [f.name for f in dataclasses.fields(info.record)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        if len(args) < len(required):
            raise ValueError(f"{method}: expected {len(required)} to {len(names)} arguments,"
                             f" got {len(args)}")
        # values past the record's fields are dropped, as Go's variadic methods ignore
        # them (pagerDuty2 .link(url, text, more)); TICKscript's call check refuses extra
        # values where Kapacitor's method is not variadic
        args = args[:len(names)]
        return (*(current or ()), info.record(**dict(zip(names, args, strict=False))))
    need(1)
    return coerce(info, args[0], method)


def coerce(info: OptionInfo, value: Any, where: str) -> Any:
    """Convert a JSON/TICKscript value to the option's type or raise ValueError."""
    kind = info.kind
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind == "duration":
        if isinstance(value, Duration):
            return value
        if isinstance(value, str):
            try:
                return Duration.parse(value)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return Duration(value)
        raise ValueError(f"{where}: expected a duration such as \"10s\", got {value!r}")
    if kind == "list":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind == "map":
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if kind == "records":
        assert info.record is not None
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list of objects, got {value!r}")
        names = {f.name for f in dataclasses.fields(info.record)}
        out = []
        for item in value:
            if not isinstance(item, dict):
                raise ValueError(f"{where}: expected objects, got {item!r}")
            unknown = sorted(set(item) - names)
            if unknown:
                raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (expected "
                                 f"{', '.join(sorted(names))})")
            try:
                out.append(info.record(**item))
            except TypeError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return tuple(out)
    raise AssertionError(kind)  # pragma: no cover


def from_json(kind_name: str, options_cls: type, raw: Any) -> Any:
    """Build the options of a topic-handler spec; errors name the bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("options", f"{kind_name}: options must be an object")
    keys = by_key(options_cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        info = keys.get(key) or keys.get(_loose(key, keys))
        if info is None:
            known = ", ".join(o.key for o in describe(options_cls)) or "none"
            raise ConfigError(f"options.{key}", f"{kind_name}: unknown option {key!r} "
                              f"(options: {known})")
        try:
            values[info.attr] = coerce(info, value, f"{kind_name} option {key!r}")
        except ValueError as exc:
            raise ConfigError(f"options.{key}", str(exc)) from None
    return build(options_cls, values)


def _loose(key: str, keys: dict[str, OptionInfo]) -> str:
    """Kapacitor decodes option keys case-insensitively (``metricName``, ``metric-name``)."""
    flat = re.sub(r"[-_]", "", key).lower()
    for known in keys:
        if re.sub(r"[-_]", "", known).lower() == flat:
            return known
    return key


def build(options_cls: type, values: dict[str, Any]) -> Any:
    try:
        options = options_cls(**values)
    except TypeError as exc:
        raise ConfigError("options", str(exc)) from None
    check = getattr(options, "validate", None)
    if check is not None:
        check()
    return options


def to_json(options: Any) -> dict[str, Any]:
    """Options as the API shows them (keys as in a spec; durations as Go text)."""
    from kapa_core.models.duration import format_go

    out: dict[str, Any] = {}
    for info in describe(type(options)):
        value = getattr(options, info.attr)
        if info.kind == "duration":
            value = format_go(value)
        elif info.kind == "list":
            value = list(value)
        elif info.kind == "records":
            value = [dataclasses.asdict(v) for v in value]
        out[info.key] = value
    return out
