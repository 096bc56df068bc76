"""Helpers for kapa-core's tests and for third-party plugin and script authors.

* :mod:`kapa_core.testing.daemon`: the real daemon in a subprocess
  (:class:`DaemonProcess`), ``kapa-core`` commands (:func:`run_cli`), polling with a
  deadline (:func:`wait_until`), plugins loaded from given modules
  (:func:`plugin_manager`).
* :mod:`kapa_core.testing.script`: a TICKscript (:func:`run_script`) or a pipeline of
  specs (:func:`run_nodes`) run over given points without the daemon, and what each node
  emitted (:class:`ScriptRun`).
* :mod:`kapa_core.testing.http`: loopback servers; :class:`RecordingHTTPServer` keeps
  every request it gets, for handler and ``httpPost`` tests.

Nothing here imports a plugin: handler kinds come from the installed plugins' entry
points when a caller asks for them (``run_script(..., handler_kinds="installed")``).
"""

from kapa_core.testing.daemon import (
    DaemonProcess,
    plugin_manager,
    run_cli,
    signal,
    to_toml,
    wait_until,
)
from kapa_core.testing.http import (
    LocalHTTPServer,
    Recorded,
    RecordingHTTPServer,
    ServedHTTP,
    TCPRecorder,
)
from kapa_core.testing.script import (
    HandledEvent,
    ScriptRun,
    batches_of,
    parse_points,
    run_nodes,
    run_script,
)

__all__ = ["DaemonProcess", "HandledEvent", "LocalHTTPServer", "Recorded",
           "RecordingHTTPServer", "ScriptRun", "ServedHTTP", "TCPRecorder", "batches_of",
           "parse_points", "plugin_manager", "run_cli", "run_nodes", "run_script", "signal",
           "to_toml", "wait_until"]
