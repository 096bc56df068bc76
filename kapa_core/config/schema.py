"""What a config section is: a frozen dataclass of typed keys, plus how to name and coerce them.

One naming rule for every section, built-in or plugin: field ``icon_emoji`` is the TOML key
``icon-emoji`` and the environment suffix ``ICON_EMOJI``; a trailing ``_`` dodges Python
keywords (``global_`` is ``global``). Keys Kapacitor spells otherwise (``data_dir``,
``recovery_url``) pass ``key=`` to :func:`setting`.

Supported value types: ``bool``, ``int``, ``float``, ``str``, :class:`Duration`,
``list[str]``, ``dict[str, str]``, ``dict[str, list[str]]`` and nested frozen dataclasses
(inline tables such as ``basic-auth = { username = "u", password = "p" }``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from kapa_core.errors import ConfigError
from kapa_core.models.duration import MAX_NS, MIN_NS, Duration, format_go

_MISSING = dataclasses.MISSING
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
OUT_OF_RANGE_DURATION = f": out of range (at most {format_go(MAX_NS)} either way)"


def setting(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    redact: bool = False,
    doc: str = "",
    key: str = "",
) -> Any:
    """A config key with metadata: ``redact`` hides it in the API, ``doc`` is printed as a
    comment by ``kapa-core config``, ``key`` overrides the derived TOML key name."""
    meta = {"redact": redact, "doc": doc, "key": key}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: _copy(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_raw(value)  # a table of tables, e.g. [udf.functions.<name>]
    return value


@dataclass(frozen=True)
class Key:
    """One key of a section schema."""

    name: str  # TOML key
    attr: str  # dataclass field name
    type: Any  # resolved annotation
    redact: bool
    doc: str

    def default(self, schema: type) -> Any:
        field = {f.name: f for f in dataclasses.fields(schema)}[self.attr]
        if field.default is not _MISSING:
            return field.default
        if field.default_factory is not _MISSING:
            return field.default_factory()
        return None


def key_name(attr: str) -> str:
    """Dataclass field name to TOML key: ``icon_emoji`` -> ``icon-emoji``."""
    return attr.rstrip("_").replace("_", "-")


def _keys_of(schema: type) -> tuple[Key, ...]:
    """The keys of a section schema, in declaration order."""
    hints = typing.get_type_hints(schema)
    out = []
    for field in dataclasses.fields(schema):
        if not field.init:
            continue
        meta = field.metadata
        out.append(
            Key(
                name=meta.get("key") or key_name(field.name),
                attr=field.name,
                type=hints[field.name],
                redact=bool(meta.get("redact", False)),
                doc=str(meta.get("doc", "")),
            )
        )
    return tuple(out)


#: The keys of a schema, worked out once per schema. Typed as a plain callable: the
#: cache wrapper's ``Hashable`` parameters refuse ``type(x)`` for an ``x`` typed Any.
keys_of: Callable[[type], tuple[Key, ...]] = cache(_keys_of)


def key_map(schema: type) -> dict[str, Key]:
    return {k.name: k for k in keys_of(schema)}


def _origin(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _origin(args[0])
    return origin, typing.get_args(tp)


def type_label(tp: Any) -> str:
    """A human word for what a key expects, used in error messages."""
    origin, args = _origin(tp)
    if tp is Duration:
        return "a duration such as 10s or 1m0s"
    if tp is bool:
        return "a boolean (true or false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is list:
        return f"a list of {type_label(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def coerce(value: Any, tp: Any, path: str, *, from_text: bool = False) -> Any:
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``path``.

    TOML and JSON values must already have a compatible type (a string is accepted for a
    number only when ``from_text``); environment variables arrive as text and are parsed
    the way Kapacitor parses them (Go ParseBool, base-0 integers, Go durations).
    """
    origin, args = _origin(tp)

    def bad(extra: str = "") -> ConfigError:
        shown = value if not isinstance(value, str) else repr(value)
        return ConfigError(path, f"invalid value {shown} (expected {type_label(tp)}){extra}")

    if tp is Duration:
        # A number is nanoseconds. Like Go's time.Duration, the value must fit in an int64
        # of nanoseconds (1e308, "3000000h" are refused, not kept as huge Python ints).
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            if not MIN_NS <= value <= MAX_NS:
                raise bad(OUT_OF_RANGE_DURATION)
            return Duration(int(value))
        if isinstance(value, str):
            if value == "":
                return Duration(0)
            try:
                return Duration.parse(value)
            except ValueError as exc:
                raise bad(OUT_OF_RANGE_DURATION if "out of range" in str(exc) else ""
                          ) from None
        raise bad()
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and from_text:
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
        raise bad()
    if tp is int:  # Go's int: 64 bits
        if isinstance(value, bool):
            raise bad()
        number = value
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and from_text:
            try:
                number = int(value, 0)
            except ValueError:
                raise bad() from None
        if isinstance(number, int):
            if not MIN_INT <= number <= MAX_INT:
                raise bad(f": out of range (at most {MAX_INT} either way)")
            return number
        raise bad()
    if tp is float:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and from_text:
            try:
                return float(value)
            except ValueError:
                raise bad() from None
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if origin is list:
        if isinstance(value, str) and from_text:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise bad()
        return [coerce(v, args[0], f"{path}[{i}]", from_text=from_text) for i, v in
                enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad()
        return {str(k): coerce(v, args[1], f"{path}.{k}", from_text=from_text)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        schema = cast(type, tp)  # a resolved annotation: a class, not an instance
        if isinstance(value, schema):
            return value
        if not isinstance(value, Mapping):
            raise bad()
        return build(schema, value, path)
    if tp is Any or tp is object:
        return value
    raise bad()


def coerce_key(key: Key, value: Any, path: str, *, from_text: bool = False) -> Any:
    """:func:`coerce` for one key; the error for a redacted key never shows its value."""
    try:
        return coerce(value, key.type, path, from_text=from_text)
    except ConfigError as exc:
        if not key.redact:
            raise
        raise ConfigError(exc.path, f"invalid value (redacted; expected "
                          f"{type_label(key.type)})") from None


def build(schema: type, raw: Mapping[str, Any], path: str) -> Any:
    """Build a schema instance from raw values (missing keys keep their defaults)."""
    keys = key_map(schema)
    kwargs = {}
    for name, value in raw.items():
        key = keys.get(name)
        if key is None:
            continue  # unknown keys are collected separately, see unknown_keys()
        kwargs[key.attr] = coerce_key(key, value, f"{path}.{name}" if path else name)
    try:
        instance = schema(**kwargs)
    except TypeError as exc:  # a schema whose fields lack defaults
        raise ConfigError(path, str(exc)) from None
    validate = getattr(instance, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as exc:
            raise hide_secrets(exc, instance).within(path) from None
    return instance


def hide_secrets(exc: ConfigError, instance: Any) -> ConfigError:
    """``exc`` with the values of ``instance``'s redacted string keys blanked out of its
    message (a validator may quote the value it refuses, e.g. a webhook URL)."""
    message = exc.message
    for key in keys_of(type(instance)):
        value = getattr(instance, key.attr, None)
        if not key.redact or not isinstance(value, str) or not value:
            continue
        message = message.replace(repr(value), "(redacted)")
        if len(value) >= 4:
            message = message.replace(value, "(redacted)")
    return exc if message == exc.message else ConfigError(exc.path, message)


def unknown_keys(schema: type, raw: Mapping[str, Any], path: str) -> list[str]:
    """Key paths in ``raw`` that ``schema`` does not declare, recursively."""
    keys = key_map(schema)
    out = []
    for name, value in raw.items():
        key = keys.get(name)
        where = f"{path}.{name}" if path else name
        if key is None:
            out.append(where)
        elif dataclasses.is_dataclass(key.type) and isinstance(value, Mapping):
            out.extend(unknown_keys(cast(type, key.type), value, where))
    return out


def to_raw(instance: Any) -> dict[str, Any]:
    """A schema instance as plain TOML-ready values (Durations stay Durations)."""
    out: dict[str, Any] = {}
    for key in keys_of(type(instance)):
        value = getattr(instance, key.attr)
        out[key.name] = to_raw(value) if dataclasses.is_dataclass(value) else _copy(value)
    return out


def defaults_raw(schema: type) -> dict[str, Any]:
    """The defaults of a schema as raw values."""
    return to_raw(schema())


@dataclass(frozen=True, kw_only=True)
class Section:
    """A config section owned by a plugin (or the core).

    ``multiple`` makes it an array of tables (``[[slack]]``) whose elements are named by
    ``element_key`` in the config API. ``default_elements`` is how many default elements
    ``kapa-core config`` prints for an array section (Kapacitor prints one for influxdb,
    slack, mqtt...). ``service`` builds the service fed by this section; a config override
    re-opens that service only. ``check`` validates all elements together (raise
    ConfigError with a path relative to the section, e.g. ``[1].default``).
    """

    name: str
    schema: type
    multiple: bool = False
    element_key: str = ""
    default_elements: int = 0
    overridable: bool = True
    service: Callable[[Any], Any] | None = None
    check: Callable[[Any], None] | None = None
    doc: str = ""

    def default_raw_element(self) -> dict[str, Any]:
        return defaults_raw(self.schema)

    def default_raw(self) -> Any:
        if self.multiple:
            return [defaults_raw(self.schema) for _ in range(self.default_elements)]
        return defaults_raw(self.schema)

    def build(self, raw: Any) -> Any:
        """Typed value of this section: one instance, or a tuple for an array section."""
        if self.multiple:
            if isinstance(raw, Mapping):  # `[x]` written for an array section: one element
                raw = [raw]
            if not isinstance(raw, Sequence) or isinstance(raw, str):
                raise ConfigError(self.name, "expected an array of tables ([[" + self.name
                                  + "]])")
            value = tuple(self._element(r, f"{self.name}[{i}]") for i, r in enumerate(raw))
        else:
            if not isinstance(raw, Mapping):
                raise ConfigError(self.name, "expected a table ([" + self.name + "])")
            value = build(self.schema, raw, self.name)
        if self.check is not None:
            try:
                self.check(value)
            except ConfigError as exc:
                raise exc.within(self.name) from None
        return value

    def _element(self, raw: Any, path: str) -> Any:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, "expected a table")
        return build(self.schema, raw, path)

    def element_name(self, instance: Any) -> str:
        """The config-API element name of one element ("" for single sections)."""
        if not self.multiple:
            return ""
        return str(getattr(instance, key_map(self.schema)[self.element_key].attr))

    def redacted_keys(self) -> list[str]:
        return [k.name for k in keys_of(self.schema) if k.redact]
