"""The registry of alert handler kinds the running daemon knows, and the deadman defaults.

The daemon fills it from its plugins before any task is defined (``-disable-handlers``
kinds stay listed but refused); TICKscript evaluation reads it to know which handler
properties an alert node has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.models.duration import SECOND, Duration

KINDS: dict[str, Any] = {}  # kind name -> HandlerKind
BY_PROPERTY: dict[str, Any] = {}  # TICKscript property -> HandlerKind
DISABLED: set[str] = set()


@dataclass
class DeadmanDefaults:
    interval: Duration = Duration(10 * SECOND)
    threshold: float = 0.0
    id: str = "{{ .Group }}:NODE_NAME for task '{{ .TaskName }}'"
    message: str = ('{{ .ID }} is {{ if eq .Level "OK" }}alive{{ else }}dead{{ end }}: '
                    '{{ index .Fields "emitted" | printf "%0.3f" }} points/INTERVAL.')
    global_: bool = False


DEADMAN = DeadmanDefaults()


def register(kinds: dict[str, Any], disabled: set[str] | frozenset[str] = frozenset()) -> None:
    KINDS.clear()
    BY_PROPERTY.clear()
    KINDS.update(kinds)
    for kind in kinds.values():
        if not kind.topic_only:
            BY_PROPERTY[kind.tick_name] = kind
    DISABLED.clear()
    DISABLED.update(disabled)


def configure_deadman(config: Any) -> None:
    for name in ("interval", "threshold", "id", "message", "global_"):
        setattr(DEADMAN, name, getattr(config, name))


def ensure_builtin() -> None:
    """Load the built-in kinds when no daemon registered any (tools, tests)."""
    if KINDS:
        return
    from kapa_core.plugins import load_plugins

    register(load_plugins().handler_kinds)
