"""The UDF node spec: ``node@name()`` with the options the function's info declares.

As in Kapacitor, the node is named after the function (``scale2``), its edges are the
function's wants and provides, and each option of the info is a property method whose
arguments must match the declared value types in number and order (an option may be
called several times; each call is passed on). The wording of the errors is
Kapacitor's (``unexpected number of args to factor, got 2 expected 1``, ``unexpected
arg to factor, got INT expected DOUBLE``); the evaluator adds line and column.
"""

from __future__ import annotations

from typing import Any

from kapa_core.pipeline.base import Edge, NodeSpec, Prop, SpecError
from kapa_core.udf import Available, EdgeType, UDFOption, ValueType, value_type

_EDGES = {EdgeType.STREAM: Edge.STREAM, EdgeType.BATCH: Edge.BATCH}


class UDFSpec(NodeSpec):
    kind = "udf"

    def __init__(self, pipeline: Any, parent: NodeSpec, function: Available) -> None:
        # The function decides the edges: set on the instance before the node is linked.
        self.__dict__["wants"] = _EDGES[function.info.wants]
        self.__dict__["provides"] = _EDGES[function.info.provides]
        super().__init__(pipeline, [parent])
        self.udf_name = function.name
        self.function = function
        self.options: list[UDFOption] = []

    @property
    def name(self) -> str:
        return f"{self.udf_name}{self.id}"

    def all_properties(self) -> dict[str, Prop]:
        """The node's properties and, taking precedence as in Kapacitor, one per option
        of the function (an instance's: each function has its own)."""
        props = super().all_properties()
        for option in self.function.info.options:
            props[option] = Prop(attr=f"option:{option}")
        return props

    def set_property(self, name: str, args: list[Any]) -> None:
        types = self.function.info.options.get(name)
        if types is None:
            super().set_property(name, args)
            return
        if len(args) != len(types):
            raise SpecError(f"unexpected number of args to {name}, got {len(args)} "
                            f"expected {len(types)}")
        for arg, expected in zip(args, types, strict=True):
            got = value_type(arg)
            if got is not expected:
                # Kapacitor names a value of no option type (a lambda, a list...) BOOL,
                # its zero type; kapa-core refuses it even where BOOL is expected.
                shown = got.name if got is not None else "BOOL"
                if got is None and expected is ValueType.BOOL:
                    shown = f"a value of no option type ({type(arg).__name__})"
                raise SpecError(f"unexpected arg to {name}, got {shown} expected "
                                f"{expected.name}")
        self.options.append(UDFOption(name, tuple(args)))
