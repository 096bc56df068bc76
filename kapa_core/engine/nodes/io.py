"""Runtimes of nodes that reach outside the task: kapacitorLoopback and httpPost.

They follow the engine's rule for I/O: the synchronous node call only hands the work to
the node's own trio task through a bounded channel (full → dropped and counted), and
that task does the slow part. A failing endpoint is logged and counted, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import httpx
import trio

from kapa_core.alert.event import GoStruct
from kapa_core.alert.gojson import dumps
from kapa_core.engine.node import DEFAULT_TIMING, Node, Timing
from kapa_core.engine.nodes.enrich import SideloadSources
from kapa_core.gotemplate import GoTime, StringMap, TemplateError, parse
from kapa_core.logs import Logger
from kapa_core.models import gojson
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import HTTPPostSpec, KapacitorLoopbackSpec

if TYPE_CHECKING:
    from kapa_core.alert.event import Event, EventState
    from kapa_core.alert.topics import Inhibitor

QUEUE = 1000


class AlertTopics(Protocol):
    """The alert topics as an alert node uses them."""

    @property
    def inhibitors(self) -> list[Inhibitor]: ...

    def attach(self, topic_id: str, handler_id: str, kind: str, handler: Any) -> object: ...

    def detach(self, topic_id: str, handler_id: str) -> None: ...

    def inhibited(self, category: str, tags: dict[str, str]) -> bool: ...


class Alerts(Protocol):
    """The alert service as an alert node uses it."""

    @property
    def topics(self) -> AlertTopics: ...

    def task_handlers(self, spec: Any, task_id: str) -> tuple[list[tuple[str, Any]], bool]: ...

    def restored_state(self, anon_topic: str, topic: str, event_id: str
                       ) -> EventState | None: ...

    def publish(self, event: Event) -> None: ...


@dataclass
class NodeContext:
    """What I/O nodes get from the daemon."""

    write_points: Callable[[str, str, list[Any]], None] = lambda db, rp, points: None
    httppost: dict[str, Any] = field(default_factory=dict)  # [[httppost]] by endpoint
    allowed: Callable[[str], None] = lambda url: None  # raises for blacklisted targets
    alerts: Alerts | None = None  # the AlertService
    task_id: str = ""
    hostname: str = "localhost"
    cluster_id: str = ""
    server_id: str = ""
    #: the running InfluxDB service (``[[influxdb]]`` clients), or None; a function because
    #: a config override re-opens the service
    influxdb: Callable[[], Any] = lambda: None
    #: the daemon's config section ``name`` (``[[kubernetes]]`` elements...), or None
    config_section: Callable[[str], Any] = lambda name: None
    #: how the nodes time themselves (the daemon's [stats] timing settings)
    timing: Timing = DEFAULT_TIMING
    #: the sideload sources open in this daemon, shared by its tasks
    sideloads: SideloadSources = field(default_factory=SideloadSources)


class LoopbackNode(Node):
    """Writes what it receives back into the daemon's stream under its database and
    retention policy, as Kapacitor does: a point takes ``.measurement()`` and the
    ``.tag()`` values; a batch's points keep the batch's name (Kapacitor ignores
    ``.measurement()`` for batches) and take the tags."""

    def __init__(self, spec: KapacitorLoopbackSpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        self.db = spec.database
        self.rp = spec.retention_policy
        for db, rp in getattr(spec.pipeline, "dbrps", ()):
            if (db, rp) == (self.db, self.rp):
                from kapa_core.engine.tasks import StartRefused

                raise StartRefused(f'loop detected on dbrp: "{db}"."{rp}"')
        self.measurement = spec.measurement
        self.tags = dict(spec.tags)
        self.write = ctx.write_points
        self.points_written = 0

    def extra_stats(self) -> dict[str, Any]:
        return {"points_written": self.points_written}

    def _tags(self, tags: dict[str, str]) -> dict[str, str]:
        return {**tags, **self.tags} if self.tags else tags

    def point(self, p: Point) -> None:
        self.write(self.db, self.rp, [Point(self.measurement or p.name, self._tags(p.tags),
                                            p.fields, p.time, self.db, self.rp)])
        self.points_written += 1

    def batch(self, b: Batch) -> None:
        self.write(self.db, self.rp, [Point(b.name, self._tags(bp.tags), bp.fields, bp.time,
                                            self.db, self.rp) for bp in b.points])
        self.points_written += len(b.points)


def _template(text: str, path: str = "") -> Any:
    """Kapacitor's httppost.GetTemplate: a Go template named ``body`` (with a ``json``
    function when given as text), or None."""
    if text:
        try:
            return parse(text, "body", funcs={"json": lambda v: dumps(v) + "\n"})
        except TemplateError as exc:
            raise ValueError(f"failed to parse template: {exc}") from None
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                data = f.read()
        except OSError as exc:
            raise ValueError(f'failed to read template file "{path}": {exc}') from None
        try:
            return parse(data, "body")
        except TemplateError as exc:
            raise ValueError(f'failed to parse template from file "{path}": {exc}') from None
    return None


class _MappedRow(GoStruct):
    go_type = "*kapacitor.mappedRow"


def _mapped_row(row: dict[str, Any], points: list[BatchPoint]) -> _MappedRow:
    """What URL and row templates see: Kapacitor's mappedRow (Name, Tags and Values, one
    map of column to value per row, times as time.Time)."""
    columns = row.get("columns", [])
    values = []
    for p, raw in zip(points, row.get("values", []), strict=False):
        value = dict(zip(columns, raw, strict=False))
        value["time"] = GoTime(p.time)
        values.append(value)
    return _MappedRow(Name=row.get("name", ""), Tags=StringMap(row.get("tags", {})),
                      Values=values)


class HTTPPostNode(Node):
    """POSTs each point or batch as one row. As in Kapacitor, the URL (given, or the
    ``[[httppost]]`` endpoint's) is a Go template executed with the row, and an endpoint's
    ``row-template`` (or ``row-template-file``) writes the body instead of the JSON."""

    def __init__(self, spec: HTTPPostSpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        self.spec_ = spec
        self.ctx = ctx
        from kapa_core.engine.tasks import StartRefused

        endpoint = ctx.httppost.get(spec.endpoint) if spec.endpoint else None
        if spec.endpoint and endpoint is None:
            raise StartRefused(f"endpoint '{spec.endpoint}' does not exist")
        url = spec.urls[0] if spec.urls else cast(Any, endpoint).url
        try:
            self.url_template = _template(url)
        except ValueError as exc:
            if spec.urls:
                raise StartRefused(f"error in url templating: {exc}") from None
            raise
        self.url = url
        self.row_template = None
        if endpoint is not None:
            self.row_template = _template(getattr(endpoint, "row_template", ""),
                                          getattr(endpoint, "row_template_file", ""))
        # Kapacitor sets Content-Type (for JSON bodies) first, then the endpoint's
        # headers, then the node's.
        self.headers = httpx.Headers()
        if self.row_template is None:
            self.headers["Content-Type"] = "application/json"
        for key, value in (endpoint.headers if endpoint else {}).items():
            self.headers[key] = value
        for key, value in spec.headers:
            self.headers[key] = value
        self.auth = None
        if endpoint is not None and endpoint.basic_auth.username:
            self.auth = (endpoint.basic_auth.username, endpoint.basic_auth.password)
        self.code_field = spec.code_field
        # Rows are written (and templates executed) by the node's I/O task.
        self.send, self.receive = trio.open_memory_channel[tuple[Any, Any]](QUEUE)
        self.dropped = 0
        self.groups: set[str] = set()  # the groups seen (working_cardinality)

    def extra_stats(self) -> dict[str, Any]:
        # Kapacitor's httpPost has no statistics of its own (a failed POST is one of the
        # node's errors); kapa-core shows its queue drops only once there are some.
        return {"dropped": self.dropped} if self.dropped else {}

    def _queue(self, row: Any, item: Any) -> None:
        try:
            self.send.send_nowait((row, item))
        except trio.WouldBlock:
            self.dropped += 1

    def cardinality(self) -> int:
        return len(self.groups)

    def delete_group(self, group: str) -> None:
        self.groups.discard(group)

    def barrier(self, group: str, t: int) -> None:
        self.groups.add(group)  # a barrier opens its group, as in Kapacitor

    def point(self, p: Point) -> None:
        self.groups.add(p.group)
        self._queue((p.name, p.tags, [BatchPoint(p.time, p.fields, p.tags)]), p)
        if not self.code_field:
            self.emit_point(p)

    def batch(self, b: Batch) -> None:
        self.groups.add(b.group)
        self._queue((b.name, b.tags, b.points), b)
        if not self.code_field:
            self.emit_batch(b)

    def _request(self, name: str, tags: dict[str, str], points: list[BatchPoint]
                 ) -> tuple[str, bytes]:
        row = Batch(name, "", tags, (), False, 0, points).row()
        if self.row_template is None:
            content = (gojson.dumps({"series": [row]}) + "\n").encode()
            mapped = _mapped_row(row, points) if "{{" in self.url else None
        else:
            mapped = _mapped_row(row, points)
            try:
                content = self.row_template.execute(mapped).encode()
            except Exception as exc:
                raise ValueError(f"failed to execute template: {exc}") from None
        url = self.url
        if mapped is not None:
            try:
                url = self.url_template.execute(mapped)
            except Exception as exc:
                raise ValueError(f"failed to execute url template: {exc}") from None
        return url, content

    async def run_io(self) -> None:
        timeout = self.spec_.timeout / 1e9 or None
        async with httpx.AsyncClient(timeout=timeout, auth=self.auth) as client:
            async for (name, tags, points), item in self.receive:
                code = 0
                url = self.url
                try:
                    url, content = self._request(name, tags, points)
                    self.ctx.allowed(url)
                    response = await client.post(url, content=content, headers=self.headers)
                    code = response.status_code
                    if response.is_error:
                        self.errors += 1
                        self.log.error("POST returned non 2xx status code", url=url,
                                       code=code, body=response.text[:512]
                                       if self.spec_.capture_response else None)
                except Exception as exc:
                    self.errors += 1
                    self.log.error("failed to POST data", url=url, err=str(exc))
                if self.code_field:
                    self._emit_with_code(item, code)

    def _emit_with_code(self, item: Any, code: int) -> None:
        if isinstance(item, Point):
            self.emit_point(Point(item.name, item.tags, {**item.fields, self.code_field: code},
                                  item.time, item.database, item.retention_policy, item.group,
                                  item.dims))
        else:
            self.emit_batch(Batch(item.name, item.group, item.tags, item.dims, item.by_name,
                                  item.tmax, [BatchPoint(bp.time, {**bp.fields,
                                                                   self.code_field: code},
                                                         bp.tags) for bp in item.points]))
