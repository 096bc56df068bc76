"""Scraper: ``[[scraper]]`` elements pull Prometheus metrics from discovered targets.

Each enabled element follows the discoverer element it names (``discoverer-service``,
``discoverer-id``): every target of its groups is scraped every ``scrape-interval``
(first after Prometheus' offset, a hash of the target into the interval) with a GET of
``<__scheme__>://<__address__><__metrics_path__>?<params>``; the page (Prometheus text
format) becomes points (see ``scrape_format``) written into ``db``/``rp`` as ``/write``
would, followed by Prometheus' four report samples (``up``,
``scrape_duration_seconds``, ``scrape_samples_scraped``,
``scrape_samples_post_metric_relabeling``). Targets come and go with the discoverer's
updates; a discoverer that stops leaves no targets.

A target that cannot be scraped (refused by the deny list, timed out, not answering
200, answering something that does not parse) is logged (at most once a minute per
target and reason), counted and reported ``up`` 0; the others keep being scraped.

Statistics (a kapa-core addition: Kapacitor publishes none): ``scraper`` tagged
``name``, with ``targets`` (targets scraped now), ``scrapes``, ``scrape_errors``,
``scrapes_refused`` (by the deny list, also counted in ``scrape_errors``), ``samples``
(scraped), ``points_tx`` (written), ``points_dropped`` (NaN samples and a blacklisted
instance's points) and ``tx_fail``.

Differences from Kapacitor 1.5.7, decided here: the request asks for the text format
only (``Accept: text/plain;version=0.0.4``); connections are kept alive between scrapes
(Prometheus 1.x closes them); ``username``/``password`` are sent as basic auth only when
one of them is set and ``bearer-token`` otherwise (Kapacitor always sends basic auth,
empty when unset, which hides the bearer token).
"""

from __future__ import annotations

import base64
import math
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import trio
import trio.lowlevel

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Duration,
    InputContext,
    InputListener,
    Section,
    TargetGroup,
    hookimpl,
    require_choice,
    setting,
    unique_elements,
)

from .scrape_format import report_points, sample_points
from .scrape_pool import ParserPool
from .scrape_targets import Target, TargetError, make_target


@dataclass(frozen=True, kw_only=True)
class ScraperConfig:
    enabled: bool = False
    name: str = ""
    type: str = "prometheus"
    db: str = ""
    rp: str = ""
    scheme: str = "http"
    metrics_path: str = "/metrics"
    params: dict[str, list[str]] = setting({})
    scrape_interval: Duration = Duration(60_000_000_000)
    scrape_timeout: Duration = Duration(10_000_000_000)
    username: str = ""
    password: str = setting("", redact=True)
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    ssl_server_name: str = ""
    insecure_skip_verify: bool = False
    bearer_token: str = setting("", redact=True)
    proxy_url: str = ""
    discoverer_id: str = ""
    discoverer_service: str = ""
    blacklist: list[str] = setting([])

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("name", "must be set")
        if not self.db:
            raise ConfigError("db", "must be set")
        if not self.rp:
            raise ConfigError("rp", "must be set")
        require_choice(self.type, "type", ("prometheus",))
        require_choice(self.scheme, "scheme", ("http", "https"))
        if self.scrape_interval <= 0:
            raise ConfigError("scrape-interval", "must be greater than 0")
        if self.scrape_timeout > self.scrape_interval:
            raise ConfigError("scrape-timeout", "must not be longer than scrape-interval")


#: the headers of every scrape request besides the timeout
USER_AGENT = "Prometheus/"  # what Kapacitor 1.5.7 sends (Prometheus' version unset)
ACCEPT = "text/plain;version=0.0.4"
#: seconds between two logs of the same failure of one target
LOG_EVERY = 60.0


class _Failure(Exception):
    """A scrape that failed: its reason as logged."""


class ScrapeLoops:
    """The scrape loops of one ``[[scraper]]`` element."""

    def __init__(self, config: ScraperConfig, context: InputContext) -> None:
        self.config = config
        self.context = context
        self.log = context.log
        self.job = f"{config.db}|{config.rp}|{config.name}"
        self.interval_ns = int(config.scrape_interval)
        self.timeout = int(config.scrape_timeout) / 1e9 or self.interval_ns / 1e9
        self.blacklist = frozenset(config.blacklist)
        self.params = {k: list(v) if isinstance(v, (list, tuple)) else [str(v)]
                       for k, v in (config.params or {}).items()}
        self.headers = {"Accept": ACCEPT, "User-Agent": USER_AGENT,
                        "X-Prometheus-Scrape-Timeout-Seconds": f"{self.timeout:f}"}
        if config.username or config.password:
            token = base64.b64encode(f"{config.username}:{config.password}".encode())
            self.headers["Authorization"] = "Basic " + token.decode()
        elif config.bearer_token:
            self.headers["Authorization"] = "Bearer " + config.bearer_token
        self.extensions = ({"sni_hostname": config.ssl_server_name}
                           if config.ssl_server_name else {})
        #: target hash -> (target, the cancel scope of its loop)
        self.loops: dict[int, tuple[Target, trio.CancelScope]] = {}
        #: target hash -> its HTTP client (one each: httpcore's pool scans all of its
        #: connections on every request, which a pool of hundreds makes costly)
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._verify: ssl.SSLContext | None = None
        self._nursery: trio.Nursery | None = None
        self._last_log: dict[tuple[int, str], float] = {}
        self.parser = ParserPool(context.log)

    # -- lifecycle ----------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        self.stats = self.context.statistic("scraper", {"name": config.name})
        self.stats.set("targets", 0)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.context.watch_targets(self._changed)
                self._sync(self.context.target_groups(config.discoverer_service,
                                                      config.discoverer_id) or ())
                self.log.info("scraper started", discoverer_service=config.discoverer_service,
                              discoverer_id=config.discoverer_id, targets=len(self.loops))
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self.parser.close()
            clients, self._clients = list(self._clients.values()), {}
            with trio.CancelScope(shield=True):
                for client in clients:
                    await client.aclose()

    def _changed(self, service: str, id: str, groups: tuple[TargetGroup, ...] | None) -> None:
        config = self.config
        if service == config.discoverer_service and id == config.discoverer_id:
            self._sync(groups or ())

    def _sync(self, groups: Iterable[TargetGroup]) -> None:
        """Scrape exactly the targets of ``groups`` from now on (Prometheus' sync)."""
        config = self.config
        wanted: dict[int, Target] = {}
        for group in groups:
            try:
                built = [make_target(address, group.labels, config.scheme,
                                     config.metrics_path, self.job, self.params)
                         for address in group.targets]
            except TargetError as exc:
                self.log.error("creating targets failed", group=group.source, err=str(exc))
                continue
            for target in built:
                wanted.setdefault(target.hash, target)
        for key in [k for k in self.loops if k not in wanted]:
            _, scope = self.loops.pop(key)
            scope.cancel()
        if self._nursery is not None:
            for key, target in wanted.items():
                if key not in self.loops:
                    scope = trio.CancelScope()
                    self.loops[key] = (target, scope)
                    self._nursery.start_soon(self._loop, target, scope)
        self.stats.set("targets", len(self.loops))

    # -- scraping -----------------------------------------------------------------
    async def _loop(self, target: Target, scope: trio.CancelScope) -> None:
        interval = self.interval_ns / 1e9
        try:
            with scope:
                await trio.sleep(target.offset(self.interval_ns, time.time_ns()) / 1e9)
                deadline = trio.current_time()
                while True:
                    await self.scrape(target)
                    deadline += interval
                    now = trio.current_time()
                    if deadline < now:  # a slow scrape: the missed ticks are skipped
                        deadline += math.ceil((now - deadline) / interval) * interval
                    await trio.sleep_until(deadline)
        finally:
            client = self._clients.pop(target.hash, None)
            if client is not None:
                with trio.CancelScope(shield=True):
                    await client.aclose()

    def client(self, target: Target) -> httpx.AsyncClient:
        """The target's HTTP client (TLSFileError when a TLS file cannot be loaded)."""
        client = self._clients.get(target.hash)
        if client is None:
            config = self.config
            if self._verify is None:  # one context for every target (httpx would load
                self._verify = TLS.of(config).context()  # the CA store per client)
            client = self._clients[target.hash] = httpx.AsyncClient(
                verify=self._verify, proxy=config.proxy_url or None,
                trust_env=False, follow_redirects=True,
                timeout=httpx.Timeout(self.timeout), http2=False,
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                event_hooks={"request": [self._check_request]})
        return client

    async def _check_request(self, request: httpx.Request) -> None:
        # every request, a redirect's too, goes only where the deny list allows
        self.context.check_outgoing(str(request.url))

    async def _fetch(self, target: Target) -> str:
        try:
            self.context.check_outgoing(target.url)
        except Exception as exc:
            self.stats.add("scrapes_refused")
            raise _Failure(f"refused: {exc}") from None
        try:
            client = self.client(target)
        except Exception as exc:  # a TLS file that cannot be loaded
            raise _Failure(f"cannot create the HTTP client: {exc}") from None
        with trio.move_on_after(self.timeout) as timer:
            try:
                response = await client.get(target.url, headers=self.headers,
                                            extensions=self.extensions)
            except httpx.TimeoutException:
                raise _Failure(f"timeout after {self.timeout:g}s") from None
            except httpx.HTTPError as exc:
                raise _Failure(f"{type(exc).__name__}: {exc}") from None
            except Exception as exc:  # refused redirect, TLS...
                raise _Failure(f"{type(exc).__name__}: {exc}") from None
        if timer.cancelled_caught:
            raise _Failure(f"timeout after {self.timeout:g}s")
        if response.status_code != 200:
            raise _Failure(f"server returned HTTP status {response.status_code} "
                           f"{response.reason_phrase}")
        return response.content.decode("utf-8", "replace")

    async def scrape(self, target: Target) -> None:
        """One scrape of ``target``: its points and report points written."""
        stats = self.stats
        start_ns = time.time_ns()
        started = time.perf_counter()
        scrape_ms = start_ns // 1_000_000
        samples: list[Any] = []
        error = ""
        try:
            text = await self._fetch(target)
            samples = await self.parser.parse(text)
        except _Failure as exc:
            error = str(exc)
        except ValueError as exc:
            error = f"cannot parse the page: {exc}"
        duration = time.perf_counter() - started
        stats.add("scrapes")
        if error:
            stats.add("scrape_errors")
            self._log_failure(target, error)
        db, rp, job = self._decode(target)
        stats.add("samples", len(samples))
        if job is None:
            stats.add("points_dropped", len(samples) + 4)
            return
        points, nan = sample_points(samples, target.public, scrape_ms, db, rp) \
            if samples else ([], 0)
        points += report_points(not error, duration, len(samples), len(samples),
                                target.public, scrape_ms, db, rp)
        if nan:
            stats.add("points_dropped", nan)
        if target.instance in self.blacklist:
            stats.add("points_dropped", len(points))
            return
        try:
            self.context.write_points(db, rp, points)
        except Exception as exc:  # a write the stream refuses: counted, not fatal
            stats.add("tx_fail")
            self.log.error("failed to write points", db=db, rp=rp,
                           err=str(exc) or type(exc).__name__)
            return
        stats.add("points_tx", len(points))
        await trio.lowlevel.checkpoint()

    def _decode(self, target: Target) -> tuple[str, str, str | None]:
        """db, rp and scraper name from the target's ``job`` label (Kapacitor encodes
        them there; a discovered ``job`` label that does not decode loses the samples)."""
        job = target.labels.get("job", "")
        if job == self.job:
            return self.config.db, self.config.rp, self.config.name
        parts = job.split("|")
        if len(parts) != 3:
            self._log_failure(target, f"unable to decode job name {job!r}")
            return "", "", None
        return parts[0], parts[1], parts[2]

    def _log_failure(self, target: Target, reason: str) -> None:
        key = (target.hash, reason.split(":", 1)[0])
        now = time.monotonic()
        last = self._last_log.get(key)
        if last is not None and now - last < LOG_EVERY:
            return
        if len(self._last_log) > 10_000:
            self._last_log.clear()
        self._last_log[key] = now
        self.log.error("scrape failed", scraper=self.config.name, target=target.url,
                       err=reason)


class ScraperTestService:
    """The ``scraper`` section's service test: as Kapacitor's, it takes ``{"name": ""}``
    and always succeeds."""

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def test_options(self) -> dict[str, Any]:
        return {"name": ""}

    async def test(self, options: dict[str, Any]) -> None:
        return None


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="scraper",
            schema=ScraperConfig,
            multiple=True,
            element_key="name",
            check=unique_elements("name"),
            service=lambda context: ScraperTestService(),
            doc="Scrape Prometheus metrics.",
        )
    ]


@hookimpl
def kapa_input_listeners() -> list[InputListener]:
    return [InputListener(name="scraper", section="scraper", factory=ScrapeLoops,
                          doc="Prometheus metrics scraped from discovered targets.",
                          follows=_follows)]


def _follows(config: ScraperConfig) -> tuple[str, str]:
    """The discoverer element a scraper scrapes: the daemon runs only those."""
    return (config.discoverer_service, config.discoverer_id)
