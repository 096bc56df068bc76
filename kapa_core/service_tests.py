"""Service tests: ``/kapacitor/v1/service-tests`` sends a test through a configured service.

Two sources of tests:

* every alert handler kind bound to a config section (``slack``, ``smtp``, ``pagerduty2``…)
  is testable under its section's name: the test options are the kind's options plus
  ``id``, ``message`` and ``level``, and the test builds the handler against the live
  section config and sends it one event;
* a running service may offer its own: an object with ``test_options() -> dict`` and
  ``async test(options: dict) -> None`` (raising on failure), e.g. ``influxdb``.

A test answers ``{"success": bool, "message": str}``: a failing service is a successful
request with ``success: false`` and the reason, as Kapacitor reports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from kapa_core.alert import options as opts
from kapa_core.alert.event import Event, EventState
from kapa_core.alert.levels import Level
from kapa_core.errors import APIError, ConfigError, KapaError
from kapa_core.glob import compile_glob
from kapa_core.logs import Logger

TEST_TIMEOUT = 30.0
EVENT_KEYS = ("id", "message", "level")


@dataclass(frozen=True)
class ServiceTest:
    name: str
    defaults: Callable[[], dict[str, Any]]
    run: Callable[[dict[str, Any]], Any]  # async (options) -> None


def known_options(overrides: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The ``overrides`` that name an option, as Go decodes an object into a struct: an
    unknown key is ignored, a key names an option exactly or else regardless of case,
    and of two keys naming one option the later wins."""
    folded = {key.casefold(): key for key in options}
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        target = key if key in options else folded.get(key.casefold())
        if target is not None:
            out[target] = value
    return out


class ServiceTests:
    def __init__(self, alerts: Any, service: Callable[[str], Any],
                 service_names: Callable[[], list[str]]) -> None:
        self.alerts = alerts
        self.service = service
        self.service_names = service_names
        self.log = Logger("service-tests")

    def all(self) -> dict[str, ServiceTest]:
        tests: dict[str, ServiceTest] = {}
        for name in self.service_names():
            service = self.service(name)
            if callable(getattr(service, "test", None)) and hasattr(service, "test_options"):
                tests[name] = ServiceTest(name, service.test_options, service.test)
        for kind in self.alerts.kinds.kinds.values():
            if kind.section and kind.section not in tests and not kind.topic_only:
                tests[kind.section] = self._handler_test(kind)
        return dict(sorted(tests.items()))

    def matching(self, pattern: str) -> list[ServiceTest]:
        """Tests whose name matches the glob ``pattern``; :class:`GlobError` if malformed."""
        matches = compile_glob(pattern)
        return [t for name, t in self.all().items() if matches(name)]

    def get(self, name: str) -> ServiceTest:
        test = self.all().get(name)
        if test is None:
            raise APIError(404, f'service "{name}" not found')
        return test

    async def run(self, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
        test = self.get(name)
        options = test.defaults()
        options.update(known_options(overrides, options))
        try:
            with trio.fail_after(TEST_TIMEOUT):
                await test.run(options)
        except trio.TooSlowError:
            return {"success": False, "message": f"test timed out after {TEST_TIMEOUT:g}s"}
        except httpx.InvalidURL as exc:  # e.g. longer than a URL may be: the option is bad
            raise APIError(400, f"invalid url option for service {name!r}: {exc}") from None
        except APIError:  # a service's test refusing its options, as Kapacitor does (400)
            raise
        except (KapaError, OSError, ValueError, TypeError) as exc:
            return {"success": False, "message": str(exc) or type(exc).__name__}
        except Exception as exc:  # a plugin's own failure: reported, never a 500
            self.log.error("service test failed", service=name, err=repr(exc))
            return {"success": False, "message": f"{type(exc).__name__}: {exc}"}
        return {"success": True, "message": ""}

    # -- handler kinds ------------------------------------------------------------------
    def _handler_test(self, kind: Any) -> ServiceTest:
        def defaults() -> dict[str, Any]:
            out = {"id": "testServiceAlert", "message": f"test {kind.section} message",
                   "level": "CRITICAL"}
            out.update(opts.to_json(kind.options()))
            return out

        async def run(options: dict[str, Any]) -> None:
            values = dict(options)
            for key in EVENT_KEYS:
                if values[key] is None:  # a JSON null leaves a Go string as it was
                    values[key] = defaults()[key]
            event_id = str(values.pop("id"))
            message = str(values.pop("message"))
            try:
                level = Level.parse(str(values.pop("level")))
            except ValueError as exc:
                raise ConfigError("level", str(exc)) from None
            try:
                options = opts.from_json(kind.name, kind.options, values)
            except KapaError:
                if self._disabled(kind.section):
                    raise KapaError("service is not enabled") from None
                raise
            if self._disabled(kind.section):  # Kapacitor's words for every such service
                raise KapaError("service is not enabled")
            handler = self.alerts.handler(kind.name, options)
            state = EventState(id=event_id, message=message, details="",
                               time=time.time_ns(), duration=0, level=level)
            await handler.handle(Event(topic="service-test", state=state,
                                       name="testServiceAlert", task_name="service-test",
                                       previous_level=Level.OK))

        return ServiceTest(kind.section, defaults, run)

    def _disabled(self, section: str) -> bool:
        """Whether ``section`` is one section (not a list) with ``enabled = false``."""
        config = self.alerts.section_config(section)
        return config is not None and getattr(config, "enabled", True) is False
