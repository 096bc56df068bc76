"""Layered configuration: defaults < file < environment < API overrides < command line.

The layers are applied to a *raw tree* (plain TOML-like values: ``{"http": {...},
"influxdb": [{...}], "": {root keys}}``) and the result is built into typed, validated
section values once. ``ConfigLayers`` keeps the layers apart so the config API can
re-apply overrides to the file+environment base without re-reading anything.

Deliberate differences from Kapacitor, both friendlier and both documented in
docs/configuration.md: elements of an array section read from the file start from the
section's defaults (Kapacitor starts most of them from zero values), and directory keys
left empty are placed under ``data_dir``.
"""

from __future__ import annotations

import copy
import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kapa_core.config.core_sections import ROOT, RootConfig, default_data_dir
from kapa_core.config.env import apply_env
from kapa_core.config.overrides import Override, apply_overrides
from kapa_core.config.schema import Section, key_map, unknown_keys
from kapa_core.errors import ConfigError

DEFAULT_PATHS = (os.path.expanduser("~/.kapacitor/kapacitor.conf"),
                 "/etc/kapacitor/kapacitor.conf")


@dataclass(frozen=True)
class CommandLine:
    """Values from command-line flags that override configuration keys."""

    hostname: str = ""
    log_file: str = ""
    log_level: str = ""


@dataclass
class Config:
    """The effective configuration: typed section values plus what was not understood."""

    root: RootConfig
    sections: dict[str, Any]
    raw: dict[str, Any]
    unknown: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.sections.get(name, default)


def find_config_path(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The config file to read: ``-config``, then KAPACITOR_CONFIG_PATH, then the first
    existing default location; None when there is none (embedded defaults)."""
    if flag:
        return flag
    env = environ.get("KAPACITOR_CONFIG_PATH", "")
    if env:
        return env
    for path in DEFAULT_PATHS:
        if os.path.isfile(path):
            return path
    return None


def read_toml(path: str) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a ConfigError naming the file."""
    if path == os.devnull:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{path}: not UTF-8 text: {exc}") from None


class ConfigLayers:
    """The sections known to this daemon and the layers that make its configuration."""

    def __init__(self, sections: Iterable[Section]) -> None:
        self.sections: dict[str, Section] = {ROOT.name: ROOT}
        for section in sections:
            self.sections[section.name] = section
        self.base: dict[str, Any] = self.defaults()
        self.unknown: list[str] = []
        self.cli = CommandLine()

    def defaults(self) -> dict[str, Any]:
        return {name: s.default_raw() for name, s in self.sections.items()}

    # -- layers ---------------------------------------------------------------------
    def load(self, file_data: Mapping[str, Any] | None, environ: Mapping[str, str],
             cli: CommandLine = CommandLine()) -> None:
        """Set the base layers: defaults, then the file, then the environment."""
        raw = self.defaults()
        self.unknown = []
        if file_data:
            self._merge_file(raw, file_data)
        unknown_env = apply_env(raw, self.sections.values(), environ)
        self.unknown.extend(f"environment variable {name}" for name in unknown_env)
        self.base = raw
        self.cli = cli

    def _merge_file(self, raw: dict[str, Any], data: Mapping[str, Any]) -> None:
        root_keys = key_map(RootConfig)
        for name, value in data.items():
            if name in root_keys and not isinstance(value, dict | list):
                raw[""][name] = value
                continue
            section = self.sections.get(name) if name else None
            if section is None:
                self.unknown.append(self._unknown_hint(name, list(self.sections) +
                                                       list(root_keys)))
                continue
            if section.multiple:
                elements = value if isinstance(value, list) else [value]
                merged = []
                for i, element in enumerate(elements):
                    if not isinstance(element, dict):
                        raise ConfigError(f"{name}[{i}]", "expected a table")
                    merged.append(_merged(section.default_raw_element(), element))
                    self.unknown.extend(unknown_keys(section.schema, element, f"{name}[{i}]"))
                raw[name] = merged
            else:
                if not isinstance(value, dict):
                    raise ConfigError(name, f"expected a table [{name}], got a value")
                raw[name] = _merged(raw[name], value)
                self.unknown.extend(unknown_keys(section.schema, value, name))

    @staticmethod
    def _unknown_hint(name: str, known: list[str]) -> str:
        close = difflib.get_close_matches(name, [k for k in known if k], n=1)
        return f"{name} (did you mean {close[0]}?)" if close else name

    def effective_raw(self, overrides: Iterable[Override] = ()) -> dict[str, Any]:
        """Base + overrides + command line, as a raw tree."""
        raw = copy.deepcopy(self.base)
        apply_overrides(raw, self.sections, overrides)
        if self.cli.hostname:
            raw[""]["hostname"] = self.cli.hostname
        if self.cli.log_file:
            raw["logging"]["file"] = self.cli.log_file
        if self.cli.log_level:
            raw["logging"]["level"] = self.cli.log_level
        return raw

    # -- building -------------------------------------------------------------------
    def build(self, raw: dict[str, Any]) -> Config:
        """Typed, validated configuration from a raw tree; raises the first ConfigError."""
        root = ROOT.build(raw.get("", {}))
        root = _resolve_root(root)
        values: dict[str, Any] = {}
        for name, section in self.sections.items():
            if not name:
                continue
            values[name] = section.build(_resolve_paths(name, raw[name], root.data_dir))
        return Config(root=root, sections=values, raw=raw, unknown=list(self.unknown))

    def build_section(self, raw: dict[str, Any], name: str) -> Any:
        root = _resolve_root(ROOT.build(raw.get("", {})))
        return self.sections[name].build(_resolve_paths(name, raw[name], root.data_dir))


def _merged(base: Any, update: Mapping[str, Any]) -> Any:
    """``base`` with ``update`` merged in; nested tables merge, everything else replaces."""
    out = dict(base) if isinstance(base, Mapping) else {}
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_root(root: RootConfig) -> RootConfig:
    if root.data_dir:
        return root
    return RootConfig(hostname=root.hostname, data_dir=default_data_dir(),
                      skip_config_overrides=root.skip_config_overrides,
                      default_retention_policy=root.default_retention_policy)


_DIR_DEFAULTS = {("storage", "boltdb"): "kapacitor.db", ("replay", "dir"): "replay",
                 ("task", "dir"): "tasks", ("load", "dir"): "load"}


def _resolve_paths(name: str, raw: Any, data_dir: str) -> Any:
    """Fill directory keys left empty with their place under ``data_dir``."""
    for (section, key), leaf in _DIR_DEFAULTS.items():
        if section == name and isinstance(raw, dict) and not raw.get(key):
            raw = {**raw, key: os.path.join(data_dir, leaf)}
    return raw
