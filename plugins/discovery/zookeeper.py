"""ZooKeeper tree watching shared by the ``[[nerve]]`` and ``[[serverset]]`` discoverers.

Kapacitor 1.5.7 runs Prometheus' ZooKeeper discovery for both sections: one ZooKeeper
session per element, and for each of its ``paths`` a *tree cache* that reads the node
at that path and every node below it, keeps a watch on each, and reports every node
whose data appeared or changed (``path``, ``data``) or went (``path``, None). Every
node is decoded by the section's member format (the path's own node too); a node
that decodes becomes one target group named by its path, any other node removes the
group of its path.

Here the ZooKeeper client is kazoo, which is thread based. One :class:`TreeWatcher`
owns a :class:`kazoo.client.KazooClient` (its connection thread and two callback
threads) and one thread of its own, the *walker*, which does every read. Kazoo's
threads never block on anything of ours: a fired watch or a connection state change
only puts an item on the walker's queue. The walker hands what it found to the trio
side through a function the discoverer gives it (``trio.from_thread.run_sync`` with the
daemon's trio token), which waits until trio has taken it: the walker is held back the
way Prometheus' unbuffered channel holds its tree cache back.

Differences from Prometheus' tree cache, all in timing only:

* kazoo drops every watch when the connection drops (Prometheus' client keeps them
  when the session survives), so the walker reads the whole tree again as soon as the
  client is connected again, and reports what changed meanwhile (Prometheus, when its
  session expired, retries every 10 s);
* a watched path that does not exist (yet, or any more) is watched for its creation
  instead of being read again every 10 s;
* after each complete read of the trees (at start and after each reconnection) the
  walker reports the whole state, so the discoverer publishes even when it found
  nothing (the section's service test waits for that first answer).

The walker and kazoo stop with :meth:`TreeWatcher.stop` (a blocking call: run it with
``trio.to_thread.run_sync``), which returns once all their threads have ended.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import trio
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.retry import KazooRetry

from kapa_core.plugin_api import DiscoveryContext, TargetGroup

#: What the walker reports: ``(path, data)`` for a node whose data is new, ``(path,
#: None)`` for a node that went. ``full`` reports list every node there is.
Change = tuple[str, "bytes | None"]
#: ``report(changes, full)``: hands a batch to the discoverer (may block)
Report = Callable[[list[Change], bool], None]
#: ``note(level, message, fields)``: a log line for the discoverer to write
Note = Callable[[str, str, dict[str, object]], None]

#: ZooKeeper's client port, which a server without one gets (as Go's client).
DEFAULT_PORT = 2181
#: The longest wait between two connection attempts (Go's client waits 1 s after
#: trying every server).
RECONNECT_MAX_DELAY = 1.0
#: How long :meth:`TreeWatcher.stop` waits for each of its threads.
STOP_TIMEOUT = 10.0


class Stopped(Exception):
    """The watcher is stopping (or the trio side is gone): the walker ends."""


def server_list(servers: Iterable[str]) -> str:
    """``servers`` as kazoo's host list: each ``host[:port]`` (port 2181 when none is
    given, as Go's client does); a server holding ``,`` or ``/`` is refused (kazoo
    would read them as a list or a chroot)."""
    out = []
    for server in servers:
        server = server.strip()
        if not server or "," in server or "/" in server:
            raise ValueError(f"invalid ZooKeeper server {server!r} (expected host:port)")
        if ":" not in server:
            server = f"{server}:{DEFAULT_PORT}"
        out.append(server)
    if not out:
        raise ValueError("no ZooKeeper servers")
    return ",".join(out)


class _KazooLog(logging.Handler):
    """Hands kazoo's own log records to ``note(level, message)``: its errors as
    errors, the rest (connection attempts, drops) at debug level; the walker logs the
    connection's state changes itself."""

    def __init__(self, note: Callable[[str, str], None]) -> None:
        super().__init__(logging.INFO)
        self._note = note

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._note("error" if record.levelno >= logging.ERROR else "debug",
                       record.getMessage())
        except Exception:
            self.handleError(record)


def _kazoo_logger(name: str, note: Callable[[str, str], None]) -> logging.Logger:
    """A logger of kazoo's own for one client, outside the logging tree (so nothing
    reaches the root logger's handlers), writing through ``note``."""
    # Not kazoo's debug lines: one per request, and the session password among them.
    logger = logging.Logger(f"kazoo.{name}", logging.INFO)
    logger.addHandler(_KazooLog(note))
    return logger


# kazoo ships no type information: the base class is Any to mypy
class _CheckedHandler(SequentialThreadingHandler):  # type: ignore[misc]
    """kazoo's threading handler whose connections are checked first by ``check``
    (the daemon's outgoing deny list), with the address kazoo resolved."""

    def __init__(self, check: Callable[[str], None]) -> None:
        super().__init__()
        self._check = check

    def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        address = kwargs.get("address") or (args[0] if args else None)
        if address:
            host, port = str(address[0]), address[1]
            self._check(f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}")
        return super().create_connection(*args, **kwargs)


@dataclass
class _Node:
    """A node of a watched tree as last read: its data (None when gone or not read)."""

    data: bytes | None = None
    children: dict[str, _Node] = field(default_factory=dict)


class TreeWatcher:
    """Watches the ZooKeeper trees at ``paths`` on ``servers`` (see the module docs).

    ``timeout`` (seconds) is the ZooKeeper session timeout. ``report`` receives the
    changes, ``note`` the log lines (both called from the walker thread);
    ``check_outgoing`` is called with ``tcp://address:port`` before each connection;
    ``kazoo_log(level, message)`` gets kazoo's own log lines (from any thread).
    """

    def __init__(self, servers: Sequence[str], paths: Sequence[str], timeout: float,
                 report: Report, note: Note, *, check_outgoing: Callable[[str], None]
                 = lambda url: None, name: str = "zookeeper",
                 kazoo_log: Callable[[str, str], None] = lambda level, message: None
                 ) -> None:
        self.hosts = server_list(servers)
        # "/a/" is "/a" (Prometheus' tree cache would ask for "/a//child" and fail)
        self.paths = list(dict.fromkeys(path.rstrip("/") or "/" for path in paths))
        self.report = report
        self.note = note
        self.name = name
        # A session timeout below ZooKeeper's minimum (2 ticks) is raised by the server.
        self.client = KazooClient(
            hosts=self.hosts, timeout=max(float(timeout), 0.1),
            handler=_CheckedHandler(check_outgoing), logger=_kazoo_logger(name, kazoo_log),
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2,
                                        max_delay=RECONNECT_MAX_DELAY))
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._roots = {path: _Node() for path in self.paths}
        self._stopping = threading.Event()
        self._walker: threading.Thread | None = None
        self._state: str = "new"

    # -- kazoo's threads: only queue items ------------------------------------------
    def _on_state(self, state: str) -> bool:
        self._queue.put(("state", state))
        return False  # stay registered

    def _on_watch(self, event: WatchedEvent) -> None:
        self._queue.put(("watch", event))

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start connecting and the walker (returns at once)."""
        self.client.add_listener(self._on_state)
        self._walker = threading.Thread(target=self._walk, name=f"{self.name}-walker",
                                        daemon=True)
        self._walker.start()
        self.client.start_async()

    def stop(self) -> None:
        """Close the session and end every thread (blocking)."""
        self._stopping.set()
        self._queue.put(("stop", None))
        try:
            self.client.stop()  # fails the walker's pending reads
            self.client.close()
        finally:
            self.client.remove_listener(self._on_state)
            if self._walker is not None:
                self._walker.join(STOP_TIMEOUT)

    # -- the walker ------------------------------------------------------------------
    def _walk(self) -> None:
        try:
            while True:
                kind, item = self._queue.get()
                if kind == "stop" or self._stopping.is_set():
                    return
                if kind == "state":
                    self._state_changed(item)
                elif kind == "watch" and self._state == "connected":
                    self._watched(item)
        except Stopped:
            return
        except Exception as exc:  # a bug: say so rather than stop silently
            self._note("error", "ZooKeeper tree watching failed", error=repr(exc))

    def _note(self, level: str, message: str, **fields: object) -> None:
        if not self._stopping.is_set():
            self.note(level, message, fields)

    def _report(self, changes: list[Change], full: bool = False) -> None:
        if self._stopping.is_set():
            raise Stopped
        if changes or full:
            self.report(changes, full)

    def _state_changed(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            if self._state != "connected":
                self._note("info", "connected to ZooKeeper", servers=self.hosts)
            self._state = "connected"
            self._sync()
        elif state == KazooState.SUSPENDED:
            self._state = "suspended"
            self._note("warn", "lost connection to ZooKeeper, reconnecting",
                       servers=self.hosts)
        elif state == KazooState.LOST:
            self._state = "lost"
            self._note("warn", "ZooKeeper session lost, reconnecting", servers=self.hosts)

    def _sync(self) -> None:
        """Read every tree again (at start and after a reconnection) and report the
        whole state (which replaces the previous one)."""
        changes: list[Change] = []
        for path, root in self._roots.items():
            if not self._read(path, root, changes, refresh=True, root=True):
                return  # the connection dropped: read again when it is back
        self._report(self._current(), full=True)

    def _current(self) -> list[Change]:
        out: list[Change] = []

        def walk(path: str, node: _Node) -> None:
            if node.data is not None:
                out.append((path, node.data))
            for name, child in node.children.items():
                walk(_join(path, name), child)

        for path, root in self._roots.items():
            walk(path, root)
        return out

    def _watched(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE or not event.path:
            return  # the connection dropped; a full read follows the reconnection
        changes: list[Change] = []
        for root_path, root in self._roots.items():
            node = _find(root_path, root, event.path)
            if node is not None and not self._read(
                    event.path, node, changes, refresh=False, root=event.path == root_path):
                return
        self._report(changes)

    def _read(self, path: str, node: _Node, changes: list[Change], *,
              refresh: bool, root: bool = False) -> bool:
        """Read the node at ``path`` and (watching them) its new children, or all its
        children when ``refresh``; False when the connection dropped meanwhile. A root
        that does not exist is watched for its creation."""
        try:
            while True:
                try:
                    self._read_node(path, node, changes, refresh)
                    return True
                except NoNodeError:
                    self._gone(path, node, changes)
                    if not root or not self.client.exists(path, watch=self._on_watch):
                        return True
                    refresh = True  # created again meanwhile: read it now
        except KazooException as exc:
            if self._stopping.is_set():
                raise Stopped from None
            self._note("warn", "reading ZooKeeper failed", path=path, error=repr(exc))
            return False
        except ValueError as exc:  # kazoo refuses the path itself ("/a/./b")
            self._note("error", "invalid ZooKeeper path", path=path, error=str(exc))
            return True

    def _read_node(self, path: str, node: _Node, changes: list[Change],
                   refresh: bool) -> None:
        data, _stat = self.client.get(path, watch=self._on_watch)
        if node.data != data:
            node.data = data
            changes.append((path, data))
        names = self.client.get_children(path, watch=self._on_watch)
        for name in names:
            child = node.children.get(name)
            if child is None or refresh:
                child = node.children.setdefault(name, _Node())
                try:
                    self._read_node(_join(path, name), child, changes, refresh)
                except NoNodeError:  # went between the two reads
                    self._gone(_join(path, name), node.children.pop(name), changes)
        present = set(names)
        for name in [n for n in node.children if n not in present]:
            self._gone(_join(path, name), node.children.pop(name), changes)

    def _gone(self, path: str, node: _Node, changes: list[Change]) -> None:
        """``node`` and everything below it went."""
        if node.data is not None:
            changes.append((path, None))
            node.data = None
        for name, child in node.children.items():
            self._gone(_join(path, name), child, changes)
        node.children.clear()


def _join(path: str, name: str) -> str:
    return f"{path.rstrip('/')}/{name}"


def _find(root_path: str, root: _Node, path: str) -> _Node | None:
    """The node at ``path`` in the tree at ``root_path`` (made when it is missing,
    as Prometheus' tree cache does), None when ``path`` is outside that tree."""
    if path == root_path:
        return root
    prefix = root_path.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    node = root
    for part in path[len(prefix):].split("/"):
        node = node.children.setdefault(part, _Node())
    return node


# -- member data, decoded as Go's encoding/json decodes into Prometheus' structs -------

class GoJSONError(ValueError):
    """The data is not what Go's ``json.Unmarshal`` accepts into the member struct."""


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs, duplicates and order kept."""


@dataclass(frozen=True)
class _Number:
    """A JSON number that is not an integer literal (Go refuses it for an int)."""

    text: str


def _no_constant(name: str) -> Any:
    raise GoJSONError(f"invalid character {name[0]!r} looking for beginning of value")


_INVALID = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """A decoded JSON string as Go has it: a lone surrogate is U+FFFD."""
    return _INVALID.sub("\ufffd", value)


def go_json(data: bytes) -> Any:
    """Parse ``data`` as Go's JSON decoder reads it: every byte that is not UTF-8 is
    U+FFFD, objects are :class:`_Pairs`, non-integer numbers :class:`_Number`."""
    text = _INVALID.sub("\ufffd", data.decode("utf-8", "surrogateescape"))
    try:
        return json.loads(text, object_pairs_hook=_Pairs, parse_float=_Number,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise GoJSONError(str(exc)) from None


#: A struct field's kind: "string", "int", a struct (its fields) or a map of structs.
Kind = Literal["string", "int"] | Mapping[str, Any] | tuple[Literal["map"], Mapping[str, Any]]


def _fold(key: str) -> str | None:
    """``key`` folded as Go matches it to a field name (ASCII letters in either case;
    U+017F and U+212A for s and k); None when no field could match it."""
    key = key.replace("\u017f", "s").replace("\u212a", "k")
    return key.lower() if key.isascii() else None


def zero(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The zero value of a struct given as ``{name: kind}``."""
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        if kind == "string":
            out[name] = ""
        elif kind == "int":
            out[name] = 0
        elif isinstance(kind, tuple):
            out[name] = None
        else:
            out[name] = zero(kind)
    return out


def decode_into(target: dict[str, Any], value: Any, fields: Mapping[str, Any],
                errors: list[str], where: str = "") -> None:
    """Decode ``value`` into the struct ``target`` (fields ``{name: kind}``) as Go's
    ``json.Unmarshal`` does: names matched without case, unknown keys ignored, null
    leaves a value alone (and empties a map), an object merges into a struct or map;
    every type mismatch is added to ``errors`` (Go then fails the whole decoding)."""
    if value is None:
        return
    if not isinstance(value, _Pairs):
        errors.append(f"cannot unmarshal {_json_type(value)} into {where or 'struct'}")
        return
    names = {name.lower(): name for name in fields}
    for key, item in value:
        folded = _fold(key)
        name = names.get(folded) if folded is not None else None
        if name is None:
            continue
        kind = fields[name]
        at = f"{where}.{name}" if where else name
        if item is None:
            if isinstance(kind, tuple):
                target[name] = None
            continue
        if kind == "string":
            if isinstance(item, str):
                target[name] = _text(item)
            else:
                errors.append(f"cannot unmarshal {_json_type(item)} into {at} (string)")
        elif kind == "int":
            if type(item) is int and -(1 << 63) <= item < (1 << 63):
                target[name] = item
            else:
                errors.append(f"cannot unmarshal {_json_type(item)} into {at} (int)")
        elif isinstance(kind, tuple):
            if not isinstance(item, _Pairs):
                errors.append(f"cannot unmarshal {_json_type(item)} into {at} (map)")
                continue
            mapping = target[name] if target[name] is not None else {}
            target[name] = mapping
            for entry_key, entry in item:
                element = zero(kind[1])
                decode_into(element, entry, kind[1], errors, f"{at}[{entry_key}]")
                mapping[_text(entry_key)] = element
        else:
            decode_into(target[name], item, kind, errors, at)


def _json_type(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return f"number {value.text}"
    return f"number {value}"


def decode_member(data: bytes, fields: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``data`` decoded into a struct with ``fields``, or :class:`GoJSONError`."""
    try:
        value = go_json(data)
    except GoJSONError as exc:
        raise GoJSONError(f"error unmarshaling {what}: {exc}") from None
    member = zero(fields)
    errors: list[str] = []
    decode_into(member, value, fields, errors)
    if errors:
        raise GoJSONError(f"error unmarshaling {what}: {errors[0]}")
    return member




# -- the discoverer ------------------------------------------------------------------

#: ``parse(data, path)``: a node's (target, labels), or :class:`GoJSONError`
Parse = Callable[[bytes, str], "tuple[str, dict[str, str]]"]


class ZooKeeperDiscoverer:
    """The discoverer of one ``[[nerve]]`` or ``[[serverset]]`` element: one group per
    node that ``parse`` decodes, named by the node's path, with the one target and
    the labels ``parse`` makes.

    The element config needs ``servers``, ``paths`` and ``timeout`` (a Duration).
    """

    def __init__(self, config: Any, context: DiscoveryContext, parse: Parse) -> None:
        self.config = config
        self.context = context
        self.parse = parse
        #: the data of each node that does not decode, logged once per data
        self._bad: dict[str, bytes] = {}
        self.watcher: TreeWatcher | None = None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        token = trio.lowlevel.current_trio_token()

        def in_trio(fn: Callable[..., None], *args: Any) -> None:
            try:
                trio.from_thread.run_sync(fn, *args, trio_token=token)
            except trio.RunFinishedError:
                raise Stopped from None

        def report(changes: list[Change], full: bool) -> None:
            in_trio(self._publish, changes, full)

        def note(level: str, message: str, fields: dict[str, object]) -> None:
            in_trio(self._log, level, message, fields)

        config = self.config
        # 0 (with which Kapacitor 1.5.7 never connects) is the default 10 s
        timeout = int(config.timeout) / 1e9 if config.timeout > 0 else 10.0
        watcher = self.watcher = TreeWatcher(
            config.servers, config.paths, timeout, report, note,
            check_outgoing=self.context.check_outgoing, kazoo_log=self._kazoo_log,
            name=f"{self.context.section}-{self.context.id}")
        try:
            watcher.start()
            task_status.started()
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(watcher.stop)

    def _kazoo_log(self, level: str, message: str) -> None:
        getattr(self.context.log, level)(message, source="kazoo")

    def _log(self, level: str, message: str, fields: dict[str, object]) -> None:
        getattr(self.context.log, level)(message, **fields)

    def _publish(self, changes: list[Change], full: bool) -> None:
        groups = []
        for path, data in changes:
            target: tuple[str, ...] = ()
            labels: dict[str, str] = {}
            if data is None:
                self._bad.pop(path, None)
            else:
                try:
                    address, labels = self.parse(data, path)
                    target = (address,)
                    self._bad.pop(path, None)
                except GoJSONError as exc:
                    if data.strip() and self._bad.get(path) != data:  # not a bare folder
                        self._bad[path] = data
                        self.context.log.warn("ignoring ZooKeeper node", path=path,
                                              error=str(exc))
            groups.append(TargetGroup(target, labels, source=path))
        self.context.update(groups, replace=full)
