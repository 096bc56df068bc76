"""An example kapa-core UDF bridge: Python functions that run inside the daemon.

The bridge ``example`` runs the functions in :data:`FUNCTIONS` for the
``[udf.functions.<name>]`` sections that say ``bridge = "example"``. Each is asked for its
info once, when the daemon starts; each ``@name()`` node of a running task opens a
session, which gets the task's points with plain calls and sends its results on at once.

Everything it needs from kapa-core comes from ``kapa_core.plugin_api``; the package is
found through its ``kapa_core.plugins`` entry point once it is pip-installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from kapa_core.plugin_api import (
    BeginBatch,
    EdgeType,
    EndBatch,
    Point,
    UDFBridge,
    UDFContext,
    UDFError,
    UDFInfo,
    UDFNodeContext,
    UDFOption,
    UDFSession,
    ValueType,
    hookimpl,
)

__version__ = "1.0.0"


class ScaleSession:
    """``@scale().field('value').factor(2.0).as('scaled')``: each point of the stream
    goes on with ``field * factor`` in ``as`` (the field itself by default). A point
    without the field, or with a field that is not a number, goes on unchanged.

    Its state is how many points it scaled, kept across restarts through snapshots.
    """

    def __init__(self, options: Sequence[UDFOption], context: UDFNodeContext) -> None:
        self.field = "value"
        self.factor = 1.0
        self.as_ = ""
        for option in options:  # a later call of an option wins
            value = option.values[0]
            if option.name == "field":
                self.field = str(value)
            elif option.name == "factor":
                self.factor = float(value)
            elif option.name == "as":
                self.as_ = str(value)
        if not self.field:
            raise UDFError("scale: field must not be empty")
        self.target = self.as_ or self.field
        self.output = context.output
        self.log = context.logger
        self.scaled = 0

    def point(self, p: Point) -> None:
        value = p.fields.get(self.field)
        if type(value) is int or type(value) is float:
            fields = dict(p.fields)
            fields[self.target] = value * self.factor
            p = Point(p.name, p.tags, fields, p.time, p.database, p.retention_policy,
                      p.group, p.dims)
            self.scaled += 1
        self.output.point(p)

    def begin_batch(self, begin: BeginBatch) -> None:
        raise UDFError("scale takes a stream, not batches")

    def end_batch(self, end: EndBatch) -> None:
        raise UDFError("scale takes a stream, not batches")

    async def snapshot(self) -> bytes:
        return json.dumps({"scaled": self.scaled}).encode()

    def restore(self, data: bytes) -> None:
        try:
            self.scaled = int(json.loads(data)["scaled"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UDFError(f"scale: cannot restore the snapshot: {exc}") from None

    def close(self) -> None:
        self.log.info("scale session closed", scaled=self.scaled)


class InProcessFunction:
    """A function of this package: its info, and a session class to open."""

    def __init__(self, info: UDFInfo,
                 session: Callable[[Sequence[UDFOption], UDFNodeContext], UDFSession]
                 ) -> None:
        self._info = info
        self._session = session

    async def info(self) -> UDFInfo:
        return self._info

    def open(self, options: Sequence[UDFOption], context: UDFNodeContext) -> UDFSession:
        return self._session(options, context)


#: The functions this package ships, by the name of their [udf.functions.<name>] section.
FUNCTIONS: dict[str, InProcessFunction] = {
    "scale": InProcessFunction(
        UDFInfo(wants=EdgeType.STREAM, provides=EdgeType.STREAM,
                options={"field": (ValueType.STRING,), "factor": (ValueType.DOUBLE,),
                         "as": (ValueType.STRING,)}),
        ScaleSession),
}


def make_function(name: str, config: Any, context: UDFContext) -> InProcessFunction:
    function = FUNCTIONS.get(name)
    if function is None:
        raise UDFError(f"the example bridge has no function named {name!r} (it has: "
                       f"{', '.join(sorted(FUNCTIONS))})")
    context.logger.debug("example function ready", udf=name)
    return function


@hookimpl
def kapa_udf_bridges() -> list[UDFBridge]:
    return [UDFBridge(name="example", factory=make_function,
                      doc="Python functions shipped by kapa-example-udf, run in-process.")]
