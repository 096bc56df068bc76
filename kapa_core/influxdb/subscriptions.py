"""InfluxDB subscriptions: InfluxDB copies every write to kapa-core, which feeds stream tasks.

For each enabled ``[[influxdb]]`` cluster without ``disable-subscriptions``, once the
cluster answers its ping, the :class:`SubscriptionManager` links subscriptions the way
Kapacitor's InfluxDB service does, at start, every ``subscriptions-sync-interval`` and on
``POST /kapacitor/v1/subscriptions``:

1. ``SHOW DATABASES`` then ``SHOW RETENTION POLICIES ON "<db>"``: every db/rp is a
   candidate; it should be subscribed when ``subscriptions`` is empty or lists it, and
   ``excluded-subscriptions`` does not list it (the default excludes
   ``_kapacitor.autogen``, where kapa-core's own statistics go).
2. ``SHOW SUBSCRIPTIONS``. The subscriptions of this instance are named
   ``kapacitor-<cluster id>`` (``subscription-mode = "cluster"``, the default: every
   server of a Kapacitor cluster shares the name, so InfluxDB sends each write once) or
   ``kapacitor-<server id>`` (``"server"``); the ids are the daemon's stored ids. Older
   Kapacitor names (``kapacitor`` and the bare cluster id) are dropped and recreated
   under the current name with their mode and destinations.
3. A subscription of this instance is stale, and dropped so that it is created again,
   when its first destination no longer matches the configuration: another protocol,
   another host than ``kapacitor-hostname`` (or the root ``hostname``), and for
   http/https another port than ``http-port`` (or the port the HTTP API listens on),
   another ``subscription-path``, or credentials in the URL. Subscriptions of this
   instance for db/rps that should not be subscribed are dropped.
4. Missing subscriptions are created: ``CREATE SUBSCRIPTION "<name>" ON "<db>"."<rp>"
   DESTINATIONS ANY '<destination>'`` (Kapacitor always uses ``ANY`` with its single
   destination; the mode setting only chooses the name). The destination is
   ``<http|https>://<host>:<port><subscription-path>`` (InfluxDB appends ``/write``, so
   the path is a prefix in front of ``/write``, e.g. for a reverse proxy), or
   ``udp://<host>:<port>`` for a UDP listener opened on ``udp-bind`` with a free port,
   with ``udp-buffer`` and ``udp-read-buffer``. After a restart the UDP listener of an
   existing subscription is opened again on the port in its destination; when that port
   cannot be bound any more the subscription is dropped and created with a new port
   (Kapacitor would keep a subscription nobody listens on).

Subscriptions are kept when kapa-core stops, as Kapacitor keeps them, so that InfluxDB
resumes sending as soon as it is back. They are dropped (``DROP SUBSCRIPTION``) only by a
configuration change at runtime, as in Kapacitor: when a cluster is removed or disabled,
when ``disable-subscriptions`` is switched on, or when the subscription name changes
(``subscription-mode``).

Failures (InfluxDB down, no admin privileges, a query refused) are logged with the
cluster and statement and retried at the next sync (on the cluster's next URL when the
current one could not be reached); they never stop the service. Without
a sync interval (0) a failed link is retried every ``RETRY_WITHOUT_INTERVAL`` seconds
until it succeeds once.

With ``[http] auth-enabled`` InfluxDB must authenticate its writes: each http/https
destination then carries a token of its own as ``<scheme>://~subscriber:<token>@host:port``
(see :mod:`kapa_core.auth.subscription_tokens`), granted for writing into that
subscription's database only. A subscription of this instance without such a token, or
whose token was made for another cluster or is no longer granted, is stale (step 3); and
every link revokes the cluster's tokens that no subscription carries any more. Without
``auth-enabled`` a destination with credentials is stale, and every token is revoked.
Log lines never show a token.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx
import trio

from kapa_core.auth.subscription_tokens import (
    SUBSCRIPTION_USER,
    SubscriptionTokens,
    make_token,
    token_cluster,
)
from kapa_core.denylist import DenyList
from kapa_core.errors import KapaError
from kapa_core.influxdb.client import ClusterClient, quote_ident, quote_string
from kapa_core.influxdb.config import InfluxDBConfig
from kapa_core.influxdb.context import DaemonFacts, InfluxDBContext
from kapa_core.influxdb.udp_listener import UDPListener
from kapa_core.logs import Logger

#: Name every subscription had before Kapacitor 1.0.
LEGACY_NAME = "kapacitor"
NAME_PREFIX = "kapacitor-"
#: Seconds a subscription-management query may take when the cluster sets no timeout.
DEFAULT_QUERY_TIMEOUT = 30.0
#: Seconds between link attempts when subscriptions-sync-interval is 0 and linking failed.
RETRY_WITHOUT_INTERVAL = 30.0
#: Seconds between two error lines about the same failure (repeats go to debug).
WARN_EVERY = 300.0
#: Poll period while waiting for the HTTP API's port (before the first link).
PORT_POLL = 0.05


class SubscriptionError(KapaError):
    """A link or unlink step failed; the message names the cluster and statement."""






def subscription_name(config: InfluxDBConfig, cluster_id: str, server_id: str) -> str:
    """``kapacitor-<cluster id>`` in cluster mode, ``kapacitor-<server id>`` in server mode."""
    return NAME_PREFIX + (server_id if config.subscription_mode == "server" else cluster_id)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split(destination: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a destination URL, or None when it has no host:port."""
    try:
        parts = urlsplit(destination)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname, port


def _token(destination: str) -> str | None:
    """The subscription token in a destination URL, if it carries one."""
    try:
        parts = urlsplit(destination)
    except ValueError:
        return None
    if parts.username != SUBSCRIPTION_USER or not parts.password:
        return None
    return unquote(parts.password)


def shown(destination: str) -> str:
    """A destination fit for a log line or an error: a password is masked."""
    try:
        parts = urlsplit(destination)
    except ValueError:
        return destination
    if parts.password is None:
        return destination
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


def _path(config: InfluxDBConfig) -> str:
    path = config.subscription_path
    return path if not path or path.startswith("/") else "/" + path


@dataclass
class Subscription:
    """One row of ``SHOW SUBSCRIPTIONS``."""

    db: str
    rp: str
    name: str
    mode: str = "ANY"
    destinations: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.db, self.rp)


class SubscriptionManager:
    """Links the subscriptions of one cluster and owns its UDP listeners."""

    def __init__(self, config: InfluxDBConfig, client: ClusterClient, *, cluster_id: str,
                 server_id: str, hostname: str, http_port: Callable[[], int | None],
                 write_points: Callable[[str, str, list[Any]], None], log: Logger,
                 tokens: SubscriptionTokens | None = None, use_tokens: bool = False) -> None:
        self.config = config
        self.tokens = tokens
        self.use_tokens = use_tokens and tokens is not None
        self.client = client
        self.cluster_id = cluster_id
        self.name = subscription_name(config, cluster_id, server_id)
        self.hostname = config.kapacitor_hostname or hostname
        self.http_port = http_port
        self.write_points = write_points
        self.log = log
        self.num_subscriptions = 0
        self.listeners: dict[tuple[str, str], UDPListener] = {}
        self._running: set[tuple[str, str]] = set()
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._wanted = {(db, rp) for db, rps in config.subscriptions.items() for rp in rps}
        self._excluded = {(db, rp) for db, rps in config.excluded_subscriptions.items()
                          for rp in rps}
        timeout = config.timeout / 1e9 if config.timeout else DEFAULT_QUERY_TIMEOUT
        self._timeout = timeout

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self, *, unlink_first: str = "",
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Link now and then every sync interval until cancelled.

        ``unlink_first`` is a subscription name the previous configuration used and this
        one does not (mode switch, or subscriptions switched off): its subscriptions are
        dropped before anything else.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                if unlink_first:
                    await self.unlink_logged(unlink_first)
                if self.config.disable_subscriptions:
                    return
                await self._loop()
        finally:
            self._nursery = None
            self.close_listeners()

    async def _loop(self) -> None:
        interval = self.config.subscriptions_sync_interval / 1e9
        last_error = (-WARN_EVERY, "")
        while True:
            try:
                await self.sync()
            except SubscriptionError as exc:
                now = time.monotonic()
                log = self.log.debug
                if str(exc) != last_error[1] or now - last_error[0] >= WARN_EVERY:
                    log = self.log.error
                    last_error = (now, str(exc))
                retry = interval or RETRY_WITHOUT_INTERVAL
                log("failed to link subscriptions; retrying at the next sync",
                    cluster=self.config.name, err=str(exc),
                    retry_in=f"{retry:g}s")
                await trio.sleep(retry)
                continue
            if last_error[1]:
                self.log.info("linked subscriptions again", cluster=self.config.name)
                last_error = (-WARN_EVERY, "")
            if not interval:
                await trio.sleep_forever()
            await trio.sleep(interval)

    def close_listeners(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        self._running.clear()

    # -- linking ------------------------------------------------------------------------
    def should_exist(self, key: tuple[str, str]) -> bool:
        return (not self._wanted or key in self._wanted) and key not in self._excluded

    async def sync(self) -> None:
        """Link once (see the module documentation); raises :class:`SubscriptionError`."""
        if self.config.disable_subscriptions:
            return
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        protocol = self.config.subscription_protocol
        port: int | None = None
        if protocol in ("http", "https"):
            port = self.http_port()
            if port is None:
                raise SubscriptionError("the port of the HTTP API is not known: set "
                                        "http-port")
        self.log.debug("linking subscriptions", cluster=self.config.name)
        candidates = await self._candidates()
        existing = await self.list()
        ours = {s.key for s in existing if s.name == self.name}
        kept: dict[tuple[str, str], Subscription] = {}
        for sub in existing:
            if sub.name in (LEGACY_NAME, self.cluster_id) and sub.name != self.name:
                await self._drop(sub, f"old subscription name, recreated as {self.name}")
                if sub.key in ours:
                    continue
                migrated = replace(sub, name=self.name)
                await self._create(migrated)
                kept[sub.key] = migrated
            elif sub.name == self.name:
                reason = self._stale(sub, port)
                if reason:
                    await self._drop(sub, reason)
                    self._close(sub.key)
                else:
                    kept[sub.key] = sub

        for key, sub in list(kept.items()):
            if not self.should_exist(key):
                await self._drop(sub, "not selected by subscriptions/excluded-subscriptions")
                del kept[key]
                continue
            if key in self._running:
                continue
            first = _split(sub.destinations[0] if sub.destinations else "")
            if first is None or first[1].lower() != self.hostname.strip("[]").lower():
                continue  # a migrated subscription of another host: checked next sync
            if first[0] == "udp":
                try:
                    await self._listen(key, first[2])
                except OSError as exc:
                    await self._drop(sub, f"its UDP port cannot be listened on again: {exc}")
                    del kept[key]
                    continue
            self._running.add(key)

        for key in candidates:
            if not self.should_exist(key) or key in kept:
                continue
            destination = await self._destination(key, port)
            if destination is None:
                continue
            sub = Subscription(key[0], key[1], self.name, "ANY", [destination])
            try:
                await self._create(sub)
            except SubscriptionError:
                self._close(key)
                raise
            self._running.add(key)
            kept[key] = sub

        for key in list(self._running):
            if key not in kept:
                self._close(key)
        self.num_subscriptions = len(kept)
        await self._revoke_unused(kept.values())

    async def _revoke_unused(self, kept: Any) -> None:
        if self.tokens is None:
            return
        in_use = []
        if self.use_tokens:
            in_use = [t for sub in kept if sub.destinations
                      and (t := _token(sub.destinations[0])) is not None]
        revoked = await self.tokens.revoke_unused(self.config.name, in_use)
        if revoked:
            self.log.info("revoked subscription tokens no longer used",
                          cluster=self.config.name, count=revoked)

    def _stale(self, sub: Subscription, port: int | None) -> str:
        """Why ``sub`` (named as ours) no longer fits the configuration, or ""."""
        if not sub.destinations:
            return "it has no destination"
        destination = sub.destinations[0]
        seen = shown(destination)
        try:
            parts = urlsplit(destination)
            dest_port = parts.port
        except ValueError:
            return f"its destination {seen!r} is not a valid URL"
        protocol = self.config.subscription_protocol
        if parts.scheme != protocol:
            return f"its destination {seen} does not use subscription-protocol " \
                   f"{protocol}"
        if not parts.hostname or dest_port is None:
            return f"its destination {seen!r} has no host:port"
        if parts.hostname.lower() != self.hostname.strip("[]").lower():
            return f"its destination {seen} is not on host {self.hostname}"
        if protocol in ("http", "https"):
            if dest_port != port:
                return f"its destination {seen} is not on HTTP port {port}"
            if parts.path.rstrip("/") != _path(self.config).rstrip("/"):
                return f"its destination {seen} does not use subscription-path " \
                       f"{_path(self.config) or '(none)'!r}"
            return self._stale_credentials(parts, seen)
        return ""

    def _stale_credentials(self, parts: Any, seen: str) -> str:
        if not self.use_tokens:
            if parts.username is not None or parts.password is not None:
                return f"its destination {seen} carries credentials"
            return ""
        assert self.tokens is not None
        token = _token(parts.geturl())
        if token is None:
            return f"its destination {seen} carries no subscription token " \
                   "([http] auth-enabled)"
        if token_cluster(token) != self.config.name:
            return f"its destination {seen} carries a token of another cluster"
        if not self.tokens.granted(token):
            return f"its destination {seen} carries a token that is no longer granted"
        return ""

    async def _destination(self, key: tuple[str, str], port: int | None) -> str | None:
        protocol = self.config.subscription_protocol
        if protocol == "udp":
            try:
                udp_port = await self._listen(key, 0)
            except OSError as exc:
                self.log.error("failed to start UDP listener", cluster=self.config.name,
                               db=key[0], rp=key[1], bind=self.config.udp_bind,
                               err=str(exc))
                return None
            return f"udp://{_host_port(self.hostname, udp_port)}"
        assert port is not None
        credentials = ""
        if self.use_tokens:
            assert self.tokens is not None
            token = make_token(self.config.name)
            await self.tokens.grant(token, key[0], key[1])
            credentials = f"{SUBSCRIPTION_USER}:{token}@"
        return f"{protocol}://{credentials}{_host_port(self.hostname, port)}{_path(self.config)}"

    async def _listen(self, key: tuple[str, str], port: int) -> int:
        if self._nursery is None:
            raise OSError("the subscription manager is not running")
        self._close(key)
        listener = UDPListener(key[0], key[1], host=self.config.udp_bind, port=port,
                               buffer=self.config.udp_buffer,
                               read_buffer=self.config.udp_read_buffer,
                               write_points=self.write_points,
                               log=self.log)
        bound = await listener.open(self._nursery)
        self.listeners[key] = listener
        return bound

    def _close(self, key: tuple[str, str]) -> None:
        self._running.discard(key)
        listener = self.listeners.pop(key, None)
        if listener is not None:
            listener.close()

    # -- unlinking ----------------------------------------------------------------------
    async def unlink(self, name: str) -> int:
        """Drop every subscription called ``name``; returns how many were dropped."""
        async with self._lock:
            dropped = 0
            tokens: builtins.list[str] = []
            for sub in await self.list():
                if sub.name == name:
                    await self._drop(sub, "subscriptions of this name are no longer used")
                    self._close(sub.key)
                    dropped += 1
                    tokens.extend(t for d in sub.destinations[:1]
                                  if (t := _token(d)) is not None)
            if self.tokens is not None and tokens:
                await self.tokens.revoke(tokens)
            if name == self.name:
                self.num_subscriptions = 0
            return dropped

    async def unlink_logged(self, name: str) -> None:
        self.log.debug("unlinking subscriptions", cluster=self.config.name, name=name)
        try:
            await self.unlink(name)
        except SubscriptionError as exc:
            self.log.error("failed to unlink subscriptions", cluster=self.config.name,
                           name=name, err=str(exc))

    # -- InfluxQL -----------------------------------------------------------------------
    async def list(self) -> list[Subscription]:
        """All subscriptions on the cluster (``SHOW SUBSCRIPTIONS``)."""
        out: builtins.list[Subscription] = []
        for series in await self._series("SHOW SUBSCRIPTIONS"):
            columns = series.get("columns") or []
            for row in series.get("values") or []:
                values = dict(zip(columns, row, strict=False))
                destinations = values.get("destinations") or []
                out.append(Subscription(
                    db=str(series.get("name", "")), rp=str(values.get("retention_policy", "")),
                    name=str(values.get("name", "")), mode=str(values.get("mode") or "ANY"),
                    destinations=[str(d) for d in destinations]
                    if isinstance(destinations, list) else [str(destinations)]))
        return out

    # ``list`` names the method above from here on in this class: hence ``builtins.list``.
    async def _candidates(self) -> builtins.list[tuple[str, str]]:
        out: builtins.list[tuple[str, str]] = []
        for series in await self._series("SHOW DATABASES"):
            for row in series.get("values") or []:
                db = str(row[0])
                try:
                    rps = await self._series(f"SHOW RETENTION POLICIES ON {quote_ident(db)}")
                except SubscriptionError as exc:
                    if "database not found" in str(exc):
                        continue  # dropped meanwhile
                    raise
                for rp_series in rps:
                    columns = rp_series.get("columns") or ["name"]
                    index = columns.index("name") if "name" in columns else 0
                    out.extend((db, str(r[index])) for r in rp_series.get("values") or [])
        return out

    async def _create(self, sub: Subscription) -> None:
        destinations = ", ".join(quote_string(d) for d in sub.destinations)
        mode = (sub.mode or "ANY").upper()
        await self._series(f"CREATE SUBSCRIPTION {quote_ident(sub.name)} ON "
                           f"{quote_ident(sub.db)}.{quote_ident(sub.rp)} DESTINATIONS "
                           f"{mode} {destinations}")
        self.log.info("created subscription", cluster=self.config.name, db=sub.db,
                      rp=sub.rp, name=sub.name, mode=mode,
                      destinations=",".join(map(shown, sub.destinations)))

    async def _drop(self, sub: Subscription, reason: str) -> None:
        await self._series(f"DROP SUBSCRIPTION {quote_ident(sub.name)} ON "
                           f"{quote_ident(sub.db)}.{quote_ident(sub.rp)}")
        self.log.info("dropped subscription", cluster=self.config.name, db=sub.db,
                      rp=sub.rp, name=sub.name,
                      destinations=",".join(map(shown, sub.destinations)), reason=reason)

    async def _series(self, statement: str) -> builtins.list[dict[str, Any]]:
        """Run one statement; its result's series, or SubscriptionError."""
        http = self.client.http
        if http is None:
            raise SubscriptionError(f"{statement}: the InfluxDB client is closed")
        url = self.client.url
        try:
            response = await http.post(url + "/query", params={"q": statement},
                                       timeout=self._timeout)
        except httpx.HTTPError as exc:
            self.client.next_url()  # the next link tries the cluster's next URL
            raise SubscriptionError(f"{statement}: cannot reach {url}: "
                                    f"{str(exc) or type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) else None
            if response.status_code == 401:
                detail = f"authorization failed ({detail or 'check username/password'})"
            raise SubscriptionError(f"{statement}: {url} answered HTTP "
                                    f"{response.status_code}: "
                                    f"{detail or response.text[:200].strip()}")
        if not isinstance(body, dict):
            raise SubscriptionError(f"{statement}: {url} answered a body that is not JSON")
        if body.get("error"):
            raise SubscriptionError(f"{statement}: {body['error']}")
        results = body.get("results") or [{}]
        result = results[0] if isinstance(results[0], dict) else {}
        if result.get("error"):
            raise SubscriptionError(f"{statement}: {result['error']}")
        return list(result.get("series") or [])


# -- the InfluxDB service's side ------------------------------------------------------

@dataclass(frozen=True)
class LinkState:
    """What one service instance was configured to link for one cluster."""

    config: InfluxDBConfig
    name: str  # "" when subscriptions are disabled


def remember_links(state: dict[str, Any], elements: tuple[InfluxDBConfig, ...],
                   cluster_id: str, server_id: str) -> dict[str, LinkState]:
    """Record what a new InfluxDB service will link; return what the previous one did.

    ``state`` is the mapping the daemon keeps for the ``[[influxdb]]`` section across
    re-opens: a configuration override re-creates the service, and comparing with the
    previous instance of the same daemon tells which subscriptions a runtime change
    leaves behind. The first service of a daemon gets an empty history (a restart never
    unlinks); without a daemon identity nothing is linked nor remembered.
    """
    if not cluster_id:
        return {}
    previous: dict[str, LinkState] = state.get(_LINKS, {})
    state[_LINKS] = {
        e.name: LinkState(e, "" if e.disable_subscriptions else
                          subscription_name(e, cluster_id, server_id))
        for e in elements if e.enabled}
    return previous


#: The key of the links history in the section's state.
_LINKS = "subscription_links"


class _Service(Protocol):
    """What the functions below use of the InfluxDB service."""

    @property
    def elements(self) -> tuple[InfluxDBConfig, ...]: ...
    @property
    def log(self) -> Logger: ...
    @property
    def context(self) -> InfluxDBContext: ...
    @property
    def auth_enabled(self) -> bool: ...
    @property
    def blacklist(self) -> DenyList | None: ...
    @property
    def shared_secret(self) -> str: ...
    @property
    def previous_links(self) -> dict[str, LinkState]: ...
    @property
    def subscriptions(self) -> dict[str, SubscriptionManager]: ...


def _http_port(config: InfluxDBConfig, daemon: DaemonFacts) -> int | None:
    if config.http_port:
        return config.http_port
    address = daemon.address
    return int(address[1]) if address else None


def _manager(service: _Service, config: InfluxDBConfig, client: ClusterClient) -> \
        SubscriptionManager | None:
    ctx = service.context
    daemon = ctx.daemon
    if not daemon.cluster_id:
        return None
    root = ctx.root
    return SubscriptionManager(
        config, client, cluster_id=daemon.cluster_id, server_id=daemon.server_id,
        hostname=(root.hostname if root is not None else "") or "localhost",
        http_port=lambda: _http_port(config, daemon), write_points=ctx.write_points,
        log=service.log, tokens=ctx.subscription_tokens,
        use_tokens=service.auth_enabled)


async def run_subscriptions(service: _Service, config: InfluxDBConfig,
                            client: ClusterClient) -> None:
    """Manage the subscriptions of one connected cluster until cancelled."""
    manager = _manager(service, config, client)
    if manager is None:
        service.log.debug("no daemon identity: subscriptions are not managed",
                          cluster=config.name)
        await trio.sleep_forever()
        return
    previous = service.previous_links.get(config.name)
    unlink_first = ""
    if previous is not None and previous.name and (
            config.disable_subscriptions or previous.name != manager.name):
        unlink_first = previous.name
    if (not config.disable_subscriptions and config.subscription_protocol != "udp"
            and _http_port(config, service.context.daemon) is None):
        # The API opens after the services: wait for its port before the first link.
        while _http_port(config, service.context.daemon) is None:  # noqa: ASYNC110
            await trio.sleep(PORT_POLL)
    service.subscriptions[config.name] = manager
    try:
        await manager.run(unlink_first=unlink_first)
        await trio.sleep_forever()
    finally:
        if service.subscriptions.get(config.name) is manager:
            del service.subscriptions[config.name]


async def unlink_removed_clusters(service: _Service) -> None:
    """Drop the subscriptions of clusters the previous configuration had and this lacks."""
    current = {e.name for e in service.elements if e.enabled}
    for name, state in service.previous_links.items():
        if name in current or not state.name:
            continue
        try:
            async with ClusterClient(state.config, blacklist=service.blacklist,
                                     shared_secret=service.shared_secret) as client:
                manager = _manager(service, state.config, client)
                if manager is not None:
                    service.log.info("InfluxDB cluster removed or disabled: dropping its "
                                     "subscriptions", cluster=name)
                    await manager.unlink_logged(state.name)
        except KapaError as exc:
            service.log.error("failed to unlink subscriptions", cluster=name, err=str(exc))


async def link_all(service: _Service) -> None:
    """Link every enabled cluster now (``POST /kapacitor/v1/subscriptions``)."""
    for element in service.elements:
        if not element.enabled:
            continue
        manager = service.subscriptions.get(element.name)
        if manager is None:
            raise SubscriptionError(f"linking cluster {element.name}: not connected to "
                                    "InfluxDB yet")
        try:
            await manager.sync()
        except SubscriptionError as exc:
            raise SubscriptionError(f"linking cluster {element.name}: {exc}") from None


def num_subscriptions(service: Any) -> int:
    """Subscriptions of this instance across clusters, as of each cluster's last link."""
    managers = getattr(service, "subscriptions", {}) or {}
    return sum(m.num_subscriptions for m in managers.values())
