"""The authorization map: which permission each API path needs, and the privilege each
HTTP method asks for.

Kapacitor turns a request into an action on a resource: the resource is the URL path
with ``/kapacitor/v1`` cut off, under ``/api`` (``/kapacitor/v1/tasks/x`` ->
``/api/tasks/x``; ``/write`` -> ``/api/write``), and the privilege comes from the method
(GET read, POST/PATCH/PUT write, DELETE delete, HEAD and OPTIONS none). A user's
permissions grant resources:

============  ===================================================================
permission    grants
============  ===================================================================
api           everything under ``/api`` except ``/api/write`` and ``/api/config``
config_api    ``/api/config`` and ``/api/ping``
write_points  ``/api/write`` and ``/api/ping``
all           all of the above
none          nothing
============  ===================================================================

so the permission a path needs is found from its first segment under the API root:
``config`` -> config_api, ``write`` -> write_points, ``ping`` -> any of the three, every
``me`` (kapa-core's ``/kapacitor/v1/me``, what the console asks) -> any authenticated
user, every other path (tasks, templates, alerts, service-tests, users, debug/vars, the route list,
unknown paths...) -> api. A request with no privilege (HEAD) is allowed to every
authenticated user, and admin users are allowed everything.

As in Kapacitor the user-management endpoints (``/kapacitor/v1/users``) fall under
``api``: a user holding ``api`` can create users, admins included.

A path containing ``.`` or ``..`` segments is checked both as sent and as cleaned, and
must pass both, so no spelling of a path reaches a handler its cleaned form forbids.
"""

from __future__ import annotations

import json

from kapa_core.auth.principal import Principal

BASE = "/kapacitor/v1"
PREVIEW = "/kapacitor/v1preview"
API_ROOT = "/api"

API = "api"
CONFIG_API = "config_api"
WRITE_POINTS = "write_points"

#: First path segment under the API root -> the permissions, any one of which suffices.
SEGMENT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "config": (CONFIG_API,),
    "write": (WRITE_POINTS,),
    "ping": (API, CONFIG_API, WRITE_POINTS),
    # kapa-core's ``/kapacitor/v1/me``: any authenticated user may ask who they are
    "me": (),
}
DEFAULT_PERMISSIONS: tuple[str, ...] = (API,)

#: HTTP method -> Kapacitor privilege name ("none": no privilege needed).
METHOD_PRIVILEGES = {"GET": "read", "POST": "write", "PATCH": "write", "PUT": "write",
                     "DELETE": "delete", "HEAD": "none", "OPTIONS": "none"}


def go_quote(text: str) -> str:
    """``text`` double-quoted with escapes, as Go's ``%q`` writes it."""
    return json.dumps(text, ensure_ascii=False)


def clean_path(path: str) -> str:
    """A rooted path with ``.``, ``..`` and repeated slashes resolved (Go's path.Clean)."""
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


def api_path(path: str) -> str:
    """The request path as the router sees it (preview paths served by v1 routes)."""
    if path.startswith(PREVIEW):
        return BASE + path[len(PREVIEW):]
    return path


def resource(path: str, *, clean: bool = True) -> str:
    """The ``/api/...`` resource a request path acts on; ``clean=False`` keeps its
    ``.`` and ``..`` segments as sent."""
    rest = api_path(path)
    if rest.startswith(BASE):
        rest = rest[len(BASE):]
    joined = API_ROOT + "/" + rest.lstrip("/")
    return clean_path(joined) if clean else joined


def _segment_permissions(res: str) -> tuple[str, ...]:
    segment = ""
    if res.startswith(API_ROOT + "/"):
        segment = res[len(API_ROOT) + 1:].split("/", 1)[0]
    return SEGMENT_PERMISSIONS.get(segment, DEFAULT_PERMISSIONS)


def required_permissions(path: str) -> list[tuple[str, ...]]:
    """What a request for ``path`` needs: every entry must be satisfied, each by any one
    of its permissions (one entry, or two when the path is not clean)."""
    cleaned = _segment_permissions(resource(path))
    raw = _segment_permissions(resource(path, clean=False))
    return [cleaned] if raw == cleaned else [cleaned, raw]


def privilege(method: str) -> str | None:
    """The privilege ``method`` asks for; None for a method the API does not serve."""
    return METHOD_PRIVILEGES.get(method.upper())


def authorize(principal: Principal, method: str, path: str) -> str | None:
    """None when ``principal`` may make the request, else Kapacitor's 403 message."""
    needed = privilege(method)
    if needed is None:
        return f"unknown method {go_quote(method.upper())}"
    if needed == "none" or principal.admin:
        return None
    for choices in required_permissions(path):
        if choices and not any(principal.allows(p) for p in choices):
            return (f'user {principal.name} does not have "{needed}" privilege for API '
                    f"endpoint {go_quote(api_path(path))}")
    return None
