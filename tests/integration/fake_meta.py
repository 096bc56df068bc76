"""An InfluxDB Enterprise meta node's user and role API, for tests, on a free loopback port.

    with FakeMeta() as meta:                      # stopped on exit, even when a test fails
        meta.url                                  # http://127.0.0.1:<port>
        meta.count("GET", "/user")                # how often Kapacitor asked

It answers the way the meta API documentation shows: ``GET /user[?name=]`` gives
``{"users": [{"name", "hash", "permissions"}]}`` or 404 ``{"error":"user not found"}``;
``GET /role[?name=]`` gives ``{"roles": [...]}`` (``{}`` when there is none); ``POST /user``
and ``POST /role`` take the JSON ``action`` documents (create, add-permissions, add-users,
...); ``GET /authorized`` checks a password. Every request needs HTTP basic auth with the
admin credentials or, when ``secret`` is given, an HS512 JWT signed with it. Passwords are
kept as bcrypt ``$2a$`` hashes like the Go meta node writes them. ``ldap`` users have no
hash: only ``/authorized`` knows their password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt

from kapa_core.testing import ServedHTTP


def hash_password(password: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return "$2a$" + hashed[4:]  # Go writes the 2a prefix


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def valid_jwt(token: str, secret: str) -> bool:
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(),
                            hashlib.sha512).digest()
        if json.loads(_b64decode(header)).get("alg") != "HS512":
            return False
        claims = json.loads(_b64decode(payload))
        return (hmac.compare_digest(expected, _b64decode(signature))
                and claims.get("exp", 0) > time.time() and "username" in claims)
    except (ValueError, AttributeError):
        return False


class FakeMeta(ServedHTTP):
    def __init__(self, *, admin: tuple[str, str] = ("admin", "changeit"), secret: str = "",
                 certfile: str = "", keyfile: str = "", client_ca: str = "",
                 redirect_to: str = "") -> None:
        self.admin = admin
        self.secret = secret
        self.redirect_to = redirect_to
        self.users: dict[str, dict[str, Any]] = {}
        self.ldap: dict[str, str] = {}
        self.roles: dict[str, dict[str, Any]] = {}
        self.forbidden: set[str] = set()  # paths answered 403 (admin lacks the right)
        self.requests: list[tuple[str, str, dict[str, list[str]], int]] = []
        self.lock = threading.Lock()
        super().__init__(_handler(self), poll_interval=0.05)
        self.addr = f"127.0.0.1:{self.port}"
        if certfile:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile, keyfile)
            if client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(client_ca)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://{self.addr}"

    # what Kapacitor asked ---------------------------------------------------------------

    def count(self, method: str, path: str, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for m, p, _q, s in self.requests
                       if m == method and p == path and (status is None or s == status))

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    # the documents ----------------------------------------------------------------------

    def add_user(self, name: str, password: str, permissions: dict[str, list[str]] | None
                 = None) -> None:
        with self.lock:
            self.users[name] = {"name": name, "hash": hash_password(password),
                                "permissions": permissions or {}}

    def add_ldap_user(self, name: str, password: str,
                      permissions: dict[str, list[str]] | None = None) -> None:
        with self.lock:
            self.users[name] = {"name": name, "hash": "", "permissions": permissions or {}}
            self.ldap[name] = password

    def user_doc(self, user: dict[str, Any]) -> dict[str, Any]:
        doc = {"hash": user["hash"], "name": user["name"]}
        if any(user["permissions"].values()):
            doc["permissions"] = user["permissions"]
        return doc

    def role_doc(self, role: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": role["name"]}
        if any(role["permissions"].values()):
            doc["permissions"] = role["permissions"]
        if role["users"]:
            doc["users"] = role["users"]
        return doc

    def password_ok(self, name: str, password: str) -> bool:
        user = self.users.get(name)
        if user is None:
            return False
        if not user["hash"]:
            return self.ldap.get(name) == password
        return bcrypt.checkpw(password.encode(), user["hash"].encode())


def _add(perms: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for scope, names in more.items():
        have = perms.setdefault(scope, [])
        have.extend(n for n in names if n not in have)


def _remove(perms: dict[str, list[str]], less: dict[str, list[str]]) -> None:
    for scope, names in less.items():
        perms[scope] = [n for n in perms.get(scope, []) if n not in names]


def _handler(meta: FakeMeta) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None
                  = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            parts = urlsplit(self.path)
            with meta.lock:  # recorded before the client can see the answer
                meta.requests.append((self.command, parts.path, parse_qs(parts.query), status))
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if data else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer ") and meta.secret:
                return valid_jwt(header[7:], meta.secret)
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return (user, password) == meta.admin
            return False

        def do_GET(self) -> None:
            self._dispatch()

        def do_POST(self) -> None:
            self._dispatch()

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            if meta.redirect_to:
                self._send(307, None, {"Location": meta.redirect_to + parts.path})
                return
            if not self._authorized():
                self._send(401, {"error": "authorization failed"})
                return
            if parts.path in meta.forbidden:
                self._send(403, {"error": "forbidden"})
                return
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            with meta.lock:
                if self.command == "GET":
                    status, body = self._get(parts.path, query)
                else:
                    try:
                        doc = json.loads(raw)
                    except ValueError:
                        status, body = 400, {"error": "invalid JSON"}
                    else:
                        status, body = self._post(parts.path, doc)
            self._send(status, body)

        def _get(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
            name = query.get("name")
            if path == "/user":
                if name is None:
                    return 200, {"users": [meta.user_doc(u) for u in meta.users.values()]}
                if name not in meta.users:
                    return 404, {"error": "user not found"}
                return 200, {"users": [meta.user_doc(meta.users[name])]}
            if path == "/role":
                if name is None:
                    if not meta.roles:
                        return 200, {}
                    return 200, {"roles": [meta.role_doc(r) for r in meta.roles.values()]}
                if name not in meta.roles:
                    return 404, {"error": "role not found"}
                return 200, {"roles": [meta.role_doc(meta.roles[name])]}
            if path == "/authorized":
                if not meta.password_ok(query.get("name", ""), query.get("password", "")):
                    return 401, {"error": "authorization failed"}
                return 200, None
            return 404, {"error": "not found"}

        def _post(self, path: str, doc: dict[str, Any]) -> tuple[int, Any]:
            action = doc.get("action")
            if path == "/user" and isinstance(doc.get("user"), dict):
                user = doc["user"]
                name = user.get("name", "")
                if action == "create":
                    if name in meta.users:
                        return 400, {"error": "user already exists"}
                    meta.users[name] = {"name": name,
                                        "hash": hash_password(user.get("password", "")),
                                        "permissions": {}}
                    return 200, None
                if name not in meta.users:
                    return 400, {"error": "user not found"}
                if action == "add-permissions":
                    _add(meta.users[name]["permissions"], user.get("permissions", {}))
                elif action == "remove-permissions":
                    _remove(meta.users[name]["permissions"], user.get("permissions", {}))
                elif action == "change-password":
                    meta.users[name]["hash"] = hash_password(user.get("password", ""))
                elif action == "delete":
                    del meta.users[name]
                else:
                    return 400, {"error": f"unknown action {action!r}"}
                return 200, None
            if path == "/role" and isinstance(doc.get("role"), dict):
                role = doc["role"]
                name = role.get("name", "")
                if action == "create":
                    if name in meta.roles:
                        return 400, {"error": "role already exists"}
                    meta.roles[name] = {"name": name, "permissions": {}, "users": []}
                    return 200, None
                if name not in meta.roles:
                    return 400, {"error": "role not found"}
                if action == "add-permissions":
                    _add(meta.roles[name]["permissions"], role.get("permissions", {}))
                elif action == "add-users":
                    have = meta.roles[name]["users"]
                    have.extend(u for u in role.get("users", []) if u not in have)
                elif action == "remove-users":
                    meta.roles[name]["users"] = [u for u in meta.roles[name]["users"]
                                                 if u not in role.get("users", [])]
                elif action == "delete":
                    del meta.roles[name]
                else:
                    return 400, {"error": f"unknown action {action!r}"}
                return 200, None
            return 400, {"error": "invalid request"}

    return Handler
