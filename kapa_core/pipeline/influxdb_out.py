"""``|influxDBOut()``: write a task's points or batches to an InfluxDB cluster.

The node takes stream or batch data and provides nothing to chain from (as in
Kapacitor). Properties and defaults are Kapacitor's: ``cluster`` (empty: the default
``[[influxdb]]`` element), ``database``, ``retentionPolicy``, ``measurement``,
``writeConsistency``, ``precision``, ``buffer`` (1000 points), ``flushInterval`` (10s),
``create`` and repeatable ``tag(key, value)`` (a later call for the same key wins).

Checks done here, at define time, where Kapacitor would only fail at every write:

* ``buffer`` and ``flushInterval`` must be positive;
* ``precision`` must be one InfluxDB understands (``ns``/``n``, ``us``/``u``/``µs``,
  ``ms``, ``s``, ``m``, ``h``);
* ``writeConsistency`` must be ``any``, ``one``, ``quorum`` or ``all``;
* batches carry no database (only stream points remember the one they were written
  to), so a node fed by batches must name ``.database()``; so must ``.create()``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kapa_core.models.duration import SECOND, Duration
from kapa_core.pipeline.base import Edge, NodeSpec, Prop, SpecError, chain, check_args

DEFAULT_BUFFER = 1000
DEFAULT_FLUSH_INTERVAL = Duration(10 * SECOND)

#: precision property value -> what InfluxDB 1.x's /write takes in ``precision=``.
#: InfluxDB 1.x reads ``us`` as nanoseconds, so microseconds are always sent as ``u``.
PRECISIONS = {"": "", "n": "ns", "ns": "ns", "u": "u", "us": "u", "µ": "u", "µs": "u",
              "μs": "u", "ms": "ms", "s": "s", "m": "m", "h": "h"}
CONSISTENCIES = ("any", "one", "quorum", "all")


class InfluxDBOutSpec(NodeSpec):
    """``|influxDBOut()``: buffered writes of the node's input to InfluxDB."""

    kind = "influxdb_out"
    wants = Edge.SAME
    provides = Edge.NONE
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "cluster": Prop(("string",)),
        "database": Prop(("string",)),
        "retentionPolicy": Prop(("string",), attr="retention_policy"),
        "measurement": Prop(("string",)),
        "writeConsistency": Prop(("string",), attr="write_consistency"),
        "precision": Prop(("string",)),
        "buffer": Prop(("int",)),
        "flushInterval": Prop(("duration",), attr="flush_interval"),
        "create": Prop(mode="flag"),
        "tag": Prop(("string", "string"), attr="tag_pairs", mode="pairs"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.cluster = ""
        self.database = ""
        self.retention_policy = ""
        self.measurement = ""
        self.write_consistency = ""
        self.precision = ""
        self.buffer = DEFAULT_BUFFER
        self.flush_interval = DEFAULT_FLUSH_INTERVAL
        self.create = False
        self.tag_pairs: list[tuple[str, str]] = []

    @property
    def tags(self) -> dict[str, str]:
        """The static tags, later ``.tag()`` calls overriding earlier ones."""
        return dict(self.tag_pairs)

    def validate(self) -> None:
        if self.buffer <= 0:
            raise SpecError(f"influxDBOut: buffer must be positive, got {self.buffer}")
        if self.flush_interval <= 0:
            raise SpecError("influxDBOut: flushInterval must be positive, got "
                            f"{self.flush_interval}")
        if self.precision not in PRECISIONS:
            raise SpecError(f"influxDBOut: invalid precision {self.precision!r} (expected "
                            "ns, us, ms, s, m or h)")
        if self.write_consistency and self.write_consistency.lower() not in CONSISTENCIES:
            raise SpecError(f"influxDBOut: invalid writeConsistency "
                            f"{self.write_consistency!r} (expected any, one, quorum or all)")
        for key, _ in self.tag_pairs:
            if not key:
                raise SpecError("influxDBOut: tag key must not be empty")
        if self.create and not self.database:
            raise SpecError("influxDBOut: .create() needs .database() to know what to "
                            "create")
        if not self.database and self.edge_in() is Edge.BATCH:
            raise SpecError("influxDBOut: must set .database(): batches do not carry the "
                            "database they came from")

    def attributes(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "database": self.database,
                "retentionPolicy": self.retention_policy, "measurement": self.measurement,
                "writeConsistency": self.write_consistency, "precision": self.precision,
                "buffer": self.buffer, "flushInterval": self.flush_interval,
                "create": self.create, "tags": self.tags}


@chain("influxDBOut")
def _influxdb_out(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("influxDBOut", (), args)
    return InfluxDBOutSpec(pipeline, [parent])
