"""Small server endpoints: ping, the route list, the log level, and ``/debug/vars``."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any

from kapa_core import logs
from kapa_core.errors import APIError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router


class ServerAPI:
    def __init__(self, app: Any) -> None:
        self.app = app

    def register(self, router: Router) -> None:
        router.add(["GET", "HEAD"], "/kapacitor/v1/ping", self.ping)
        router.add("GET", "/kapacitor/v1/:routes", self.routes)
        router.add("POST", "/kapacitor/v1/loglevel", self.loglevel)
        router.add("GET", "/kapacitor/v1/debug/vars", self.debug_vars)
        router.add("POST", "/kapacitor/v1/sideload/reload", self.sideload_reload)
        self._router = router

    async def sideload_reload(self, request: Request) -> Response:
        from kapa_core.engine.nodes.enrich import SideloadNode

        for node in list(SideloadNode.registry):
            node.reload()
        return Response.empty(204)

    async def ping(self, request: Request) -> Response:
        return Response.empty(204)

    async def routes(self, request: Request) -> Response:
        return Response.json(self._router.routes())

    async def loglevel(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"null")
            level = body["level"]
            if not isinstance(level, str):
                raise TypeError("level must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise APIError(400, f"invalid json: {exc}") from None
        try:
            logs.set_level(level)
        except ValueError as exc:
            raise APIError(400, str(exc)) from None
        return Response.empty(204)

    async def debug_vars(self, request: Request) -> Response:
        app = self.app
        stats: dict[str, Any] = {}
        for (db, rp, measurement), count in app.stream.ingress():
            stats[f"ingress:{db}:{rp}:{measurement}"] = {
                "name": "ingress",
                "tags": {"task_master": "main", "database": db, "retention_policy": rp,
                         "measurement": measurement, "host": app.config.root.hostname,
                         "cluster_id": app.cluster_id, "server_id": app.server_id},
                "values": {"points_received": count},
            }
        common = {"host": app.config.root.hostname, "cluster_id": app.cluster_id,
                  "server_id": app.server_id}
        for task_id, running in sorted(app.task_master.tasks.items()):
            for node in running.nodes:
                values = node.stats()
                stats[f"nodes:{task_id}:{node.name}"] = {
                    "name": "nodes",
                    "tags": {"task": task_id, "node": node.name, "type": running.pipeline
                             .task_type, "kind": node.spec.kind, **common},
                    "values": {k: v for k, v in values.items()
                               if k not in ("collected", "emitted")},
                }
                for child in node.spec.children:
                    stats[f"edges:{task_id}:{node.name}:{child.name}"] = {
                        "name": "edges",
                        "tags": {"task": task_id, "parent": node.name, "child": child.name,
                                 "type": node.spec.edge_out().value, **common},
                        "values": {"collected": values["emitted"],
                                   "emitted": values["emitted"]},
                    }
        body = {
            "cluster_id": app.cluster_id,
            "server_id": app.server_id,
            "host": app.config.root.hostname,
            "product": "kapacitor",
            "version": app.version,
            "platform": f"{platform.system()} {platform.machine()}",
            "num_tasks": app.num_tasks(),
            "num_enabled_tasks": app.num_enabled_tasks(),
            "num_subscriptions": 0,
            "cmdline": sys.argv,
            "pid": os.getpid(),
            "kapacitor": stats,
        }
        return Response.json(body, pretty=False)
