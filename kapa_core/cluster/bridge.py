"""The official NATS client, asyncio-based, used from kapa-core's trio core.

``nats-py`` runs on an asyncio event loop of its own in a daemon thread; every public
method here is a trio coroutine that submits one asyncio coroutine to that loop and waits
for its result without blocking trio (a trio token callback wakes the waiting task, so no
worker thread is held per call). A cancelled trio call cancels its asyncio task::

    async with NatsBridge.connect(["nats://127.0.0.1:4222"], name="member-1") as nats:
        await nats.ensure_stream("POINTS", ["points.>"], replicas=3)
        ack = await nats.publish("points.db.rp.cpu", payload)    # stored when this returns
        consumer = await nats.pull_consumer("POINTS", "task-cpu", ["points.db.rp.cpu"])
        for message in await consumer.fetch(100, timeout=1.0):
            ...; await message.ack()
        tasks = await nats.kv("tasks", history=5, replicas=3)
        revision = await tasks.put("cpu", b"...")
        async with tasks.watch(">") as changes:
            async for change in changes: ...

Why a thread rather than trio-asyncio or a client of our own: the client is the one NATS
maintains (JetStream, key-value and reconnection included), and a loop thread keeps the two
event loops from knowing about each other; the cost is one cross-thread hop per call
(tens of microseconds), small beside a JetStream round trip.

Every failure reaches the caller as :class:`~kapa_core.cluster.ClusterError` naming the
operation, the stream/consumer/bucket and the server; a lost compare-and-set on a bucket
is its subclass :class:`~kapa_core.cluster.ConflictError`.

Consumers (:mod:`kapa_core.cluster.pull_consumer`) and key-value buckets
(:mod:`kapa_core.cluster.kv_bucket`) live beside this module and call back into the loop
through :meth:`NatsBridge._call`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import math
import os
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import nats
import nats.errors
import nats.js.errors
import trio
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue
from nats.nuid import NUID

from kapa_core.cluster import ClusterError, ConflictError
from kapa_core.cluster.kv_bucket import KvBucket, KvChange, KvEntry, KvWatch
from kapa_core.cluster.pull_consumer import Message, PullConsumer
from kapa_core.logs import Logger

_T = TypeVar("_T")
_log = Logger("cluster")

#: Errors after which the same request may succeed when tried again: no answer in time,
#: no stream leader yet (no responders), the connection being re-established.
_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError, nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
    nats.errors.OutboundBufferLimitError, nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError)
#: Errors this module turns into ClusterError; anything else is a bug and propagates.
_CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error, TimeoutError, OSError, ValueError, concurrent.futures.CancelledError)
_WRONG_LAST_SEQUENCE = (10071, 10164)  # JetStream's err_codes for a failed CAS


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, nats.js.errors.APIError):  # 503: JetStream not ready, no leader
        return getattr(exc, "code", None) in (503, 408)
    return isinstance(exc, _TRANSIENT)


def _describe(exc: BaseException) -> str:
    if _is_conflict(exc):
        return f"another write came first ({getattr(exc, 'description', None) or exc})"
    if isinstance(exc, nats.js.errors.APIError):
        # some subclasses skip APIError.__init__, so the attributes may be missing
        code, err_code = getattr(exc, "code", None), getattr(exc, "err_code", None)
        return f"{exc.description or 'error'} (status {code}, code {err_code})"
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return "its stream does not answer (no leader elected yet?)"
    if isinstance(exc, nats.js.errors.InvalidKeyError):
        return "not a valid key (dot-separated tokens of letters, digits, '-', '_', '/', '=')"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, ssl.SSLError):
        # "Connect call failed": say why (an SSL error's errno is the library's own)
        return f"{os.strerror(exc.errno).lower()} ({exc})"
    if isinstance(exc, concurrent.futures.CancelledError):
        return "the connection was closed"
    return str(exc) or type(exc).__name__


# -- the loop thread -----------------------------------------------------------------------

class _LoopThread:
    """An asyncio event loop running forever in a daemon thread until ``stop()``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        # Set by stop(): a coroutine submitted after it might never run, leaving its
        # caller waiting forever. submit() and stop() are both called from trio's thread.
        self.stopping = False
        self._thread = threading.Thread(target=self._main, name=f"nats-{name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        if not self.stopping:
            with suppress(RuntimeError):  # the loop is closed
                return asyncio.run_coroutine_threadsafe(coro, self.loop)
        coro.close()
        raise ClusterError("the NATS connection is closed")

    async def stop(self) -> None:
        """Stop the loop (its tasks are cancelled) and wait for the thread to end."""
        self.stopping = True
        with suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        await trio.to_thread.run_sync(self._thread.join, 10.0, abandon_on_cancel=True)


async def _wait(future: concurrent.futures.Future[_T]) -> _T:
    """The future's result, waited for in trio; cancelling the wait cancels the future."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: object) -> None:
        with suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    try:
        await done.wait()
    except BaseException:
        future.cancel()
        raise
    return future.result()


# -- results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PubAck:
    """JetStream's acknowledgement: the message is stored as ``seq`` of ``stream``
    (``duplicate``: it already was, from an earlier try with the same message id)."""

    stream: str
    seq: int
    duplicate: bool


@dataclass(frozen=True)
class StreamState:
    name: str
    subjects: tuple[str, ...]
    replicas: int
    messages: int
    first_seq: int
    last_seq: int
    leader: str | None  # the server leading the stream's replicas (None: single server)


# -- the bridge ----------------------------------------------------------------------------

class NatsBridge:
    """A NATS connection (with JetStream) on its own asyncio loop thread, used from trio.

    Made by :meth:`connect` only. The client reconnects by itself (to any of the URLs or
    the servers the cluster advertises) for as long as the bridge is open; calls made
    meanwhile wait, and :meth:`publish` retries until its timeout.
    """

    def __init__(self, thread: _LoopThread, nc: Client, urls: Sequence[str],
                 events: _Events) -> None:
        self._thread = thread
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._events = events
        self._nuid = NUID()  # message ids for publish; used from the trio thread only
        self.urls = tuple(urls)

    @property
    def closed(self) -> bool:
        """Whether the bridge is closing or closed: its calls fail from then on."""
        return self._events.closing or self._nc.is_closed

    @property
    def connected(self) -> bool:
        """Whether the client is connected now (False while it reconnects)."""
        return self._nc.is_connected

    @property
    def reconnects(self) -> int:
        """How many times the client has reconnected since :meth:`connect`."""
        return self._events.reconnects

    @classmethod
    @asynccontextmanager
    async def connect(cls, urls: Sequence[str], *, name: str = "kapa-core",
                      user: str | None = None, password: str | None = None,
                      token: str | None = None, creds: str | None = None,
                      tls: ssl.SSLContext | None = None, connect_timeout: float = 5.0,
                      reconnect_wait: float = 0.5) -> AsyncIterator[NatsBridge]:
        """Connect to one of ``urls`` (tried in random order, which spreads members over
        the servers); close on exit.

        ``creds`` is a NATS credentials file (JWT and NKey seed). Connecting gives up
        after ``connect_timeout`` seconds with the last error the client met (refused,
        authorization violation...); later disconnections are retried forever, every
        ``reconnect_wait`` seconds per server.
        """
        if not urls:
            raise ClusterError("no NATS server URLs to connect to")
        thread = _LoopThread(name)
        events = _Events()
        bridge: NatsBridge | None = None
        try:
            nc = await _wait(thread.submit(_open(
                list(urls), events, within=connect_timeout, name=name, user=user,
                password=password, token=token, user_credentials=creds, tls=tls,
                reconnect_time_wait=reconnect_wait)))
            bridge = cls(thread, nc, urls, events)
            yield bridge
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                if bridge is not None:
                    events.closing = True
                    with suppress(ClusterError):
                        await bridge._call("close", bridge._nc.close())
                await thread.stop()

    # -- calling into the loop ---------------------------------------------------------

    @property
    def server(self) -> str:
        """The server the client is connected to now (``host:port``), or ``none``."""
        url = self._nc.connected_url
        return url.netloc if url is not None and self._nc.is_connected else "none"

    @property
    def server_version(self) -> tuple[int, int, int]:
        version = self._nc.connected_server_version
        return version.major, version.minor, version.patch

    def _error(self, what: str, exc: BaseException) -> ClusterError:
        kind = ConflictError if _is_conflict(exc) else ClusterError
        return kind(f"{what} failed on NATS server {self.server}: {_describe(exc)}")

    async def _call(self, what: str, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the loop thread and return its result, errors as ClusterError
        (``what`` says what was being done, e.g. "publish to 'points.db'")."""
        future = self._thread.submit(coro)
        try:
            return await _wait(future)
        except ClusterError:
            raise
        except _CLIENT_ERRORS as exc:
            raise self._error(what, exc) from exc

    async def _retrying(self, attempt: Callable[[float], Coroutine[Any, Any, _T]],
                        within: float, attempt_timeout: float) -> _T:
        """On the loop: ``attempt(seconds)`` again after transient errors for ``within``
        seconds (short pauses, growing to half a second), then the last error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pause = 0.02
        while True:
            remaining = deadline - loop.time()
            try:
                return await attempt(max(0.001, min(remaining, attempt_timeout)))
            except Exception as exc:
                remaining = deadline - loop.time()
                if not _transient(exc) or remaining <= 0:
                    raise
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.5)

    # -- streams -----------------------------------------------------------------------

    async def ensure_stream(self, name: str, subjects: Sequence[str], *, replicas: int = 1,
                            max_age: float | None = None,
                            storage: Literal["file", "memory"] = "file",
                            duplicate_window: float | None = None) -> StreamState:
        """Create the stream, or update it to these subjects, replicas and limits.

        ``max_age`` (seconds, None: forever) bounds how long messages are kept;
        ``duplicate_window`` (seconds, default 2 minutes) is how long a message id is
        remembered to drop a re-published duplicate. The storage of an existing stream
        cannot change (JetStream refuses), which is reported as an error.
        """
        return await self._call(f"ensure stream {name!r}", self._ensure_stream(
            name, list(subjects), replicas, max_age or 0.0, storage, duplicate_window))

    async def _ensure_stream(self, name: str, subjects: list[str], replicas: int,
                             max_age: float, storage: str,
                             duplicate_window: float | None) -> StreamState:
        wanted: dict[str, Any] = {"subjects": subjects, "num_replicas": replicas,
                                  "max_age": max_age}
        if duplicate_window is not None:
            wanted["duplicate_window"] = duplicate_window
        try:
            info = await self._js.stream_info(name)
        except nats.js.errors.NotFoundError:
            info = await self._js.add_stream(api.StreamConfig(
                name=name, storage=api.StorageType(storage), **wanted))
            return _stream_state(info)
        config = info.config
        # the client leaves the server's answer a plain string here, not a StorageType
        current_storage = getattr(config.storage, "value", config.storage) or "file"
        if current_storage != storage:
            raise ClusterError(f"stream {name!r} exists with {current_storage} storage, "
                               f"which cannot change to {storage}")
        current = {"subjects": config.subjects or [], "num_replicas": config.num_replicas or 1,
                   "max_age": config.max_age or 0.0,
                   "duplicate_window": config.duplicate_window}
        if duplicate_window is None and max_age and config.duplicate_window > max_age:
            wanted["duplicate_window"] = max_age  # JetStream wants it within max_age
        if any(current[key] != value for key, value in wanted.items()):
            info = await self._js.update_stream(config.evolve(**wanted))
        return _stream_state(info)

    async def stream_state(self, name: str) -> StreamState:
        return await self._call(f"read stream {name!r}", self._stream_info(name))

    async def _stream_info(self, name: str) -> StreamState:
        return _stream_state(await self._js.stream_info(name))

    async def delete_stream(self, name: str) -> None:
        await self._call(f"delete stream {name!r}", self._js.delete_stream(name))

    # The timeouts here and below are the client's and the server's (a retry deadline, a
    # pull request's expiry), which a trio cancel scope around the call could not set.
    async def publish(self, subject: str, payload: bytes, *, msg_id: str | None = None,
                      headers: dict[str, str] | None = None,
                      timeout: float = 10.0,  # noqa: ASYNC109
                      attempt_timeout: float = 2.0) -> PubAck:
        """Publish to JetStream and return once it is stored (replicated to a quorum).

        Retries through reconnects and leader elections until ``timeout``. Every try
        carries the same ``Nats-Msg-Id`` (``msg_id``, or one made here), so a try whose
        acknowledgement was lost is not stored twice (within the stream's duplicate
        window): the ack then says ``duplicate``. Raises ClusterError when no server
        acknowledged in time, or at once for a permanent error (no stream for the
        subject, message too large...).
        """
        attempt = self._publish_attempt(subject, payload, msg_id, headers)
        ack = await self._call(f"publish to {subject!r}",
                               self._retrying(attempt, timeout, attempt_timeout))
        return PubAck(ack.stream, ack.seq, bool(ack.duplicate))

    async def publish_many(self, messages: Sequence[tuple[str, bytes]], *,
                           timeout: float = 10.0,  # noqa: ASYNC109
                           attempt_timeout: float = 2.0) -> list[PubAck | ClusterError]:
        """Publish ``messages`` (subject, payload) together: sent in this order on the one
        connection, so JetStream stores each subject's in this order, and acknowledged
        together (one round trip for all, where :meth:`publish` takes one each). Each
        message is retried as :meth:`publish` retries one; its result is its PubAck, or
        the ClusterError saying why it was not stored. A retried message may land after
        a later one (only after a failure)."""
        async def all_of() -> list[PubAck | ClusterError]:
            futures = [asyncio.ensure_future(self._retrying(
                self._publish_attempt(subject, payload, None, None), timeout,
                attempt_timeout)) for subject, payload in messages]
            done = await asyncio.gather(*futures, return_exceptions=True)
            out: list[PubAck | ClusterError] = []
            for (subject, _), result in zip(messages, done, strict=True):
                if isinstance(result, BaseException):
                    out.append(result if isinstance(result, ClusterError)
                               else self._error(f"publish to {subject!r}", result))
                else:
                    out.append(PubAck(result.stream, result.seq, bool(result.duplicate)))
            return out
        return await self._call(f"publish {len(messages)} messages", all_of())

    def _publish_attempt(self, subject: str, payload: bytes, msg_id: str | None,
                         headers: dict[str, str] | None
                         ) -> Callable[[float], Coroutine[Any, Any, api.PubAck]]:
        """One try of a publish, with the message ID every try of it carries."""
        all_headers = dict(headers or {})
        all_headers["Nats-Msg-Id"] = msg_id or self._nuid.next().decode()
        looked_up = False

        async def attempt(seconds: float) -> api.PubAck:
            nonlocal looked_up
            try:
                return await self._js.publish(subject, payload, timeout=seconds,
                                              headers=dict(all_headers))
            except nats.js.errors.NoStreamResponseError:
                # No responder: either no stream takes the subject (permanent) or its
                # leader is being elected (seconds after a server dies): ask once which.
                if not looked_up:
                    looked_up = True
                    await self._stream_of(subject, seconds)
                raise
        return attempt

    async def _stream_of(self, subject: str, seconds: float) -> None:
        """Raise a permanent error if no stream takes ``subject``; if the question cannot
        be answered now, assume one does."""
        try:
            await asyncio.wait_for(self._js.find_stream_name_by_subject(subject), seconds)
        except nats.js.errors.NotFoundError:
            raise ClusterError(f"publish to {subject!r} failed on NATS server "
                               f"{self.server}: no stream takes this subject") from None
        except Exception:  # unanswered: the publish is tried again
            pass

    # -- consumers ---------------------------------------------------------------------

    async def pull_consumer(self, stream: str, durable: str,
                            filter_subjects: Sequence[str] = (), *, ack_wait: float = 30.0,
                            max_deliver: int = -1, max_ack_pending: int = 10_000,
                            deliver_policy: Literal["all", "new", "last"] = "all",
                            start_time: float | None = None,
                            ) -> PullConsumer:
        """Create (or update) the durable pull consumer ``durable`` on ``stream`` and bind
        to it. Its position survives this bridge, reconnections and server restarts: a
        new binding resumes after the last acknowledged message.

        ``ack_wait``: seconds before an unacknowledged message is delivered again.
        ``start_time`` (seconds since the epoch): a new consumer starts with the first
        message stored at or after it (JetStream's ``by_start_time``), whatever
        ``deliver_policy`` says; an existing one keeps its position.
        Several ``filter_subjects`` need nats-server 2.10 or later; 2.9 accepts the
        request but silently ignores the filter (the consumer would see every subject),
        so it is refused here.
        """
        what = f"consumer {durable!r} on stream {stream!r}"
        subjects = list(filter_subjects)
        if len(subjects) > 1 and self.server_version < (2, 10, 0):
            raise ClusterError(f"{what}: several filter subjects need nats-server 2.10 or "
                               f"later; {self.server} runs "
                               + ".".join(map(str, self.server_version)))
        config = api.ConsumerConfig(
            durable_name=durable, name=durable, ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=ack_wait, max_deliver=max_deliver, max_ack_pending=max_ack_pending,
            deliver_policy=api.DeliverPolicy(deliver_policy))
        if start_time is not None:
            config.deliver_policy = api.DeliverPolicy.BY_START_TIME
            config.opt_start_time = datetime.datetime.fromtimestamp(start_time, datetime.UTC)
        if len(subjects) == 1:
            config.filter_subject = subjects[0]
        elif subjects:
            config.filter_subjects = subjects
        sub = await self._call(what, self._pull_consumer(stream, durable, config))
        return PullConsumer(self, sub, stream, durable)

    async def _pull_consumer(self, stream: str, durable: str, config: api.ConsumerConfig,
                             ) -> JetStreamContext.PullSubscription:
        await self._js.add_consumer(stream, config)
        return await self._js.pull_subscribe_bind(durable=durable, stream=stream)

    async def delete_consumer(self, stream: str, durable: str) -> None:
        await self._call(f"delete consumer {durable!r} on stream {stream!r}",
                         self._js.delete_consumer(stream, durable))

    # -- key-value ---------------------------------------------------------------------

    async def kv(self, bucket: str, *, history: int = 1, ttl: float | None = None,
                 replicas: int = 1, storage: Literal["file", "memory"] = "file") -> KvBucket:
        """Bind to the key-value bucket, creating it (or updating its history, TTL and
        replicas to these) as needed. ``ttl``: seconds a value lives after its last
        write (None: forever); JetStream 2.9 removes expired keys without a delete marker,
        so watches do not see them go."""
        what = f"key-value bucket {bucket!r}"
        kv = await self._call(what, self._kv(bucket, history, ttl or 0.0, replicas, storage))
        return KvBucket(self, kv, bucket)

    async def _kv(self, bucket: str, history: int, ttl: float, replicas: int,
                  storage: str) -> KeyValue:
        try:
            kv = await self._js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            return await self._js.create_key_value(api.KeyValueConfig(
                bucket=bucket, history=history, ttl=ttl, replicas=replicas,
                storage=api.StorageType(storage)))
        info = await self._js.stream_info(f"KV_{bucket}")
        config = info.config
        wanted: dict[str, Any] = {"max_msgs_per_subject": history, "num_replicas": replicas,
                                  "max_age": ttl}
        current = {"max_msgs_per_subject": config.max_msgs_per_subject,
                   "num_replicas": config.num_replicas or 1, "max_age": config.max_age or 0.0}
        if current != wanted:
            if ttl:
                wanted["duplicate_window"] = min(ttl, 120.0)
            await self._js.update_stream(config.evolve(**wanted))
        return kv


def _is_conflict(exc: BaseException) -> bool:
    return (isinstance(exc, nats.js.errors.KeyWrongLastSequenceError)
            or (isinstance(exc, nats.js.errors.APIError)
                and getattr(exc, "err_code", None) in _WRONG_LAST_SEQUENCE))


def _stream_state(info: api.StreamInfo) -> StreamState:
    config, state = info.config, info.state
    leader = info.cluster.leader if info.cluster is not None else None
    return StreamState(config.name or "", tuple(config.subjects or ()),
                       config.num_replicas or 1, state.messages, state.first_seq,
                       state.last_seq, leader)


class _Events:
    """The client's callbacks (run on the loop thread): logged, and counted."""

    def __init__(self) -> None:
        self.reconnects = 0
        self.last_error: BaseException | None = None
        # A refused login is the error worth reporting, even when the retries after it
        # only meet closed connections.
        self.auth_error: BaseException | None = None
        self.nc: Client | None = None
        self.closing = False  # the bridge is closing: a disconnection is expected
        self.retrying = False  # errors seen since the connection was lost

    def _server(self) -> str:
        url = self.nc.connected_url if self.nc is not None else None
        return url.netloc if url is not None else "none"

    async def error(self, exc: Exception) -> None:
        self.last_error = exc
        if isinstance(exc, nats.errors.AuthorizationError) or "authoriz" in str(exc).lower():
            self.auth_error = exc
        # While disconnected the client meets an error per attempt (every reconnect_wait
        # per server): the first is worth a warning, the rest only repeat it.
        log = _log.debug if self.retrying else _log.warn
        log("NATS client error", server=self._server(), error=_describe(exc))
        self.retrying = self.nc is None or not self.nc.is_connected

    async def disconnected(self) -> None:
        if not self.closing:
            _log.warn("disconnected from NATS", server=self._server())

    async def reconnected(self) -> None:
        self.reconnects += 1
        self.retrying = False
        _log.info("reconnected to NATS", server=self._server())


async def _open(servers: list[str], events: _Events, *, within: float,
                **options: Any) -> Client:
    """Connect within ``within`` seconds; the client reconnects forever afterwards."""
    nc = events.nc = Client()
    try:
        await asyncio.wait_for(nc.connect(
            servers=servers, error_cb=events.error, disconnected_cb=events.disconnected,
            reconnected_cb=events.reconnected, max_reconnect_attempts=-1,
            connect_timeout=math.ceil(within), **options), within)
    except Exception as exc:
        with suppress(Exception):
            await nc.close()
        last = events.auth_error or events.last_error or exc
        raise ClusterError(f"cannot connect to NATS at {', '.join(servers)} within "
                           f"{within:g}s: {_describe(last)}") from last
    return nc


# The consumer and bucket types are defined beside this module and exported here too, so
# that one import gives the whole bridge.
__all__ = ["KvBucket", "KvChange", "KvEntry", "KvWatch", "Message", "NatsBridge", "PubAck",
           "PullConsumer", "StreamState"]
