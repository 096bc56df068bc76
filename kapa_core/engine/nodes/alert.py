"""The alert node: levels per group, Kapacitor's firing rules, events to topics.

Per group it keeps Kapacitor's state: a ring of the last ``history`` levels (changes and
flapping are computed on it), when the alert was first and last triggered (duration),
and whether a ``stateChangesOnly(d)`` interval has expired. Events go to the node's
anonymous topic ``main:<task>:<node>`` (which carries the handlers written in the
script) and to ``.topic()`` if set; the point or batch is forwarded only when an event
fires, with the ``levelTag``/``idField``… annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from kapa_core.alert import gojson
from kapa_core.alert.event import (
    Event,
    EventState,
    GoDuration,
    GoStruct,
    MessageInfo,
    ServerInfo,
    template_fields,
)
from kapa_core.alert.levels import Level
from kapa_core.alert.topics import Inhibitor
from kapa_core.engine.node import Node
from kapa_core.gotemplate import GoTime, StringMap, Template, TemplateError
from kapa_core.gotemplate import parse as parse_template
from kapa_core.gotemplate.htmlctx import JS
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.duration import Duration
from kapa_core.models.point import Point
from kapa_core.pipeline.alert import DEFAULT_DETAILS, DEFAULT_MESSAGE, AlertSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from kapa_core.engine.nodes.io import Alerts, NodeContext

MAX_WEIGHT = 1.2
WEIGHT_DIFF = 1.5


def _refused(message: str) -> Exception:
    """The error that refuses the task's start with Kapacitor's words alone."""
    from kapa_core.engine.tasks import StartRefused  # the task service imports the nodes

    return StartRefused(message)


def _json_line(value: Any) -> str:
    """The details template's ``json``: Go's json.Encoder output, final newline included."""
    return JS(gojson.dumps(value) + "\n")  # typed JavaScript, as Go's html.JS


def compile_templates(spec: AlertSpec) -> tuple[Template, Template, Template]:
    """The id, message and details templates; a template that does not parse refuses
    the task's start with Go's message."""
    out: list[Template] = []
    for what, text, html in (("id", spec.id_template, False),
                             ("message", spec.message_template, False),
                             ("details", spec.details_template, True)):
        try:
            out.append(parse_template(text, what, html=html,
                                      funcs={"json": _json_line} if html else None))
        except TemplateError as exc:
            # Kapacitor refuses to start the task with the parser's own message.
            raise _refused(str(exc)) from None
    return out[0], out[1], out[2]


#: Go's zero time.Time (January 1 of year 1) in Unix nanoseconds: when an alert has not
#: been triggered yet. Durations from it saturate, as Go's Time.Sub does.
ZERO_TIME = -62135596800 * 1_000_000_000
MAX_DURATION = (1 << 63) - 1
MIN_DURATION = -(1 << 63)


class BoolExpression(Protocol):
    """A level or reset expression of the script (a compiled lambda)."""

    def eval_bool(self, t: int, fields: Any, tags: Any) -> bool: ...


@dataclass
class GroupState:
    history: list[Level]
    idx: int = 0
    flapping: bool = False
    changed: bool = False
    expired: bool = False
    first_triggered: int = ZERO_TIME
    last_triggered: int = ZERO_TIME

    @property
    def level(self) -> Level:
        return self.history[self.idx]

    def add(self, t: int, level: Level, flap: tuple[float, float] | None,
            sco_interval: int) -> None:
        self.changed = self.history[self.idx] != level
        self.idx = (self.idx + 1) % len(self.history)
        self.history[self.idx] = level
        if flap is not None:
            change = self.percent_change()
            if self.flapping and change < flap[0]:
                self.flapping = False
            elif not self.flapping and change > flap[1]:
                self.flapping = True
        self.expired = (not self.changed and sco_interval != 0
                        and t - self.last_triggered >= sco_interval)

    def percent_change(self) -> float:
        n = len(self.history)
        changes = 0.0
        weight = MAX_WEIGHT / WEIGHT_DIFF
        step = (MAX_WEIGHT - weight) / (n - 1)
        for i in range(n - 1):
            c = (i + self.idx) % n
            p = c - 1 if c else n - 1
            if self.history[c] != self.history[p]:
                changes += weight
            weight += step
        return changes / (n - 1)

    def triggered(self, t: int) -> None:
        self.last_triggered = t
        if self.history[self.idx - 1] is Level.OK:
            self.first_triggered = t

    @property
    def duration(self) -> int:
        d = self.last_triggered - self.first_triggered
        return MAX_DURATION if d > MAX_DURATION else MIN_DURATION if d < MIN_DURATION else d


@dataclass
class AlertStats:
    alerts_triggered: int = 0
    oks_triggered: int = 0
    infos_triggered: int = 0
    warns_triggered: int = 0
    crits_triggered: int = 0
    alerts_inhibited: int = 0
    events_dropped: int = 0
    by_level: dict[Level, str] = field(default_factory=lambda: {
        Level.OK: "oks_triggered", Level.INFO: "infos_triggered",
        Level.WARNING: "warns_triggered", Level.CRITICAL: "crits_triggered"})


class IdInfo(GoStruct):
    """What the id template sees."""

    go_type = "kapacitor.idInfo"


class DetailsInfo(GoStruct):
    """What the details template sees: the message's data and the ``Message``."""

    go_type = "kapacitor.detailsInfo"


#: rendered alert ids kept per (measurement, group) when the id template ignores .Tags
ID_CACHE_SIZE = 100_000


class _EventText:
    """The template data of one event, built once for both its message and its details."""

    __slots__ = ("_data", "_details", "_message", "args", "node")

    def __init__(self, node: AlertNode, *args: Any) -> None:
        self.node = node
        self.args = args
        self._data: Any = None
        self._message: str | None = None
        self._details: str | None = None

    def data(self) -> Any:
        if self._data is None:
            event_id, name, group, tags, fields, level, t, duration = self.args
            node = self.node
            self._data = MessageInfo(
                Name=name, TaskName=node.task_id, Group=group, Tags=StringMap(tags),
                ServerInfo=node.server_info, ID=event_id, Fields=template_fields(fields),
                Level=str(level), Time=GoTime(t), Duration=GoDuration(duration))
        return self._data

    def render(self, details: bool) -> None:
        """Render the message (and the ``details`` too) now, as Kapacitor does when an
        event fires: a template that fails to execute stops the task."""
        node = self.node
        try:
            self._message = node.message_t.execute(self.data())
            if details:
                self._details = node.details_t.execute(self._details_data(self._message))
        except Exception as exc:
            raise node.stop_task(str(exc)) from None

    def _details_data(self, message: str) -> DetailsInfo:
        return DetailsInfo(self.data(), Message=message)

    def message(self) -> str:
        message = self._message
        if message is None:
            self.data()
            message = self._message = self._render(self.node.message_t, "message")
        return message

    def details(self) -> str:
        details = self._details
        if details is None:
            message = self.message()  # the details template sees .Message
            details = self._details = self._render(self.node.details_t, "details",
                                                   self._details_data(message))
        return details

    def _render(self, template: Template, what: str, data: Any = None) -> str:
        # The default templates, which cannot fail, are rendered when a handler, the API
        # or persistence first reads the text; a failure is logged here (with the alert
        # id) rather than raised into them.
        try:
            return template.execute(self.data() if data is None else data)
        except Exception as exc:
            self.node.log.error(f"failed to render alert {what}", id=self.args[0],
                                err=str(exc))
            return ""


class AlertNode(Node):
    spec: AlertSpec

    def __init__(self, spec: AlertSpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        self.alerts = cast("Alerts", ctx.alerts)
        if self.alerts is None:
            raise ValueError("alert: the alert service is not running")
        self.task_id = ctx.task_id
        self.server_info = ServerInfo(Hostname=ctx.hostname, ClusterID=ctx.cluster_id,
                                      ServerID=ctx.server_id)
        self.id_t, self.message_t, self.details_t = compile_templates(spec)
        # The id depends on name, group and tags; with no .Tags in it, on the first two only.
        self._ids: dict[tuple[str, str], str] | None = (
            {} if "Tags" not in spec.id_template else None)
        # Templates of the script's own are rendered as the event fires (an execution
        # error stops the task, as in Kapacitor); the defaults, which cannot fail, when
        # the text is first read.
        self.render_details = spec.details_template != DEFAULT_DETAILS
        self.render_now = spec.message_template != DEFAULT_MESSAGE or self.render_details
        if spec.flapping is not None and max(spec.flapping) > 1:
            raise _refused("alert flap thresholds are percentages and should be between 0 "
                           "and 1")
        self.levels = [None, spec.info, spec.warn, spec.crit]
        self.resets = [None, spec.info_reset, spec.warn_reset, spec.crit_reset]
        self.history = max(spec.history, 2)
        self.flap = spec.flapping
        sco = spec.state_changes_only
        self.handlers, forced_sco = self.alerts.task_handlers(spec, self.task_id)
        self.sco = bool(sco) or forced_sco
        self.sco_interval = int(sco) if isinstance(sco, Duration) else 0
        self.no_recoveries = spec.no_recoveries
        self.all = spec.all_points
        self.topic = spec.topic
        self.category = spec.category
        self.anon_topic = f"main:{self.task_id}:{self.name}" if self.handlers else ""
        self.states: dict[str, GroupState] = {}
        self.counts = AlertStats()
        # each .inhibit(category, tags...) call: a lone category is kept as a string
        self.inhibitors = [Inhibitor(i, ()) if isinstance(i, str) else
                           Inhibitor(i[0], tuple(i[1:])) for i in spec.inhibit]
        self.annotate = any((spec.level_tag, spec.level_field, spec.id_tag, spec.id_field,
                             spec.duration_field, spec.message_field))
        if self.anon_topic:
            for index, (kind, handler) in enumerate(self.handlers):
                self.alerts.topics.attach(self.anon_topic, f"{self.name}:{kind}:{index}",
                                          kind, handler)
        for inhibitor in self.inhibitors:
            self.alerts.topics.inhibitors.append(inhibitor)

    def stop(self) -> None:
        for index, (kind, _) in enumerate(self.handlers):
            self.alerts.topics.detach(self.anon_topic, f"{self.name}:{kind}:{index}")
        for inhibitor in self.inhibitors:
            if inhibitor in self.alerts.topics.inhibitors:
                self.alerts.topics.inhibitors.remove(inhibitor)

    def extra_stats(self) -> dict[str, Any]:
        # events_dropped is counted but, as in Kapacitor, not published
        c = self.counts
        return {"alerts_triggered": c.alerts_triggered, "oks_triggered": c.oks_triggered,
                "infos_triggered": c.infos_triggered, "warns_triggered": c.warns_triggered,
                "crits_triggered": c.crits_triggered, "alerts_inhibited": c.alerts_inhibited}

    def cardinality(self) -> int:
        return len(self.states)

    def delete_group(self, group: str) -> None:
        # Kapacitor forgets a deleted group's alert state (working_cardinality falls);
        # if the group comes back its level is restored from its event, as a new one's.
        self.states.pop(group, None)

    # -- levels ----------------------------------------------------------------------------
    def _match(self, level: int, expr: BoolExpression, t: int, fields: Any, tags: Any) -> bool:
        try:
            return expr.eval_bool(t, fields, tags)
        except Exception as exc:
            self.errors += 1
            self.log.error("error evaluating expression for level", level=str(Level(level)),
                           err=str(exc))
            return False

    def determine(self, t: int, fields: Any, tags: Any, current: Level) -> Level:
        levels = self.levels
        # Kapacitor's first pass goes down to the current level included (it is tried
        # again after the reset check, so its lambda may run twice for one point)
        for level in range(3, max(int(current) - 1, 0), -1):
            expr = levels[level]
            if expr is not None and self._match(level, expr, t, fields, tags):
                return Level(level)
        reset = self.resets[current]
        if reset is not None:
            try:
                if not reset.eval_bool(t, fields, tags):
                    return current
            except Exception as exc:
                self.errors += 1
                self.log.error("error evaluating reset expression for current level",
                               level=str(current), err=str(exc))
        for level in range(int(current), 0, -1):
            expr = levels[level]
            if expr is not None and self._match(level, expr, t, fields, tags):
                return Level(level)
        return Level.OK

    def _state(self, group: str, event_id: str) -> GroupState:
        state = self.states.get(group)
        if state is None:
            state = self.states[group] = GroupState([Level.OK] * self.history)
            restored = self.alerts.restored_state(self.anon_topic, self.topic, event_id)
            if restored is not None and restored.level is not Level.OK:
                state.add(restored.time, restored.level, self.flap, self.sco_interval)
                state.triggered(restored.time)
        return state

    # -- templates -------------------------------------------------------------------------
    def render_id(self, name: str, group: str, tags: dict[str, str]) -> str:
        cache = self._ids
        if cache is not None:
            cached = cache.get((name, group))
            if cached is not None:
                return cached
        try:
            event_id = self.id_t.execute(IdInfo(Name=name, TaskName=self.task_id,
                                                Group=group, Tags=StringMap(tags),
                                                ServerInfo=self.server_info))
        except Exception as exc:  # as in Kapacitor, the task stops
            raise self.stop_task(str(exc)) from None
        if cache is not None:
            if len(cache) >= ID_CACHE_SIZE:
                cache.clear()
            cache[(name, group)] = event_id
        return event_id

    def _event(self, event_id: str, name: str, group: str, tags: dict[str, str],
               fields: dict[str, Any], level: Level, t: int, duration: int,
               series: Any, previous: Level) -> Event:
        tags, fields = dict(tags), dict(fields)  # the event's own: later nodes may change
        text = _EventText(self, event_id, name, group, tags, fields, level, t, duration)
        message: str | Callable[[], str] = text.message
        details: str | Callable[[], str] = text.details
        if self.render_now:
            text.render(self.render_details)
            # rendered: the state holds the texts, not the template data (an event
            # waiting in a handler's queue then keeps a few objects, not dozens)
            message = text.message()
            if self.render_details:
                details = text.details()
        return Event("", EventState(event_id, message, details, t, duration, level),
                     previous, name, self.task_id, self.category, group, tags,
                     fields, series, not self.no_recoveries)

    def _fire(self, event: Event) -> None:
        """Count and publish, unless an inhibitor drops the event (its point goes on)."""
        if self.alerts.topics.inhibited(self.category, event.tags):
            self.counts.alerts_inhibited += 1
            return
        c = self.counts
        c.alerts_triggered += 1
        setattr(c, c.by_level[event.level], getattr(c, c.by_level[event.level]) + 1)
        if self.log.enabled("debug"):
            self.log.debug("alert triggered", level=str(event.level), id=event.id,
                           message=event.state.message)
        anon, topic = self.anon_topic, self.topic
        if anon and topic:
            self.alerts.publish(event.for_topic(anon))
            self.alerts.publish(event.for_topic(topic))
        elif anon or topic:  # one topic: the event itself goes (nothing else holds it)
            event.topic = anon or topic
            self.alerts.publish(event)

    def _annotate(self, tags: dict[str, str], fields: dict[str, Any], state: EventState
                  ) -> tuple[dict[str, str], dict[str, Any]]:
        spec = self.spec
        if spec.level_tag or spec.id_tag:
            tags = dict(tags)
            if spec.level_tag:
                tags[spec.level_tag] = str(state.level)
            if spec.id_tag:
                tags[spec.id_tag] = state.id
        if spec.level_field or spec.message_field or spec.id_field or spec.duration_field:
            fields = dict(fields)
            if spec.level_field:
                fields[spec.level_field] = str(state.level)
            if spec.message_field:
                fields[spec.message_field] = state.message
            if spec.id_field:
                fields[spec.id_field] = state.id
            if spec.duration_field:
                fields[spec.duration_field] = state.duration
        return tags, fields

    def _set_inhibitors(self, group: str, tags: dict[str, str], level: Level) -> None:
        # Set when an event is triggered, from the group's tags: the equal tags that are
        # not group-by dimensions have an empty value (as in Kapacitor).
        for inhibitor in self.inhibitors:
            inhibitor.set(group, tags, level)

    # -- data ------------------------------------------------------------------------------
    def point(self, p: Point) -> None:
        group = p.group or "nil"
        event_id = self.render_id(p.name, group, p.tags)
        state = self._state(group, event_id)
        previous = state.level
        level = self.determine(p.time, p.fields, p.tags, previous)
        state.add(p.time, level, self.flap, self.sco_interval)
        if (self.flap is not None and state.flapping) or (
                self.sco and not state.changed and not state.expired):
            return
        if level is Level.OK and not state.changed:
            return
        state.triggered(p.time)
        if self.inhibitors:
            tags = p.tags
            self._set_inhibitors(group, {d: tags.get(d, "") for d in p.dims}, level)
        if self.no_recoveries and level is Level.OK:
            return
        def series(p: Point = p) -> list[dict[str, Any]]:  # rendered if a handler reads it
            # (bound to the point as it came: the annotated copy below must not show)
            return [Batch(p.name, p.group, p.tags, p.dims, False, p.time,
                          [BatchPoint(p.time, p.fields, p.tags)]).row()]
        event = self._event(event_id, p.name, group, p.tags, p.fields, level, p.time,
                            state.duration, series, previous)
        self._fire(event)
        if self.annotate:
            tags, fields = self._annotate(p.tags, p.fields, event.state)
            group, spec = p.group, self.spec
            if spec.level_tag in p.dims or spec.id_tag in p.dims:
                # a group-by tag was replaced: the point is in another group
                group = group_id(p.name, tags, p.dims, p.group.startswith(p.name + "\n"))
            p = Point(p.name, tags, fields, p.time, p.database, p.retention_policy, group,
                      p.dims)
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        if not b.points:
            return
        group = b.group or "nil"
        event_id = self.render_id(b.name, group, b.tags)
        state = self._state(group, event_id)
        previous = state.level
        lowest, highest, highest_point = Level.CRITICAL, Level.OK, None
        for bp in b.points:
            level = self.determine(bp.time, bp.fields, bp.tags, previous)
            lowest = min(lowest, level)
            if level > highest or highest_point is None:
                highest, highest_point = level, bp
        level = lowest if self.all else highest
        assert highest_point is not None
        t = b.tmax if (self.all or level is Level.OK) else highest_point.time
        state.add(t, level, self.flap, self.sco_interval)
        recovery = state.changed and level is Level.OK
        fire_level = level is not Level.OK and not (
            (self.flap is not None and state.flapping)
            or (self.sco and not state.changed and not state.expired))
        if not (recovery or fire_level):
            return
        state.triggered(t)
        if self.inhibitors:
            self._set_inhibitors(group, b.tags, level)
        if self.no_recoveries and level is Level.OK:
            return
        event = self._event(event_id, b.name, group, b.tags, highest_point.fields, level, t,
                            state.duration, lambda b=b: [b.row()], previous)
        self._fire(event)
        if self.annotate:
            points = []
            for bp in b.points:
                tags, fields = self._annotate(bp.tags, bp.fields, event.state)
                points.append(BatchPoint(bp.time, fields, tags))
            tags, _ = self._annotate(b.tags, {}, event.state)
            if tags is b.tags:
                b = Batch(b.name, b.group, tags, b.dims, b.by_name, b.tmax, points)
            else:  # as Kapacitor: the batch is now grouped by all its tags
                dims = tuple(sorted(tags))
                b = Batch(b.name, group_id(b.name, tags, dims, b.by_name), tags, dims,
                          b.by_name, b.tmax, points)
        self.emit_batch(b)
