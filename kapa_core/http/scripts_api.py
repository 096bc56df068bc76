"""``POST /kapacitor/v1/scripts/check`` and ``/scripts/try``: a TICKscript checked, or
run on a few points, without creating a task (kapa-core additions; Kapacitor has none).
"""

from __future__ import annotations

from kapa_core.engine.tasks import TaskService
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import V1, Router

CHECK_PATH = V1 + "/scripts/check"
TRY_PATH = V1 + "/scripts/try"


class ScriptsAPI:
    """The check and try routes; ``tasks`` gives the daemon's node context."""

    def __init__(self, tasks: TaskService) -> None:
        self.tasks = tasks

    def register(self, router: Router) -> None:
        router.add("POST", CHECK_PATH, self.check)
        router.add("POST", TRY_PATH, self.try_)

    async def check(self, request: Request) -> Response:
        return Response.error(501, "not implemented yet")

    async def try_(self, request: Request) -> Response:
        return Response.error(501, "not implemented yet")
