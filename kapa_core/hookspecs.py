"""The contract between kapa-core and its plugins, built-in or pip-installed.

Plugins are modules (or objects) registered under the entry-point group ``kapa_core.plugins``
that implement any subset of these hooks with ``@hookimpl``. Registration hooks return lists
of small frozen objects from :mod:`kapa_core.plugin_api`; the core gathers them, refuses a
name claimed twice (naming both plugins) and builds its registries.

Hooks take keyword arguments, and an implementation may accept fewer of them, so adding an
argument later is safe for third parties.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # keeps this module cheap to import
    from kapa_core.plugin_api import (
        DiscoveryKind,
        HandlerKind,
        InputListener,
        Section,
        StartupContext,
        UDFBridge,
    )

PROJECT = "kapa_core"
ENTRY_POINT_GROUP = "kapa_core.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def kapa_config_sections() -> Sequence[Section]:
    """Config sections this plugin owns: keys, defaults, secrets, the service they feed.

    Called once, before any file, environment variable or stored override is read. A
    section name claimed by two plugins stops the daemon with an error naming both. A
    section's ``service`` factory is called with a ServiceContext each time the section is
    (re)configured; the service's ``serve(task_status=...)`` runs inside the daemon's
    nursery until it is cancelled (shutdown, or a config override of that section).
    """


@hookspec
def kapa_handler_kinds() -> Sequence[HandlerKind]:
    """Alert handler kinds: the topic-handler ``kind``, the alert-node property (``.slack()``)
    with its chained options, and the factory that builds a handler from options."""


@hookspec
def kapa_input_listeners() -> Sequence[InputListener]:
    """Input listeners (collectd, opentsdb, udp...): for every enabled element of its
    config section the daemon calls ``factory(element, InputContext)`` and runs the
    returned service, which turns received data into points written into the stream.
    Started after the core services; a config override of the section re-opens its
    listeners; closed at shutdown (see :mod:`kapa_core.inputs`)."""


@hookspec
def kapa_discovery_kinds() -> Sequence[DiscoveryKind]:
    """Discovery services that produce scrape targets for ``[[scraper]]`` elements: for
    every enabled element of its config section that a scraper names, the daemon calls
    ``factory(element, DiscoveryContext)`` and runs the returned discoverer, which
    publishes its target groups with ``context.update(groups)``; re-opened on a config
    override of the section, closed at shutdown (see :mod:`kapa_core.discovery`)."""


@hookspec
def kapa_udf_bridges() -> Sequence[UDFBridge]:
    """Ways to run user defined functions (process, socket, in-process...): at start each
    ``[udf.functions.<name>]`` goes to the bridge its ``bridge`` key names, or else to the
    first whose ``selects(function_config)`` is true; ``factory(name, function_config,
    UDFContext)`` returns the function, asked once for its info (a failing one is logged
    and left out). Each ``@name()`` node of a starting task opens a session (see
    :mod:`kapa_core.udf`)."""


@hookspec
def kapa_startup(context: StartupContext) -> None:
    """Called once after every service has opened, before the daemon reports it is ready."""


@hookspec
def kapa_shutdown(context: StartupContext) -> None:
    """Called once when the daemon begins to shut down, before services close."""
