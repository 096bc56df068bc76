"""Running the plugin families built per config element: input listeners and discoverers.

For every registered :class:`~kapa_core.inputs.InputListener` and
:class:`~kapa_core.discovery.DiscoveryKind` the daemon opens one :class:`ElementGroup`
in its service runner, named ``input:<name>`` or ``discovery:<name>``. The group calls
the plugin's factory for every enabled element of the section (an element without an
``enabled`` key counts as enabled; a disabled one is not started), starts each in its
own cancel scope and closes them together. A config override of the section rebuilds
only the elements whose config changed (and starts new ones, stops removed ones); the
other elements of the section, and every other section, keep running untouched.

A discoverer element runs only while an enabled element of some listener follows it
(:attr:`~kapa_core.inputs.InputListener.follows`: a ``[[scraper]]`` naming it), as
Kapacitor runs a discoverer only for the scrapers that name it: an element kept enabled
for another use (an ``[[ec2]]`` element for ``ec2Autoscale``) makes no discovery calls. A
config override of a followed listener's section re-decides which discoverers run.

Failures, decided as Kapacitor does where it decides:

* At startup an element that cannot start (a port in use) stops the daemon with an
  error naming the section and element, as ``kapacitord`` stops when an input service
  fails to open; nothing is left half-started.
* On a config override, the elements that start run, each one that cannot is logged
  with its section and element, and the API answers 500 naming them; the daemon keeps
  running.
* An element that fails after it started is logged; the others keep running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from kapa_core.config.schema import Section
from kapa_core.discovery import DiscoveryContext, DiscoveryKind, DiscoveryRegistry
from kapa_core.errors import APIError, KapaError
from kapa_core.httpclients import HTTPClients
from kapa_core.inputs import InputContext, InputListener, Statistics
from kapa_core.logs import Logger
from kapa_core.models.point import Point
from kapa_core.services import DaemonFacts, Service, ServiceRunner


class ElementStartError(KapaError):
    """A listener or discoverer element could not start."""


@dataclass(frozen=True)
class Element:
    """One enabled element: its label for logs and errors, how to build its service
    and how to release what its context published once it stops."""

    label: str
    build: Callable[[], tuple[Service, Callable[[], None]]]
    #: the element's config: an element whose config did not change keeps running
    config: Any = None


class ElementGroup:
    """The running elements of one family member (one section)."""

    def __init__(self, family: str, section: str, elements: list[Element], log: Logger, *,
                 strict: bool) -> None:
        self.family = family
        self.section = section
        self.elements = elements
        self.log = log
        self.strict = strict
        #: labels of the elements running now
        self.running: list[str] = []
        self._nursery: trio.Nursery | None = None
        #: label -> (element, its cancel scope, set once it has stopped)
        self._scopes: dict[str, tuple[Element, trio.CancelScope, trio.Event]] = {}

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            failures = await self._start(self.elements)
            if failures and self.strict:
                raise ElementStartError("; ".join(failures))
            task_status.started(failures)
            await trio.sleep_forever()

    async def _start(self, elements: list[Element]) -> list[str]:
        assert self._nursery is not None
        failures: list[str] = []
        for element in elements:
            try:
                service, release = element.build()
            except Exception as exc:
                failures.append(self._failed(element, exc))
                continue
            try:
                await self._nursery.start(self._supervise, element, service, release)
            except Exception as exc:
                failures.append(self._failed(element, _single(exc)))
        return failures

    async def update(self, elements: list[Element]) -> list[str]:
        """Run ``elements`` from now on: those running with the same label and config
        keep running, the others stop; new and changed ones start. Returns the
        failures of those that could not start."""
        wanted = {e.label: e for e in elements}
        keep = [label for label, (element, _, _) in self._scopes.items()
                if label in wanted and wanted[label].config == element.config]
        for label in [label for label in self._scopes if label not in keep]:
            _, scope, done = self._scopes.pop(label)
            scope.cancel()
            await done.wait()
        self.elements = elements
        return await self._start([e for e in elements if e.label not in keep])

    def _failed(self, element: Element, exc: BaseException) -> str:
        message = f"{self.family} {element.label}: {type(exc).__name__}: {exc}"
        self.log.error(f"{self.family} failed to start", section=self.section,
                       element=element.label, err=f"{type(exc).__name__}: {exc}")
        return message

    async def _supervise(self, element: Element, service: Service,
                         release: Callable[[], None], *, task_status: Any) -> None:
        label = element.label
        ready = False
        done = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._scopes[label] = (element, scope, done)
                async with trio.open_nursery() as inner:
                    await inner.start(service.serve)
                    ready = True
                    self.running.append(label)
                    self.log.info(f"{self.family} started", section=self.section,
                                  element=label)
                    task_status.started()
        except Exception as exc:  # stopped with an error after it started: log it only
            if not ready:
                raise _single(exc) from None
            err = _single(exc)
            self.log.error(f"{self.family} stopped with an error", section=self.section,
                           element=label, err=f"{type(err).__name__}: {err}")
        finally:
            if label in self.running:
                self.running.remove(label)
            current = self._scopes.get(label)
            if current is not None and current[2] is done:
                del self._scopes[label]
            release()
            done.set()


def _single(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _enabled(element: Any) -> bool:
    return bool(getattr(element, "enabled", True))


def _elements_of(section: Section, value: Any) -> list[tuple[str, str, Any]]:
    """(label, element name, element config) of every enabled element of ``value``."""
    if section.multiple:
        out = []
        for index, element in enumerate(value or ()):
            if _enabled(element):
                name = section.element_name(element) if section.element_key else ""
                label = f"{section.name}[{index}]" + (f" ({name})" if name else "")
                out.append((label, name, element))
        return out
    return [(section.name, "", value)] if _enabled(value) else []


@dataclass
class Plumbing:
    """What the daemon lends the contexts it builds (the families never see it)."""

    write_points: Callable[[str, str, list[Point]], None]
    check_outgoing: Callable[[str], None]
    facts: Callable[[], DaemonFacts]
    statistics: Statistics
    discovery: DiscoveryRegistry
    clients: HTTPClients = field(default_factory=HTTPClients)


class PluginElements:
    """The input listeners and discoverers of one daemon, opened in its service runner."""

    def __init__(self, sections: Mapping[str, Section],
                 listeners: Mapping[str, InputListener],
                 kinds: Mapping[str, DiscoveryKind], plumbing: Plumbing) -> None:
        self.sections = sections
        self.plumbing = plumbing
        self.log = Logger("server")
        # A plugin naming a section nobody declared is left out, like a plugin that
        # fails to load: logged, and the daemon runs without it.
        self.listeners = {n: item for n, item in listeners.items()
                          if self._known(item, "input listener")}
        self.kinds = {n: item for n, item in kinds.items() if self._known(item, "discoverer")}

    def _known(self, item: InputListener | DiscoveryKind, family: str) -> bool:
        if item.section in self.sections:
            return True
        self.log.error(f"{family} left out: its config section is not declared",
                       name=item.name, section=item.section)
        return False

    def names(self, section: str | None = None) -> list[str]:
        """Runner names of the groups (of ``section`` only, when given)."""
        out = [f"input:{n}" for n, item in self.listeners.items()
               if section is None or item.section == section]
        out += [f"discovery:{n}" for n, item in self.kinds.items()
                if section is None or item.section == section]
        return out

    def _followed(self, config: Any) -> set[tuple[str, str]]:
        """The discoverer elements (section, id) that enabled listener elements follow."""
        out: set[tuple[str, str]] = set()
        for item in self.listeners.values():
            if item.follows is None:
                continue
            for _, _, element in _elements_of(self.sections[item.section],
                                               config.get(item.section)):
                followed = item.follows(element)
                if followed is not None:
                    out.add(followed)
        return out

    def _group(self, runner_name: str, config: Any, *, strict: bool) -> ElementGroup:
        family, _, name = runner_name.partition(":")
        item: InputListener | DiscoveryKind = (self.listeners[name] if family == "input"
                                               else self.kinds[name])
        section = self.sections[item.section]
        value = config.get(item.section)
        found = _elements_of(section, value)
        if family == "discovery":  # only the elements some listener follows run
            followed = self._followed(config)
            found = [f for f in found if (item.section, f[1]) in followed]
        elements = [Element(label, self._builder(family, item, element_name, element),
                            element)
                    for label, element_name, element in found]
        return ElementGroup("input listener" if family == "input" else "discoverer",
                            item.section, elements, Logger(item.section), strict=strict)

    def _builder(self, family: str, item: InputListener | DiscoveryKind, name: str,
                 element: Any) -> Callable[[], tuple[Service, Callable[[], None]]]:
        plumbing = self.plumbing
        log = Logger(item.section, **({"element": name} if name else {}))

        def build() -> tuple[Service, Callable[[], None]]:
            if isinstance(item, InputListener):
                inputs = InputContext(item.section, element, log, plumbing.write_points,
                                      element=name, check_outgoing=plumbing.check_outgoing,
                                      daemon=plumbing.facts(),
                                      statistics=plumbing.statistics,
                                      discovery=plumbing.discovery,
                                      clients=plumbing.clients)
                try:
                    return item.factory(element, inputs), inputs.close
                except BaseException:
                    inputs.close()
                    raise
            found = DiscoveryContext(item.section, element, log, id=name,
                                     check_outgoing=plumbing.check_outgoing,
                                     daemon=plumbing.facts(), registry=plumbing.discovery,
                                     clients=plumbing.clients)
            found.open()
            try:
                return item.factory(element, found), found.close
            except BaseException:
                found.close()
                raise

        return build

    async def open_all(self, runner: ServiceRunner, config: Any) -> None:
        """Start every enabled element at startup; the first that cannot start stops
        the daemon (:class:`ElementStartError`)."""
        for name in self.names():
            await runner.open(name, self._group(name, config, strict=True))
            self.log.debug("opened service", name=name)

    async def section_changed(self, runner: ServiceRunner, section: str, config: Any) -> None:
        """Re-open the elements fed by ``section``; APIError 500 naming those that could
        not start (the others run)."""
        failures: list[str] = []
        names = self.names(section)
        if any(item.section == section and item.follows is not None
               for item in self.listeners.values()):
            # what the listeners follow may have changed: so may the discoverers that run
            names += [n for n in self.names() if n.startswith("discovery:")
                      and n not in names]
        for name in names:
            if name.startswith("input:") or self.kinds[name[10:]].section == section:
                self.log.info("configuration override applied, restarting service",
                              name=name, section=section)
            group = self._group(name, config, strict=False)
            running = runner.get(name)
            try:
                if isinstance(running, ElementGroup):
                    failed = await running.update(group.elements)
                else:
                    failed = await runner.reopen(name, group)
            except Exception as exc:
                failed = [f"{name}: {exc}"]
            failures += failed or []
        if failures:
            raise APIError(500, f"failed to update service {section}: "
                                + "; ".join(failures))


__all__ = ["Element", "ElementGroup", "ElementStartError", "PluginElements", "Plumbing"]
