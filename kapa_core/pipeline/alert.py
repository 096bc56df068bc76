"""``|alert()`` and ``|deadman()``: what TICKscript can say about alerts.

Handler properties come from the registered handler kinds (:mod:`kapa_core.alert.kinds`):
``.slack()`` starts a handler and the methods that follow (``.channel('#ops')``) set its
options until an alert property is used again — Kapacitor's handler objects embed the
alert node, so an alert property after a handler applies to the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from kapa_core.alert import kinds as registry
from kapa_core.alert import options as opts
from kapa_core.alert.kinds import HandlerKinds, Kind
from kapa_core.errors import ConfigError
from kapa_core.models.duration import Duration
from kapa_core.pipeline.base import NodeSpec, Prop, SpecError, chain, check_args

DEFAULT_ID = "{{ .Name }}:{{ .Group }}"
DEFAULT_MESSAGE = "{{ .ID }} is {{ .Level }}"
DEFAULT_DETAILS = "{{ json . }}"


@dataclass
class HandlerUse:
    """One handler written in the script: its kind and the option values set so far."""

    kind: str
    values: dict[str, Any] = field(default_factory=dict)


class AllOf:
    """A crit expression made of several lambdas joined with AND (deadman extras)."""

    def __init__(self, parts: list[Any], text: str) -> None:
        self.parts = parts
        self.text = text

    def eval_bool(self, t: int, f: Any, g: Any) -> bool:
        return all(p.eval_bool(t, f, g) for p in self.parts)


class EmittedAtMost:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.text = f'"emitted" <= {threshold!r}'

    def eval_bool(self, t: int, f: Any, g: Any) -> bool:
        from kapa_core.tick.functions import EvalError

        value = f.get("emitted")
        if value is None:
            raise EvalError("missing value: emitted")
        below: bool = value <= self.threshold
        return below


class AlertSpec(NodeSpec):
    kind = "alert"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "id": Prop(("string",), attr="id_template"),
        "message": Prop(("string",), attr="message_template"),
        "details": Prop(("string",), attr="details_template"),
        "info": Prop(("lambda",)), "warn": Prop(("lambda",)), "crit": Prop(("lambda",)),
        "infoReset": Prop(("lambda",), attr="info_reset"),
        "warnReset": Prop(("lambda",), attr="warn_reset"),
        "critReset": Prop(("lambda",), attr="crit_reset"),
        "history": Prop(("int",)),
        "flapping": Prop(("float", "float")),
        "stateChangesOnly": Prop((), attr="state_changes_only", variadic="duration",
                                 minimum=0),
        "noRecoveries": Prop(attr="no_recoveries", mode="flag"),
        "all": Prop(attr="all_points", mode="flag"),
        "levelTag": Prop(("string",), attr="level_tag"),
        "levelField": Prop(("string",), attr="level_field"),
        "messageField": Prop(("string",), attr="message_field"),
        "durationField": Prop(("string",), attr="duration_field"),
        "idTag": Prop(("string",), attr="id_tag"),
        "idField": Prop(("string",), attr="id_field"),
        "topic": Prop(("string",)),
        "category": Prop(("string",)),
        "inhibit": Prop(("string",), variadic="string", minimum=1, mode="append"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.id_template = DEFAULT_ID
        self.message_template = DEFAULT_MESSAGE
        self.details_template = DEFAULT_DETAILS
        self.info: Any = None
        self.warn: Any = None
        self.crit: Any = None
        self.info_reset: Any = None
        self.warn_reset: Any = None
        self.crit_reset: Any = None
        self.history = 21
        self.flapping: tuple[float, float] | None = None
        self.state_changes_only: Duration | bool = False
        self.no_recoveries = False
        self.all_points = False
        self.level_tag = self.level_field = self.message_field = ""
        self.duration_field = self.id_tag = self.id_field = ""
        self.topic = ""
        self.category = ""
        self.inhibit: list[Any] = []
        self.handlers: list[HandlerUse] = []
        self._current: HandlerUse | None = None
        #: the handler kinds this script is evaluated against (the daemon's)
        self.kinds: HandlerKinds = registry.current()

    # -- properties: the node's, the handler kinds', the current handler's options ----------
    def all_properties(self) -> dict[str, Prop]:
        props = dict(super().all_properties())
        for name in self.kinds.by_property:
            props.setdefault(name, Prop())
        if self._current is not None:
            for tick in opts.by_tick(self.kinds.kinds[self._current.kind].options):
                props.setdefault(tick, Prop())
        return props

    def set_property(self, name: str, args: list[Any]) -> None:
        current = self._current
        if current is not None:
            kind = self.kinds.kinds[current.kind]
            info = opts.by_tick(kind.options).get(name)
            if info is not None:
                try:
                    current.values[info.attr] = opts.tick_value(
                        info, current.values.get(info.attr), args, name)
                except (ValueError, TypeError) as exc:
                    raise SpecError(f"{kind.tick_name}: {exc}") from None
                return
        if name in self.kinds.by_property and name not in self.PROPERTIES:
            self._start_handler(self.kinds.by_property[name], args)
            return
        self._current = None
        if name == "stateChangesOnly":
            # Go keeps the interval only when exactly one is given
            values = check_args(name, (), args, variadic="duration", minimum=0)
            self.state_changes_only = values[0] if len(values) == 1 and values[0] else True
            return
        if name == "flapping":
            # Thresholds above 1 are refused when the task starts (as in Kapacitor); a
            # history below 2 is used as 2 there too.
            low, high = check_args(name, ("float", "float"), args)
            self.flapping = (low, high)
            return
        super().set_property(name, args)

    def _start_handler(self, kind: Kind, args: list[Any]) -> None:
        if kind.name in self.kinds.disabled:
            raise SpecError(f"alert: handler {kind.name!r} is disabled on this server "
                            "(-disable-handlers)")
        if kind.name == "post":  # Go's .post(urls...) keeps the first URL
            args = args[:1]
        use = HandlerUse(kind.name)
        infos = {o.attr: o for o in opts.describe(kind.options)}
        rest = list(args)
        for index, attr in enumerate(kind.args):
            if not rest:
                break
            info = infos[attr]
            last = index == len(kind.args) - 1
            if info.kind == "list" and last:
                taken, rest = rest, []
            else:
                taken, rest = rest[:1], rest[1:]
            try:
                use.values[attr] = opts.tick_value(info, None, taken, kind.tick_name)
            except (ValueError, TypeError) as exc:
                raise SpecError(f"{kind.tick_name}: {exc}") from None
        if rest:
            raise SpecError(f"{kind.tick_name}: expected at most {len(kind.args)} "
                            f"argument(s), got {len(args)}")
        self.handlers.append(use)
        self._current = use

    def validate(self) -> None:
        # .all() on stream data is accepted and has no effect; the id, message and details
        # templates are parsed when the task starts, so a disabled task may hold bad ones
        # (both as in Kapacitor).
        for use in self.handlers:  # refused when defined, enabled or not
            kind = self.kinds.get(use.kind)
            if kind is None:
                continue
            try:
                opts.build(kind.options, dict(use.values))
            except ConfigError as exc:
                raise SpecError(f".{kind.tick_name}(): {exc}") from None

    def attributes(self) -> dict[str, Any]:
        return {"id": self.id_template, "topic": self.topic}


@chain("alert")
def _alert(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("alert", (), args)
    return AlertSpec(pipeline, [parent])


@chain("deadman")
def _deadman(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    """``|deadman(threshold, interval, lambda…)``: alerts when throughput drops.

    It is ``stats(interval)|derivative('emitted').unit(interval).nonNegative()|alert()``
    with a crit of ``"emitted" <= threshold`` (AND any extra lambdas) and the [deadman]
    id and message, as Kapacitor expands it.
    """
    values = check_args("deadman", ("float", "duration"), args, variadic="lambda")
    return add_deadman(pipeline, parent, values[0], values[1], values[2:])


def add_deadman(pipeline: Any, parent: NodeSpec, threshold: float, interval: Duration,
                extra: list[Any]) -> AlertSpec:
    from kapa_core.pipeline.nodes import DerivativeSpec, NoOpSpec, StatsSpec

    if interval <= 0:
        raise SpecError("deadman: interval must be positive")
    if not parent.children:
        NoOpSpec(pipeline, [parent])
    stats = StatsSpec(pipeline, parent, interval)
    derivative = DerivativeSpec(pipeline, [stats], "emitted")
    derivative.unit = interval
    derivative.non_negative = True
    alert = AlertSpec(pipeline, [derivative])
    crit: Any = EmittedAtMost(float(threshold))
    if extra:
        crit = AllOf([crit, *extra], " AND ".join([crit.text, *(e.text for e in extra)]))
    alert.crit = crit
    defaults = alert.kinds.deadman
    alert.id_template = defaults.id.replace("NODE_NAME", parent.name, 1)
    alert.message_template = defaults.message.replace("INTERVAL", str(interval), 1)
    return alert
