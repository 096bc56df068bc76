"""Real NATS servers with JetStream for tests: one server, or a JetStream cluster.

``NatsServer`` runs one ``nats-server`` (Debian's package, 2.9.x) on free loopback ports
with JetStream on and its own store directory; ``NatsCluster(3)`` runs three of them
routed to each other. Both are context managers that always stop their processes and
remove their directories, even when the test fails::

    with NatsServer() as server:                  # ready: JetStream answers
        ... NatsBridge.connect([server.url]) ...
        server.restart()                          # same ports, same store

    with NatsCluster(3) as cluster:               # ready: the meta group has a leader
        ... NatsBridge.connect(cluster.urls) ...
        cluster.servers[1].kill()                 # SIGKILL
        cluster.start(1)                          # back, and caught up

Each server gets a generated configuration file (``server.conf`` in its directory)
rather than command-line flags: a cluster member needs options (``server_name``, the
cluster block, JetStream limits) that only the file can set in 2.9, and the file left
behind shows what ran. The server's own log is ``server.log`` beside it; a server that
does not come up raises an error quoting its tail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

_DEFAULT_BINARIES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")


def find_nats_server() -> str:
    """The ``nats-server`` binary: ``$NATS_SERVER``, then ``PATH``, then Debian's place."""
    explicit = os.environ.get("NATS_SERVER")
    candidates = (explicit,) if explicit else _DEFAULT_BINARIES
    for candidate in candidates:
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK)
                                            else None)
        if found:
            return found
    raise FileNotFoundError("nats-server not found (apt-get install nats-server, or set "
                            "NATS_SERVER to the binary)")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1.

    All sockets stay bound until every port is chosen, so the ports differ from each
    other; another process may still take one before the server binds it (rare).
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _quote(text: str) -> str:
    return json.dumps(text)  # the NATS config format reads JSON strings


@dataclass(frozen=True)
class ClusterRoutes:
    """A server's place in a NATS cluster: its name, route port and the routes to dial."""

    name: str
    port: int
    routes: tuple[int, ...]


class NatsServer:
    """One ``nats-server`` with JetStream on loopback, in a directory of its own.

    ``port``/``monitor_port`` 0 pick free ports once; ``restart()`` reuses them and the
    store, so clients reconnect to the same URL and find their streams. ``user`` and
    ``password`` (or ``token``) make the server require them from clients; ``tls_cert``
    and ``tls_key`` (PEM files) make it require TLS.
    """

    def __init__(self, *, server_name: str = "kapa-nats", store_dir: str | Path | None = None,
                 port: int = 0, monitor_port: int = 0, cluster: ClusterRoutes | None = None,
                 user: str | None = None, password: str | None = None,
                 token: str | None = None, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None, binary: str | None = None,
                 max_file_store: str = "1G", max_memory_store: str = "256M") -> None:
        self.server_name = server_name
        self.binary = binary or find_nats_server()
        self._own_dir = store_dir is None
        self.dir = Path(store_dir) if store_dir else Path(
            tempfile.mkdtemp(prefix=f"kapa-nats-{server_name}-"))
        if not port or not monitor_port:
            picked = iter(free_ports(2))
            port = port or next(picked)
            monitor_port = monitor_port or next(picked)
        self.port = port
        self.monitor_port = monitor_port
        self.cluster = cluster
        self.user, self.password, self.token = user, password, token
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.max_file_store, self.max_memory_store = max_file_store, max_memory_store
        self.url = f"nats://127.0.0.1:{port}"
        self.monitor_url = f"http://127.0.0.1:{monitor_port}"
        self.config_path = self.dir / "server.conf"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # -- configuration -------------------------------------------------------------------

    def config_text(self) -> str:
        """The configuration file this server runs with."""
        lines = [
            f"server_name: {_quote(self.server_name)}",
            f"listen: \"127.0.0.1:{self.port}\"",
            f"http: \"127.0.0.1:{self.monitor_port}\"",
            "jetstream {",
            f"  store_dir: {_quote(str(self.dir / 'jetstream'))}",
            f"  max_file_store: {self.max_file_store}",
            f"  max_memory_store: {self.max_memory_store}",
            "}",
        ]
        if self.token:
            lines.append(f"authorization {{ token: {_quote(self.token)} }}")
        elif self.user is not None:
            lines.append(f"authorization {{ user: {_quote(self.user)}, "
                         f"password: {_quote(self.password or '')} }}")
        if self.tls_cert is not None:
            lines.append(f"tls {{ cert_file: {_quote(str(self.tls_cert))}, "
                         f"key_file: {_quote(str(self.tls_key))} }}")
        if self.cluster is not None:
            routes = ", ".join(f"\"nats-route://127.0.0.1:{p}\"" for p in self.cluster.routes)
            lines += [
                "cluster {",
                f"  name: {_quote(self.cluster.name)}",
                f"  listen: \"127.0.0.1:{self.cluster.port}\"",
                f"  routes: [{routes}]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> Self:
        """Start the process without waiting for it (a cluster starts all, then waits)."""
        if self.running:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text())
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen([self.binary, "-c", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.starts += 1
        return self

    def start(self, timeout: float = 20.0) -> Self:
        """Start the server and wait until JetStream answers on it."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0, *, query: str = "?js-enabled-only=true") -> None:
        """Wait until ``/healthz{query}`` answers ok; raise with the log's tail if not."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.server_name} exited "
                                   f"(status {self.proc.returncode if self.proc else None}):"
                                   f"\n{self.log_tail()}")
            try:
                status, body = self.monitor("/healthz" + query)
            except OSError as exc:
                last = str(exc)
            else:
                if status == 200 and body.get("status") == "ok":
                    return
                last = f"{status} {body}"
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nats-server {self.server_name} not ready after "
                                   f"{timeout:g}s (last: {last}):\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop gracefully (SIGTERM), then SIGKILL after ``timeout``; the exit status."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """Kill with SIGKILL, as a crash would: no goodbye to clients or routes."""
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def restart(self, timeout: float = 20.0, *, kill: bool = False) -> Self:
        """Stop (or ``kill``) and start again on the same ports with the same store."""
        self.kill() if kill else self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its directory if this object made it."""
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- monitoring ----------------------------------------------------------------------

    def monitor(self, path: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
        """GET ``path`` from the monitoring port: (status, JSON body)."""
        try:
            with urllib.request.urlopen(self.monitor_url + path, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:  # healthz answers 503 with a JSON body
            body = exc.read()
            try:
                return exc.code, json.loads(body or b"{}")
            except ValueError:
                return exc.code, {"error": body.decode(errors="replace")}

    def jsz(self) -> dict[str, Any]:
        """``/jsz``: JetStream's state on this server (meta leader, streams...)."""
        return self.monitor("/jsz")[1]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class NatsCluster:
    """``n`` JetStream servers routed to each other on loopback: one NATS cluster.

    Servers are named ``{name}-1`` ... ``{name}-n``; each dials every other's route port.
    Ready when every running server reports the same JetStream meta leader.
    """

    def __init__(self, n: int = 3, *, name: str = "kapa-test", **server_options: Any) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one server")
        self.name = name
        ports = free_ports(3 * n)
        route_ports = ports[2 * n:]
        self.servers: list[NatsServer] = [
            NatsServer(server_name=f"{name}-{i + 1}", port=ports[2 * i],
                       monitor_port=ports[2 * i + 1],
                       cluster=ClusterRoutes(name, route_ports[i], tuple(
                           p for j, p in enumerate(route_ports) if j != i)),
                       **server_options)
            for i in range(n)]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def __getitem__(self, index: int) -> NatsServer:
        return self.servers[index]

    def __len__(self) -> int:
        return len(self.servers)

    def start_all(self, timeout: float = 30.0) -> Self:
        for server in self.servers:
            server.launch()
        self.wait_ready(timeout)
        return self

    def meta_leader(self) -> str | None:
        """The meta leader every running server agrees on, or None while they do not."""
        leaders: set[str | None] = set()
        for server in self.servers:
            if not server.running:
                continue
            try:
                meta = server.jsz().get("meta_cluster") or {}
            except OSError:
                return None
            leaders.add(meta.get("leader") or None)
        if len(leaders) != 1:
            return None
        return leaders.pop()

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Wait until the running servers agree on a meta leader and each one is healthy
        (``/healthz``: JetStream current on it); the leader's name."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            if server.running:
                server.wait_ready(max(0.1, deadline - time.monotonic()))
        while True:
            leader = self.meta_leader()
            if leader is not None:
                break
            if time.monotonic() >= deadline:
                tails = "\n".join(f"== {s.server_name}\n{s.log_tail(15)}" for s in self.servers)
                raise TimeoutError(f"no JetStream meta leader after {timeout:g}s:\n{tails}")
            time.sleep(0.1)
        for server in self.servers:
            if server.running:
                server.wait_ready(max(0.1, deadline - time.monotonic()), query="")
        return leader

    def start(self, index: int, timeout: float = 30.0) -> NatsServer:
        """Start server ``index`` again (after ``stop``/``kill``) and wait until it has
        caught up with the cluster."""
        server = self.servers[index]
        server.launch()
        self.wait_ready(timeout)
        return server

    def restart(self, index: int, timeout: float = 30.0, *, kill: bool = False) -> NatsServer:
        """Stop (or SIGKILL) server ``index`` and start it again, caught up."""
        server = self.servers[index]
        server.kill() if kill else server.stop()
        return self.start(index, timeout)

    def close(self) -> None:
        errors: list[BaseException] = []
        for server in self.servers:
            try:
                server.close()
            except BaseException as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        try:
            return self.start_all()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ClusterRoutes", "NatsCluster", "NatsServer", "find_nats_server", "free_ports"]
