"""The alert handler kinds a daemon knows, and its ``[deadman]`` defaults.

Each daemon builds one :class:`HandlerKinds` from its plugins (``-disable-handlers``
kinds stay listed but refused) and installs it for everything it runs with
:func:`install`: TICKscript evaluation reads it through :func:`current` to know which
handler properties an alert node has. The value lives in a context variable, so trio
tasks and worker threads started by a daemon see that daemon's kinds and two daemons in
one process do not share them. Outside a daemon (tools, tests) no kind is known unless
one is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kapa_core.models.duration import SECOND, Duration
from kapa_core.perdaemon import PerDaemon


class Kind(Protocol):
    """What the core reads of a handler kind (``kapa_core.plugin_api.HandlerKind``)."""

    @property
    def name(self) -> str: ...
    @property
    def options(self) -> type: ...
    @property
    def factory(self) -> Callable[..., Any]: ...
    @property
    def section(self) -> str: ...
    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def topic_only(self) -> bool: ...
    @property
    def tick_name(self) -> str: ...


@dataclass(frozen=True)
class DeadmanDefaults:
    """``[deadman]``: what ``|deadman()`` and ``global = true`` expand to."""

    interval: Duration = Duration(10 * SECOND)
    threshold: float = 0.0
    id: str = "{{ .Group }}:NODE_NAME for task '{{ .TaskName }}'"
    message: str = ('{{ .ID }} is {{ if eq .Level "OK" }}alive{{ else }}dead{{ end }}: '
                    '{{ index .Fields "emitted" | printf "%0.3f" }} points/INTERVAL.')
    global_: bool = False

    @classmethod
    def from_config(cls, config: Any) -> DeadmanDefaults:
        """From the ``[deadman]`` section's typed value."""
        return cls(interval=config.interval, threshold=config.threshold, id=config.id,
                   message=config.message, global_=config.global_)


@dataclass(frozen=True)
class HandlerKinds:
    """One daemon's handler kinds by name and by TICKscript property, the disabled ones
    and the deadman defaults."""

    kinds: Mapping[str, Kind] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    deadman: DeadmanDefaults = field(default_factory=DeadmanDefaults)
    by_property: Mapping[str, Kind] = field(init=False)

    def __post_init__(self) -> None:
        by_property = {k.tick_name: k for k in self.kinds.values() if not k.topic_only}
        object.__setattr__(self, "by_property", by_property)

    def get(self, name: str) -> Kind | None:
        return self.kinds.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def names(self) -> list[str]:
        return sorted(self.kinds)

    def with_deadman(self, deadman: DeadmanDefaults) -> HandlerKinds:
        return replace(self, deadman=deadman)


#: Nothing installed: no handler kind, Kapacitor's deadman defaults.
NONE = HandlerKinds()
_CURRENT = PerDaemon("kapa_handler_kinds", NONE)
#: The handler kinds of the daemon (or tool) this code runs under.
current = _CURRENT.current
#: Make kinds current in this context and the tasks and threads it starts.
install = _CURRENT.install
#: Kinds current for a ``with`` block only.
using = _CURRENT.using
