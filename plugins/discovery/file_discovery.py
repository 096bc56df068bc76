"""file-discovery: the [[file-discovery]] section, discovering target groups read from
JSON/YAML files, as Prometheus' file discoverer (vendored by Kapacitor 1.5.7) does.

Each enabled element reads the files its ``files`` glob patterns match (in the order of
the patterns, each pattern's matches sorted): a ``.json``, ``.yml`` or ``.yaml`` file
holds a list of target groups ``[{"targets": ["host:port", ...], "labels": {...}}]``.
Group ``i`` of file ``f`` is published under the source ``f:i`` with the label
``__meta_filepath`` = ``f`` (the path as the pattern matched it). The files are read
again every ``refresh-interval`` and whenever one of them changes, appears or goes away
(kapa-core polls their modification times every half second where Prometheus uses
fsnotify). A file that cannot be read or parsed keeps the groups it had and is logged;
a file that is gone, or holds fewer groups than before, withdraws the missing groups.

A ``[[scraper]]`` names the element by its ``id`` in ``discoverer-id``.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import trio
import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no types

from kapa_core.plugin_api import (
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Duration,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)

#: the file names Kapacitor accepts in ``files`` (a wildcard only in the last element)
FILE_PATTERN = re.compile(r"^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
FILEPATH_LABEL = "__meta_filepath"
#: seconds between two looks at the files' modification times
POLL_INTERVAL = 0.5


@dataclass(frozen=True, kw_only=True)
class FileDiscoveryConfig:
    enabled: bool = False
    id: str = ""
    files: list[str] = setting([], doc="Globs of JSON or YAML target files.")
    refresh_interval: Duration = Duration(300 * 1_000_000_000)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.files:
            raise ConfigError("files", "must list at least one file pattern")
        for name in self.files:
            if not FILE_PATTERN.match(name):
                raise ConfigError("files", f"path name {name!r} is not valid for file "
                                  "discovery")
        if self.refresh_interval <= 0:
            raise ConfigError("refresh-interval", "must be greater than 0")


class FileError(ValueError):
    """A target-group file that cannot be used."""


def read_groups(path: str) -> list[TargetGroup]:
    """The target groups of one file (FileError or OSError when it cannot be used)."""
    with open(path, "rb") as f:
        content = f.read()
    ext = os.path.splitext(path)[1].lower()
    try:
        # YAML scalars as written: Go's yaml.v2 gives a label its text (port: 80 is "80")
        data = json.loads(content) if ext == ".json" else yaml.load(
            content, Loader=yaml.BaseLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise FileError(str(exc).replace("\n", " ")) from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise FileError("expected a list of target groups")
    groups = []
    for index, item in enumerate(data):
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise FileError(f"target group {index}: expected an object")
        if ext != ".json":
            unknown = sorted(str(k) for k in item if k not in ("targets", "labels"))
            if unknown:
                raise FileError(f"unknown fields in target_group: {', '.join(unknown)}")
        targets = item.get("targets") or []
        labels = item.get("labels") or {}
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise FileError(f"target group {index}: targets must be a list of strings")
        if not isinstance(labels, dict):
            raise FileError(f"target group {index}: labels must be an object")
        clean: dict[str, str] = {}
        for name, value in labels.items():
            if not isinstance(name, str) or not LABEL_NAME.match(name):
                raise FileError(f"{name!r} is not a valid label name")
            if not isinstance(value, str):
                raise FileError(f"label {name!r}: value {value!r} is not a string")
            clean[name] = value
        clean[FILEPATH_LABEL] = path
        groups.append(TargetGroup(tuple(t for t in targets if t), clean,
                                  source=f"{path}:{index}"))
    return groups


class FileDiscoverer:
    """Reads the element's files and publishes their groups, again on every change."""

    def __init__(self, config: FileDiscoveryConfig, context: DiscoveryContext,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.config = config
        self.context = context
        self.log = context.log
        self.poll_interval = poll_interval
        #: file -> how many groups it published at the last refresh
        self.last: dict[str, int] = {}
        #: file -> (mtime, size, inode) seen at the last refresh
        self.seen: dict[str, tuple[int, int, int]] = {}

    def list_files(self) -> list[str]:
        out: list[str] = []
        for pattern in self.config.files:
            for path in sorted(glob.glob(pattern, include_hidden=True)):
                if path not in out:
                    out.append(path)
        return out

    def _state(self, files: list[str]) -> dict[str, tuple[int, int, int]]:
        state = {}
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                continue
            state[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
        return state

    def refresh(self) -> None:
        """Read every file and publish what changed (Prometheus' refresh)."""
        files = self.list_files()
        self.seen = self._state(files)
        counts: dict[str, int] = {}
        update: list[TargetGroup] = []
        for path in files:
            try:
                groups = read_groups(path)
            except (OSError, FileError) as exc:
                self.log.error("error reading file", file=path, err=str(exc))
                counts[path] = self.last.get(path, 0)  # its groups stay
                continue
            update += groups
            counts[path] = len(groups)
        for path, before in self.last.items():
            now = counts.get(path, 0)
            update += [TargetGroup((), {}, source=f"{path}:{i}") for i in range(now, before)]
        self.last = counts
        self.context.update(update)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        clock = trio.current_time
        refresh_every = int(self.config.refresh_interval) / 1e9
        self.refresh()
        task_status.started()
        next_refresh = clock() + refresh_every
        while True:
            await trio.sleep(min(self.poll_interval, max(next_refresh - clock(), 0)))
            if clock() >= next_refresh:
                next_refresh = clock() + refresh_every
                self.refresh()
            elif self._state(self.list_files()) != self.seen:
                self.refresh()


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="file-discovery",
            schema=FileDiscoveryConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(FileDiscoverer),
            doc="Discover target groups read from JSON/YAML files.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="file-discovery", section="file-discovery",
                          factory=FileDiscoverer,
                          doc="Target groups read from JSON or YAML files.")]
