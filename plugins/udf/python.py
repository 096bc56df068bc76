"""In-process Python UDFs: ``[udf.functions.<name>]`` with ``python = "package.module:Class"``.

A kapa-core key: ``Class`` is a UDF handler written with ``kapa_core.udf.agent`` (the
class a process UDF serves, unchanged), imported from the daemon's ``sys.path`` (set
``PYTHONPATH`` or install the package) and run inside the daemon, one handler per
``@name()`` node, without a process or wire framing (``kapa_core.plugin_api.
InProcessFunction``). A path that does not import, or names no class, is logged with the
function's name and the function is left out; the daemon keeps running.
"""

from __future__ import annotations

from typing import Any

from kapa_core.plugin_api import (
    InProcessFunction,
    UDFBridge,
    UDFContext,
    hookimpl,
    load_handler_class,
)


def make_function(name: str, config: Any, context: UDFContext) -> InProcessFunction:
    return InProcessFunction(name, load_handler_class(config.python), context.logger)


def _selects(config: Any) -> bool:
    return bool(getattr(config, "python", ""))


@hookimpl
def kapa_udf_bridges() -> list[UDFBridge]:
    return [UDFBridge(name="python", factory=make_function, selects=_selects,
                      doc="UDF handler classes run in the daemon "
                          "(python = \"package.module:Class\").")]
