"""The running daemon: storage, configuration, services, the HTTP API, shutdown.

Start order: the configuration is built and validated completely before anything
starts (a bad value stops the daemon with nothing half-started); then the store opens,
stored overrides are applied, plugin services open in section order, the HTTP server
opens last so that a client never meets a half-ready daemon. SIGINT/SIGTERM stop it:
the HTTP server stops accepting and lets in-flight requests finish, then services close
in reverse order and the pid file is removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import ipaddress
import os
import resource
import signal
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

import trio

from kapa_core import KAPACITOR_COMPAT_VERSION, __version__, logs, udf
from kapa_core.alert import kinds
from kapa_core.alert.service import AlertService
from kapa_core.auth.subscription_tokens import SubscriptionTokens
from kapa_core.cluster.member import ClusterMember
from kapa_core.cluster.router import ClusterRouter
from kapa_core.config.loader import Config, ConfigLayers
from kapa_core.config.service import ConfigService
from kapa_core.denylist import DenyList
from kapa_core.discovery import DiscoveryRegistry
from kapa_core.elements import PluginElements, Plumbing
from kapa_core.engine.loader import load_directory
from kapa_core.engine.node import Timing
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.engine.replay import ReplayService
from kapa_core.engine.router import StreamRouter
from kapa_core.engine.snapshots import Snapshots
from kapa_core.engine.stats_service import StatsService
from kapa_core.engine.task_master import TaskMaster
from kapa_core.engine.tasks import TaskService
from kapa_core.engine.templates import TemplateService
from kapa_core.errors import APIError, ConfigError
from kapa_core.http import tls as https
from kapa_core.http.alerts_api import AlertsAPI
from kapa_core.http.auth_setup import check_config as check_auth
from kapa_core.http.auth_setup import install as install_auth
from kapa_core.http.config_api import ConfigAPI
from kapa_core.http.console_api import ConsoleAPI
from kapa_core.http.deny import DenyClients
from kapa_core.http.discovery_api import DiscoveryAPI
from kapa_core.http.logs_api import LogsAPI
from kapa_core.http.pprof_api import PprofAPI
from kapa_core.http.recordings_api import RecordingsAPI
from kapa_core.http.replays_api import ReplaysAPI
from kapa_core.http.router import Router
from kapa_core.http.scripts_api import ScriptsAPI
from kapa_core.http.server import HTTPServer
from kapa_core.http.server_api import ServerAPI
from kapa_core.http.service_tests_api import ServiceTestsAPI
from kapa_core.http.storage_api import StorageAPI
from kapa_core.http.subscriptions_api import SubscriptionsAPI
from kapa_core.http.tasks_api import TasksAPI
from kapa_core.http.templates_api import TemplatesAPI
from kapa_core.http.write_api import WriteAPI
from kapa_core.httpclients import HTTPClients
from kapa_core.inputs import Statistics, point_writer
from kapa_core.logs import Logger
from kapa_core.models import lineprotocol
from kapa_core.plugins import Plugins
from kapa_core.service_tests import ServiceTests
from kapa_core.services import (
    CoreServiceContext,
    DaemonFacts,
    HTTPFacts,
    ServiceContext,
    ServiceRunner,
    StartupContext,
)
from kapa_core.storage import Store
from kapa_core.tick import limits

PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
                 "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
                 # "this host": connecting to 0.0.0.0 or :: reaches the loopback
                 "0.0.0.0/8", "::/128")

#: Sections of the core whose service gets a CoreServiceContext (plugins never do).
CORE_SERVICE_SECTIONS = frozenset({"influxdb"})


@dataclass(frozen=True)
class DaemonOptions:
    """Command-line options that are not configuration keys."""

    pidfile: str = ""
    blacklist_cidrs: tuple[str, ...] = ()
    disable_handlers: tuple[str, ...] = ()
    config_path: str | None = None


def parse_cidrs(values: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``-blacklist-cidrs`` values; ``private`` stands for all private ranges."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            names = PRIVATE_CIDRS if part == "private" else (part,)
            for name in names:
                try:
                    out.append(ipaddress.ip_network(name, strict=False))
                except ValueError:
                    raise ConfigError("-blacklist-cidrs", f"invalid CIDR {name!r} (expected "
                                      "e.g. 10.0.0.0/8, or private)") from None
    return out


def split_bind(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class Daemon:
    plugins: Plugins
    layers: ConfigLayers
    options: DaemonOptions = field(default_factory=DaemonOptions)

    def __post_init__(self) -> None:
        self.version = __version__
        self.log = Logger("server")
        # The base configuration, validated before anything starts.
        self.config: Config = self.layers.build(self.layers.effective_raw())
        cluster = self.config["cluster"]
        #: where accepted points go: the tasks here, or (a cluster member) JetStream
        self.stream: StreamRouter | ClusterRouter = StreamRouter() if not cluster.enabled \
            else ClusterRouter(cluster.name, publish_timeout=cluster.publish_timeout / 1e9,
                               replicas=cluster.replicas, retention=cluster.retention / 1e9)
        self.blacklist = DenyList(parse_cidrs(self.options.blacklist_cidrs),
                                  Logger("denylist"))
        self.disabled_handlers = frozenset(h.strip() for h in self.options.disable_handlers
                                           if h.strip())
        self.address: tuple[str, int] | None = None
        self.cluster_id = ""
        self.server_id = ""
        self._stop = trio.Event()
        self._runner: ServiceRunner | None = None
        self._http: HTTPServer | None = None
        self.store: Store | None = None
        self.subscription_tokens: SubscriptionTokens | None = None
        self.config_service: ConfigService | None = None
        self.task_master = TaskMaster(self.stream, Logger("task_master"))
        self.task_service: TaskService | None = None
        self.alerts: AlertService | None = None
        self.load_errors = 0
        #: this daemon as a member of a [cluster] (None: a single daemon)
        self.cluster_member: ClusterMember | None = None
        self.started = dt.datetime.now(dt.UTC)
        #: this daemon's input listeners and discoverers (started in _serve), the
        #: statistics the listeners publish and the target groups discoverers find
        self.elements: PluginElements | None = None
        self.plugin_statistics = Statistics()
        self.discovery = DiscoveryRegistry()
        #: outgoing HTTP clients of the services, listeners and discoverers, kept alive
        #: between their requests and closed when the daemon stops
        self.http_clients = HTTPClients()
        #: per section: state its service keeps across re-opens (CoreServiceContext.state)
        self._section_state: dict[str, dict[str, Any]] = {}
        self.udf_functions = udf.NONE

    def write_points(self, database: str, retention_policy: str, points: list[Any]) -> None:
        """Where the daemon's own writers (input listeners, the stats stream, loopback
        nodes) put points: a cluster member publishes them without waiting for
        JetStream (their sources, unlike /write, answer no one)."""
        self.stream.write(database, retention_policy, points)

    # -- task counts (the engine registers itself here) ------------------------------
    def num_tasks(self) -> int:
        return len(self.task_service.tasks) if self.task_service else 0

    def num_enabled_tasks(self) -> int:
        return len(self.task_master.tasks)

    def service(self, name: str) -> Any:
        """The running service opened under ``name``, or None."""
        return self._runner.get(name) if self._runner else None

    def stop(self) -> None:
        """Ask the daemon to shut down gracefully (what SIGTERM does)."""
        self._stop.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        base = self.config
        logs.configure(base["logging"].file, base["logging"].level)
        self._ssl_context()  # a bad HTTPS/[tls] setting stops startup before anything opens
        check_auth(base)  # [http] auth-enabled without a user backend stops startup here
        self.store = Store(base["storage"].boltdb)
        try:
            self.store.integrity_check()
            self._ids()
            self.subscription_tokens = SubscriptionTokens(self.store)
            self.config_service = ConfigService(
                self.layers, self.store, skip_overrides=base.root.skip_config_overrides,
                on_change=self._section_changed)
            self.config = self.config_service.config
            if self.config["logging"] != base["logging"]:
                logs.configure(self.config["logging"].file, self.config["logging"].level)
            self._write_pidfile()
            try:
                await self._serve(task_status)
            finally:
                self._remove_pidfile()
        finally:
            self.store.close()
            self.log.info("stopped")

    async def _serve(self, task_status: Any) -> None:
        config = self.config
        # [task] max-script-size / max-nodes for every script this daemon parses: its
        # trio tasks and their worker threads inherit the context variable.
        limits.install(limits.ScriptLimits(config["task"].max_script_size,
                                           config["task"].max_nodes))
        logs.set_owner(self)  # this daemon's live log (/v1preview/logs) keeps its lines
        raise_open_files_limit(self.log)
        self.log.info("kapa-core starting", version=self.version,
                      compatible=KAPACITOR_COMPAT_VERSION, pid=os.getpid(),
                      config=self.options.config_path or "(embedded defaults)",
                      data_dir=config.root.data_dir, storage=config["storage"].boltdb)
        for name in config.unknown:
            self.log.warn("unknown configuration key ignored", key=name)
        if lineprotocol.COMPILED:
            self.log.info("line protocol parser", implementation=lineprotocol.implementation())
        else:  # works, at a fraction of the speed: say so where an operator looks
            self.log.warn("line protocol parser: compiled extension not in use",
                          implementation=lineprotocol.implementation())
        if self.blacklist.install():
            self.log.info("deny list active (-blacklist-cidrs)",
                          cidrs=",".join(map(str, self.blacklist)))
        if self.disabled_handlers:
            unknown = sorted(self.disabled_handlers - set(self.plugins.handler_kinds))
            self.log.info("alert handlers disabled", kinds=",".join(sorted(
                self.disabled_handlers)), unknown=",".join(unknown) or None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            runner = self._runner = ServiceRunner(nursery, Logger("server"))
            for section in self.plugins.ordered_sections():
                if section.service is not None:
                    await runner.open(section.name, section.service(self._context(section.name)))
                    self.log.debug("opened service", name=section.name)
            # This daemon's handler kinds, current for every task and thread it starts.
            self.handler_kinds = kinds.HandlerKinds(
                self.plugins.handler_kinds, self.disabled_handlers,
                kinds.DeadmanDefaults.from_config(config["deadman"]))
            kinds.install(self.handler_kinds)
            stats = config["stats"]
            # Kapacitor times nodes only through its stats service: with [stats]
            # disabled every avg_exec_time_ns stays 0.
            self.task_master.timing = Timing.from_stats(
                stats.timing_sample_rate if stats.enabled else 0, stats.timing_movavg_size)
            self.alerts = AlertService(
                self.store, config["alert"], section_service=runner.get,
                section_config=lambda name: self.config.get(name),
                check_outgoing=self.check_outgoing, log=Logger("alert"),
                kinds=self.handler_kinds, daemon=self.facts())
            await runner.open("alert", self.alerts)
            # [udf.functions]: each function's info, asked through the bridge that runs
            # it (one that fails is logged and left out), current for every script this
            # daemon evaluates; a config override of [udf] loads them again (below).
            self.udf_functions = await udf.load_functions(
                self.plugins.udf_bridges, config["udf"].functions, Logger("udf"))
            udf.install(self.udf_functions)
            self.task_master.context = self._node_context()
            member: ClusterMember | None = None
            if isinstance(self.stream, ClusterRouter):  # [cluster]: the stream first
                member = ClusterMember(config["cluster"], self.stream,
                                       config["cluster"].member_id or self.server_id,
                                       info=lambda: {"api": self._api_url(),
                                                     "version": self.version})
                await runner.open("cluster", member)
                self.cluster_member = member
            await runner.open("task_master", self.task_master)
            await runner.open("stats", StatsService(config["stats"], daemon=self,
                                                    write_points=self.write_points,
                                                    logger=Logger("stats")))
            assert self.store is not None
            self.task_service = TaskService(self.store, self.task_master, Logger("task_store"))
            self.template_service = TemplateService(self.store, self.task_service)
            if member is not None:  # shared through the catalog: handlers, templates, tasks
                member.alerts = self.alerts
                member.templates = self.template_service
                member.tasks = self.task_service  # placement starts and stops its tasks
            self.task_master.snapshots = Snapshots(self.store, config["task"].snapshot_interval,
                                                   Logger("task_master"))
            self.replay_service = ReplayService(self.store, self.task_service,
                                                lambda: self.task_master.context,
                                                Logger("replay"),
                                                replay_dir=config["replay"].dir,
                                                stream=self.stream)
            await runner.open("replays", self.replay_service)
            await self.task_service.start_enabled()
            await self.load_directory()
            # Input listeners and discoverers of the enabled elements: one that cannot
            # start stops the daemon here, before the API listens (as Kapacitor).
            self.elements = PluginElements(
                self.plugins.sections, self.plugins.input_listeners,
                self.plugins.discovery_kinds, Plumbing(
                    point_writer(self.write_points,
                                 lambda: self.config.root.default_retention_policy),
                    self.check_outgoing, self.facts, self.plugin_statistics,
                    self.discovery, self.http_clients))
            await self.elements.open_all(runner, config)
            self._http = self._http_server()
            if self.cluster_member is not None:
                self.cluster_member.start_sharing()
            self.address = await runner.open("http", self._http)
            self.plugins.hook.kapa_startup(context=StartupContext(config, self.facts()))
            addr = f"{self.address[0]}:{self.address[1]}"
            # What start-up made (modules, plugins, tasks, config) lives as long as the
            # daemon: moved out of the cyclic collector's generations, every full
            # collection stops walking it (9-66 ms each, the p99 of alert latency at
            # 1,000 points/s, before).
            gc.collect()
            gc.freeze()
            self.log.info("kapa-core ready", addr=addr)
            scheme = "https" if self.config["http"].https_enabled else "http"
            console = f"{scheme}://{_browsable(self.address)}/console/"
            self.log.info("web console", url=console)
            # One line on stdout whatever the log level, as kapacitord prints its banner.
            print(f"kapa-core {self.version} ready: API on {scheme}://{addr} "
                  f"(web console: {console})", flush=True)
            task_status.started(self.address)
            await self._stop.wait()
            self.log.info("signal received, shutting down gracefully")
            await self._http.shutdown()
            self.plugins.hook.kapa_shutdown(context=StartupContext(self.config,
                                                                   self.facts()))
            await self.task_master.snapshot_all()  # node state survives the restart
            await runner.close_all()
            await self.http_clients.aclose()
            nursery.cancel_scope.cancel()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
            async for signum in sigs:
                if signum == signal.SIGHUP:
                    self.log.info("SIGHUP received: reloading the load directory")
                    await self.load_directory()
                    continue
                self.log.info("signal received", signal=signal.Signals(signum).name)
                self.stop()
                return

    def _node_context(self) -> NodeContext:
        endpoints = {e.endpoint: e for e in self.config.get("httppost", ())}
        return self.task_master.node_context(
            write_points=self.write_points, httppost=endpoints, allowed=self.check_outgoing,
            alerts=self.alerts, hostname=self.config.root.hostname,
            cluster_id=self.cluster_id, server_id=self.server_id,
            influxdb=lambda: self._runner.get("influxdb") if self._runner else None,
            config_section=lambda name: self.config.get(name))

    def check_outgoing(self, url: str) -> None:
        """Refuse a URL whose host is an address in a -blacklist-cidrs range; a host
        name is resolved when connecting and refused if any address is listed."""
        self.blacklist.check_url(url)

    async def load_directory(self) -> None:
        load = self.config["load"]
        if not load.enabled or self.task_service is None or self.store is None:
            return
        failed = await load_directory(load.dir, self.task_service, self.template_service,
                                      self.store, Logger("load"), self.alerts)
        self.load_errors += failed

    def _api_url(self) -> str:
        """This daemon's API as another machine reaches it (empty until it listens)."""
        if self.address is None:
            return ""
        scheme = "https" if self.config["http"].https_enabled else "http"
        host = self.config.root.hostname if self.address[0] in ("", "0.0.0.0", "::") \
            else self.address[0]
        return f"{scheme}://{host}:{self.address[1]}"

    def about(self) -> dict[str, Any]:
        """``GET /kapacitor/v1/about`` (what the console's daemon page shows)."""
        return {"version": self.version, "kapacitor_version": KAPACITOR_COMPAT_VERSION,
                "hostname": self.config.root.hostname, "cluster_id": self.cluster_id,
                "server_id": self.server_id,
                "started": self.started.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "uptime": (dt.datetime.now(dt.UTC) - self.started).total_seconds(),
                "line_protocol_parser": lineprotocol.implementation(),
                "auth_enabled": self.config["http"].auth_enabled,
                "plugins": [{"name": p.name, "module": p.module, "distribution":
                             p.distribution, "version": p.version, "hooks": list(p.hooks)}
                            for p in self.plugins.infos],
                "broken_plugins": [{"name": b.name, "value": b.value, "distribution":
                                    b.distribution, "reason": b.reason}
                                   for b in self.plugins.broken]}

    def facts(self) -> DaemonFacts:
        """What plugins may know about this daemon (see ``kapa_core.services``)."""
        http = self.config["http"]
        return DaemonFacts(hostname=self.config.root.hostname, cluster_id=self.cluster_id,
                           server_id=self.server_id, version=self.version,
                           http=HTTPFacts(http.bind_address, http.https_enabled,
                                          http.auth_enabled),
                           address_of=lambda: self.address)

    def _context(self, name: str) -> ServiceContext:
        config, root, logger = self.config[name], self.config.root, Logger(name)
        if name not in CORE_SERVICE_SECTIONS:
            return ServiceContext(name, config, root, logger, self.write_points,
                                  self.check_outgoing, self.facts(), self.http_clients)
        return CoreServiceContext(name, config, root, logger, self.write_points,
                                  self.check_outgoing, self.facts(), self.http_clients,
                                  deny_list=self.blacklist,
                                  shared_secret=self.config["http"].shared_secret,
                                  subscription_tokens=self.subscription_tokens,
                                  state=self._section_state.setdefault(name, {}))

    async def _section_changed(self, name: str, config: Config) -> None:
        """A config override changed section ``name``: re-open only its service."""
        self.config = config
        self.task_master.context = self._node_context()
        if self.elements is not None and self._runner is not None:
            # the section's input listeners and discoverers (APIError if one fails)
            await self.elements.section_changed(self._runner, name, config)
        if name == "udf":  # every function asked for its info again; running tasks
            # keep the sessions they opened, tasks started from now on use these
            self.log.info("configuration override applied, reloading UDFs", section=name)
            loaded = await udf.load_functions(self.plugins.udf_bridges,
                                              config["udf"].functions, Logger("udf"))
            self.udf_functions.functions = loaded.functions
            return
        section = self.plugins.sections[name]
        if section.service is None or self._runner is None:
            return
        self.log.info("configuration override applied, restarting service", section=name)
        try:
            await self._runner.reopen(name, section.service(self._context(name)))
        except Exception as exc:
            self.log.error("service failed to restart after override", section=name,
                           err=str(exc))
            raise APIError(500, f"failed to update service {name}: {exc}") from None

    # -- HTTP -----------------------------------------------------------------------
    def _http_server(self) -> HTTPServer:
        http = self.config["http"]
        router = Router()
        ServerAPI(self, self.task_master.sideloads).register(router)
        WriteAPI(self.stream, default_rp=lambda: self.config.root.default_retention_policy,
                 logger=Logger("http"), tracing=http.write_tracing).register(router)
        assert self.config_service is not None
        ConfigAPI(self.config_service).register(router)
        assert self.task_service is not None
        TasksAPI(self.task_service).register(router)
        TemplatesAPI(self.template_service).register(router)
        ReplaysAPI(self.replay_service).register(router)
        RecordingsAPI(self.replay_service.recordings).register(router)
        alerts_api = AlertsAPI(self.alerts)
        alerts_api.cluster = self.cluster_member  # a member lists every member's topics
        alerts_api.register(router)
        assert self._runner is not None
        runner = self._runner
        ServiceTestsAPI(ServiceTests(self.alerts, runner.get, lambda: runner.names)
                        ).register(router)
        SubscriptionsAPI(lambda: runner.get("influxdb")).register(router)
        DiscoveryAPI(self.discovery).register(router)
        PprofAPI().register(router)
        assert self.store is not None
        StorageAPI(self.store).register(router)
        LogsAPI(logs.LogBroadcast(owner=self)).register(router)  # /v1preview/logs
        ScriptsAPI(self.task_service).register(router)  # /scripts/check, /scripts/try
        ConsoleAPI(self.about).register(router)  # /console/, /me, /about
        catalog = self.cluster_member.catalog if self.cluster_member else None
        auth_middleware = install_auth(router, self.config, self.store,
                                       subscription_tokens=self.subscription_tokens,
                                       on_users=catalog.share_users if catalog else None)
        host, port = split_bind(http.bind_address)
        return HTTPServer(router, host=host, port=port, version=KAPACITOR_COMPAT_VERSION,
                          logger=Logger("http"), max_body_size=http.max_body_size,
                          # Kapacitor accepts a negative shutdown-timeout (no grace).
                          shutdown_timeout=max(0, http.shutdown_timeout) / 1e9,
                          header_timeout=http.read_header_timeout / 1e9,
                          idle_timeout=http.idle_timeout / 1e9,
                          ssl_context=self._ssl_context(), access_log=http.log_enabled,
                          middleware=[DenyClients(self.blacklist, Logger("http")),
                                      *auth_middleware])

    def _ssl_context(self) -> ssl.SSLContext | None:
        http = self.config["http"]
        if not http.https_enabled:
            return None
        return https.server_context(http, self.config["tls"])

    # -- identity and pid file --------------------------------------------------------
    def _ids(self) -> None:
        assert self.store is not None
        ids = {}
        for name in ("cluster_id", "server_id"):
            value = self.store.get("server", name)
            if value is None:
                value = str(uuid.uuid4()).encode()
                self.store.put("server", name, value)
            ids[name] = value.decode()
        self.cluster_id, self.server_id = ids["cluster_id"], ids["server_id"]

    def _write_pidfile(self) -> None:
        path = self.options.pidfile
        if not path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        with open(path, "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")

    def _remove_pidfile(self) -> None:
        if self.options.pidfile:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.options.pidfile)


def hostname() -> str:
    return socket.gethostname()


def raise_open_files_limit(log: Logger) -> int:
    """Raise the soft limit on open files to the hard limit, as Go programs (Kapacitor)
    do at start: each client connection takes a descriptor, and a flood of slow clients
    should meet the header timeout, not the limit. Returns the soft limit in force."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return -1
    if soft == hard or (hard != resource.RLIM_INFINITY and 0 <= hard < soft):
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        log.debug("cannot raise the open files limit", soft=soft, hard=hard, err=str(exc))
        return soft
    log.debug("raised the open files limit", old=soft, new=hard)
    return hard


def _browsable(address: tuple[str, int]) -> str:
    """``host:port`` a browser on this machine can open: a wildcard bind (every
    interface) is reached as localhost."""
    host, port = address[0], address[1]
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
