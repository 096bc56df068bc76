"""Everything a plugin may import from kapa-core, built-in plugins included.

A plugin that keeps to these names keeps working across kapa-core releases; anything
else in ``kapa_core`` is internal.
"""

from __future__ import annotations

import builtins as _builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kapa_core.alert.event import Event, EventState
from kapa_core.alert.gojson import Struct as GoStruct
from kapa_core.alert.gojson import dumps as go_json
from kapa_core.alert.handler_context import Handler, HandlerContext
from kapa_core.alert.handler_kit import (
    enabled_config,
    go_join_url,
    go_path_join,
    option_template,
    pick_element,
)
from kapa_core.alert.levels import Level
from kapa_core.alert.options import option
from kapa_core.alert.outbound import send
from kapa_core.aws import AutoScalingClient, AWSError, EC2Client, Instance
from kapa_core.cloud import CloudError, K8sClient, SwarmClient, find_cluster
from kapa_core.config.checks import one_default, require_choice, require_url, unique_elements
from kapa_core.config.schema import Section, setting
from kapa_core.discovery import (
    DiscoveryContext,
    DiscoveryKind,
    DiscoverySetupError,
    DiscoveryTestService,
    TargetGroup,
    discovery_test_service,
)
from kapa_core.errors import APIError, ConfigError, HandlerError, KapaError, PluginError
from kapa_core.gotemplate import GoTime, StringMap, Template, TemplateError
from kapa_core.gotemplate import parse as parse_template
from kapa_core.hookspecs import hookimpl
from kapa_core.inputs import Counters, InputContext, InputListener
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.models.lineprotocol import ParseResult
from kapa_core.models.lineprotocol import parse as parse_line_protocol
from kapa_core.models.point import Point
from kapa_core.services import DaemonFacts, HTTPFacts, ServiceContext, StartupContext
from kapa_core.tlsconfig import TLS, TLSFileError
from kapa_core.udf import (
    BeginBatch,
    EdgeType,
    EndBatch,
    UDFBridge,
    UDFContext,
    UDFError,
    UDFFunction,
    UDFInfo,
    UDFNodeContext,
    UDFOption,
    UDFOutput,
    UDFSession,
    ValueType,
)
from kapa_core.udf.inprocess import InProcessFunction, load_handler_class, python_udf
from kapa_core.udf.wire import Connection as UDFConnection
from kapa_core.udf.wire import Connector as UDFConnector
from kapa_core.udf.wire import WireFunction


@dataclass(frozen=True, kw_only=True)
class HandlerKind:
    """An alert handler kind.

    ``name`` is the topic-handler ``kind`` and, by the naming rule, the alert-node property
    (``name="slack"`` gives ``.slack()``; ``property`` overrides it). ``options`` is a
    dataclass of the handler's options: each field is a chained TICKscript method
    (``channel`` gives ``.channel('#ops')``) and a topic-handler option key (``channel``).
    ``factory(options, context)`` gets the options and a :class:`HandlerContext` and
    returns an object with ``async handle(event)`` (and optionally ``close()``).
    ``section`` names the config section the handler reads (``context.config``, and
    ``context.service`` when the section has one). ``args`` names
    the option fields the property's own arguments fill (``.email('a@x', 'b@x')`` fills
    ``to``); a last tuple-typed field takes all remaining arguments. ``topic_only`` kinds
    (aggregate, publish) have no TICKscript property.
    """

    name: str
    options: type
    factory: Callable[..., Any]
    section: str = ""
    property: str = ""
    args: tuple[str, ...] = ()
    topic_only: bool = False
    doc: str = ""

    @_builtins.property
    def tick_name(self) -> str:
        return self.property or self.name


__all__ = [
    "TLS",
    "APIError",
    "AWSError",
    "AutoScalingClient",
    "BeginBatch",
    "CloudError",
    "ConfigError",
    "Counters",
    "DaemonFacts",
    "DiscoveryContext",
    "DiscoveryKind",
    "DiscoverySetupError",
    "DiscoveryTestService",
    "EC2Client",
    "Duration",
    "EdgeType",
    "EndBatch",
    "Event",
    "EventState",
    "GoStruct",
    "GoTime",
    "HTTPFacts",
    "Handler",
    "HandlerContext",
    "HandlerError",
    "HandlerKind",
    "InProcessFunction",
    "Instance",
    "InputContext",
    "InputListener",
    "K8sClient",
    "KapaError",
    "Level",
    "Logger",
    "ParseResult",
    "PluginError",
    "Point",
    "Section",
    "ServiceContext",
    "StartupContext",
    "StringMap",
    "SwarmClient",
    "TLSFileError",
    "TargetGroup",
    "Template",
    "TemplateError",
    "UDFBridge",
    "UDFConnection",
    "UDFConnector",
    "UDFContext",
    "UDFError",
    "UDFFunction",
    "UDFInfo",
    "UDFNodeContext",
    "UDFOption",
    "UDFOutput",
    "UDFSession",
    "ValueType",
    "WireFunction",
    "discovery_test_service",
    "enabled_config",
    "find_cluster",
    "go_join_url",
    "go_json",
    "go_path_join",
    "hookimpl",
    "load_handler_class",
    "one_default",
    "option",
    "option_template",
    "parse_line_protocol",
    "parse_template",
    "pick_element",
    "python_udf",
    "require_choice",
    "require_url",
    "send",
    "setting",
    "unique_elements",
]
