"""``/kapacitor/v1/users``: Kapacitor's internal users (served when ``[auth] enabled``).

    GET    /kapacitor/v1/users          ?pattern=&fields=&offset=&limit=  {"users": [...]}
    POST   /kapacitor/v1/users          {name, password, type, permissions}  -> the user
    GET    /kapacitor/v1/users/<name>                                        -> the user
    PATCH  /kapacitor/v1/users/<name>   {password?, type?, permissions?}     -> the user
    DELETE /kapacitor/v1/users/<name>                                        204

A user is shown as ``{"link", "name", "type", "permissions"}``; its password hash never
leaves the store. ``type`` is ``normal`` (the default) or ``admin``; ``permissions`` are
``none``, ``api``, ``config_api``, ``write_points`` and ``all``. A PATCH changes only
what it names, and making a user an admin clears its permissions (admins need none).
"""

from __future__ import annotations

import json
from typing import Any

from kapa_core.auth.users import (
    USER_FIELDS,
    NoUserExists,
    UserStore,
    parse_limit,
    parse_permissions,
    valid_username,
)
from kapa_core.errors import APIError
from kapa_core.http.listing import json_body
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

BASE = "/kapacitor/v1/users"
USER_TYPES = {"normal": False, "admin": True}


def _body(request: Request) -> dict[str, Any]:
    return json_body(request, details=False, empty=b"")


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise APIError(400, f"invalid JSON: {key} must be a string")
    return value


def _user_type(body: dict[str, Any]) -> bool | None:
    """True for admin, False for normal, None when not given."""
    value = _string(body, "type")
    if not value:
        return None
    admin = USER_TYPES.get(value.lower())
    if admin is None:
        raise APIError(400, f'invalid JSON: unknown user type "{value}" (expected "normal" '
                       'or "admin")')
    return admin


class UsersAPI:
    def __init__(self, users: UserStore) -> None:
        self.users = users

    def register(self, router: Router) -> None:
        router.add("GET", BASE, self.list)
        router.add("POST", BASE, self.create)
        router.add(["GET", "PATCH", "DELETE"], BASE + "/", self.no_name)
        router.add("GET", BASE + "/{name}", self.get)
        router.add("PATCH", BASE + "/{name}", self.update)
        router.add("DELETE", BASE + "/{name}", self.delete)

    async def no_name(self, request: Request) -> Response:
        raise APIError(400, "must specify username on path")

    async def list(self, request: Request) -> Response:
        fields = list(request.query.get("fields", []))
        if fields:
            fields += ["name", "link"]  # always shown, as in Kapacitor
            for name in fields:
                if name not in USER_FIELDS:
                    raise APIError(400, f'unsupported field "{name}"')
        offset = parse_limit(request.arg("offset"), "offset", 0)
        limit = parse_limit(request.arg("limit"), "limit", 100)
        pattern = request.arg("pattern")
        try:
            users = await self.users.list(pattern, offset, limit)
        except ValueError as exc:
            raise APIError(400, f'invalid pattern "{pattern}": {exc}') from None
        return Response.json({"users": [u.view(fields or USER_FIELDS) for u in users]})

    async def get(self, request: Request) -> Response:
        user = await self.users.get(request.params["name"])
        if user is None:
            raise APIError(404, str(NoUserExists()))
        return Response.json(user.view())

    async def create(self, request: Request) -> Response:
        body = _body(request)
        name = _string(body, "name")
        password = _string(body, "password")
        admin = _user_type(body)
        if not name:
            raise APIError(400, "username is required")
        if not valid_username(name):
            raise APIError(400, "username must contain only letters, numbers, '-', '.', '@' "
                           f"and '_'. {json.dumps(name, ensure_ascii=False)}")
        if not password:
            raise APIError(400, "password is required")
        permissions = parse_permissions(body.get("permissions") or [])
        user = await self.users.create(name, password, bool(admin), permissions)
        return Response.json(user.view())

    async def update(self, request: Request) -> Response:
        body = _body(request)
        password = _string(body, "password")
        admin = _user_type(body)
        permissions = None
        if body.get("permissions") is not None:  # absent or null: unchanged
            permissions = parse_permissions(body["permissions"])
        try:
            user = await self.users.update(request.params["name"], password=password,
                                           admin=admin, permissions=permissions)
        except NoUserExists as exc:
            raise APIError(404, str(exc)) from None
        return Response.json(user.view())

    async def delete(self, request: Request) -> Response:
        await self.users.delete(request.params["name"])
        return Response.empty(204)
