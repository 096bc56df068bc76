"""Internal users and authentication end to end on the real daemon: the bootstrap of
seed 002, the users API, every way to present credentials, and the authorization map
proven over the whole route table."""

from __future__ import annotations

import base64
import json
import re
import socket
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from kapa_core.auth import jwt
from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

SECRET = "a-shared-secret"
# Seed 002's [auth] section (meta-* empty: users stored by kapa-core itself).
AUTH = {"enabled": True, "cache-expiration": "1h", "bcrypt-cost": 4, "meta-addr": "",
        "meta-username": "", "meta-password": "", "meta-use-tls": False, "meta-ca": "",
        "meta-cert": "", "meta-key": "", "meta-insecure-skip-verify": False}
NO_CREDENTIALS = b'{"error":"unable to parse authentication credentials"}'
WRONG_CREDENTIALS = b'{"error":"authorization failed"}'


def with_user(url: str, user: str, password: str) -> str:
    """``http://user:pass@host:port`` as given to ``kapacitor -url``."""
    return url.replace("://", f"://{user}:{password}@", 1)


def forbidden(user: str, privilege: str, path: str) -> bytes:
    message = f'user {user} does not have "{privilege}" privilege for API endpoint "{path}"'
    return json.dumps({"error": message}, separators=(",", ":")).encode()


def stored_users(data_dir: str) -> dict[str, bytes]:
    db = sqlite3.connect(str(Path(data_dir) / "kapacitor.db"))
    try:
        rows = db.execute("SELECT key, value FROM kv WHERE store = 'users'").fetchall()
    finally:
        db.close()
    return {k: bytes(v) for k, v in rows}


# -- seed 002, step by step ---------------------------------------------------------------
def test_seed_002_bootstrap_admin_then_enable_auth(tmp_path) -> None:
    data_dir = str(tmp_path / "data")
    # 1.1-1.2: [auth] enabled, [http] auth-enabled still false; start kapacitord.
    with DaemonProcess({"auth": AUTH}, data_dir=data_dir) as daemon:
        # 1.3: create the admin user through /kapacitor/v1/users.
        response = httpx.post(daemon.url + "/kapacitor/v1/users", json={
            "name": "exampleUsername", "password": "examplePassword", "type": "admin"})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "link": {"rel": "self", "href": "/kapacitor/v1/users/exampleUsername"},
            "name": "exampleUsername", "type": "admin", "permissions": []}
        # 2: stop the service.
        assert daemon.stop() == 0
    users = stored_users(data_dir)
    assert set(users) == {"exampleUsername"}
    assert b"examplePassword" not in users["exampleUsername"]
    assert json.loads(users["exampleUsername"])["hash"].startswith("$2b$04$")

    # 3-4: [http] auth-enabled = true (as KAPACITOR_HTTP_AUTH_ENABLED), restart.
    with DaemonProcess({"auth": AUTH}, data_dir=data_dir,
                       env={"KAPACITOR_HTTP_AUTH_ENABLED": "true"}) as daemon:
        tasks = daemon.url + "/kapacitor/v1/tasks"
        response = httpx.get(tasks)
        assert (response.status_code, response.content) == (401, NO_CREDENTIALS)
        assert "WWW-Authenticate" not in response.headers
        # curl -u "<username>:<password>"
        response = httpx.get(tasks, auth=("exampleUsername", "examplePassword"))
        assert (response.status_code, response.json()) == (200, {"tasks": []})
        # kapacitor -url http://<username>:<password>@localhost:9092
        admin_url = with_user(daemon.url, "exampleUsername", "examplePassword")
        assert httpx.get(admin_url + "/kapacitor/v1/ping").status_code == 204
        response = httpx.get(with_user(daemon.url, "exampleUsername", "nope") + "/kapacitor"
                             "/v1/ping")
        assert (response.status_code, response.content) == (401, WRONG_CREDENTIALS)

        # 5: the admin creates a normal user with user-specific permissions.
        response = httpx.post(admin_url + "/kapacitor/v1/users", json={
            "name": "johndoe", "password": "Pa5sw0Rd", "type": "normal",
            "permissions": ["api"]})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "link": {"rel": "self", "href": "/kapacitor/v1/users/johndoe"},
            "name": "johndoe", "type": "normal", "permissions": ["api"]}
        # curl --request GET http://localhost:9092/kapacitor/v1/tasks -u "johndoe:Pa5sw0Rd"
        response = httpx.get(tasks, auth=("johndoe", "Pa5sw0Rd"))
        assert response.status_code == 200
        response = httpx.get(daemon.url + "/kapacitor/v1/config", auth=("johndoe", "Pa5sw0Rd"))
        assert (response.status_code, response.content) == (
            403, forbidden("johndoe", "read", "/kapacitor/v1/config"))
        # The access log names the authenticated user.
        daemon.wait_for_log(r'username=johndoe .*uri=/kapacitor/v1/config .*status=403')
        log = daemon.log()
        assert "Pa5sw0Rd" not in log and "examplePassword" not in log


# -- the users API ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def open_daemon():
    """[auth] enabled, requests not authenticated: the users API alone."""
    with DaemonProcess({"auth": AUTH}) as daemon:
        yield daemon


def test_users_api_crud(open_daemon) -> None:
    base = open_daemon.url + "/kapacitor/v1/users"
    for name, perms in (("u-api", ["api"]), ("u-all", ["config_api", "api", "write_points"]),
                        ("u.none@x", ["none"]), ("ünïcode", ["write_points", "config_api"])):
        response = httpx.post(base, json={"name": name, "password": "pw",
                                          "permissions": perms})
        assert response.status_code == 200, response.text
    listed = httpx.get(base, params={"pattern": "u*"}).json()["users"]
    assert [(u["name"], u["type"], u["permissions"]) for u in listed] == [
        ("u-all", "normal", ["all"]), ("u-api", "normal", ["api"]),
        ("u.none@x", "normal", [])]
    for user in listed:
        assert set(user) == {"link", "name", "type", "permissions"}
    assert httpx.get(base, params={"pattern": "ü*"}).json()["users"][0]["permissions"] == [
        "config_api", "write_points"]
    page = httpx.get(base, params={"pattern": "u*", "offset": 1, "limit": 1}).json()
    assert [u["name"] for u in page["users"]] == ["u-api"]
    fields = httpx.get(base, params=[("pattern", "u-api"), ("fields", "type")]).json()
    assert fields == {"users": [{"link": {"rel": "self", "href": "/kapacitor/v1/users/u-api"},
                                 "name": "u-api", "type": "normal"}]}

    one = httpx.get(base + "/u-api").json()
    assert one == listed[1]
    patched = httpx.patch(base + "/u-api", json={"permissions": ["config_api"]}).json()
    assert patched["permissions"] == ["config_api"] and patched["type"] == "normal"
    patched = httpx.patch(base + "/u-api", json={"password": "new"}).json()
    assert patched["permissions"] == ["config_api"]  # unchanged when not given
    patched = httpx.patch(base + "/u-api", json={"type": "admin"}).json()
    assert (patched["type"], patched["permissions"]) == ("admin", [])
    assert httpx.delete(base + "/u-api").status_code == 204
    assert httpx.delete(base + "/u-api").status_code == 204  # not an error twice
    response = httpx.get(base + "/u-api")
    assert (response.status_code, response.json()) == (404, {"error": "no user exists"})
    response = httpx.patch(base + "/u-api", json={"password": "x"})
    assert (response.status_code, response.json()) == (404, {"error": "no user exists"})
    # no API answer ever carries a password or a hash
    everything = httpx.get(base).text
    assert "$2b$" not in everything and "pw" not in everything.replace("/kapacitor", "")


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "invalid JSON"),
    (b"[1]", 400, "invalid JSON"),
    (b'{"password": "pw"}', 400, "username is required"),
    (b'{"name": "bad name", "password": "pw"}', 400,
     "username must contain only letters, numbers, '-', '.', '@' and '_'. \"bad name\""),
    (b'{"name": "a/b", "password": "pw"}', 400,
     "username must contain only letters, numbers, '-', '.', '@' and '_'. \"a/b\""),
    (b'{"name": "..", "password": "pw"}', 400,
     "username must contain only letters, numbers, '-', '.', '@' and '_'. \"..\""),
    (b'{"name": "nopw"}', 400, "password is required"),
    (b'{"name": "x", "password": "pw", "permissions": ["root"]}', 400,
     'invalid permissions: unknown permission "root" (expected none, api, config_api, '
     'write_points or all)'),
    (b'{"name": "x", "password": "pw", "type": "superuser"}', 400,
     'invalid JSON: unknown user type "superuser" (expected "normal" or "admin")'),
])
def test_users_api_errors(open_daemon, body: bytes, status: int, message: str) -> None:
    response = httpx.post(open_daemon.url + "/kapacitor/v1/users", content=body)
    assert (response.status_code, response.json()) == (status, {"error": message})


def test_users_api_more_errors(open_daemon) -> None:
    base = open_daemon.url + "/kapacitor/v1/users"
    assert httpx.post(base, json={"name": "dup", "password": "pw"}).status_code == 200
    response = httpx.post(base, json={"name": "dup", "password": "other", "type": "admin"})
    assert (response.status_code, response.json()) == (
        400, {"error": "failed to create user: user already exists"})
    assert httpx.get(base + "/dup").json()["type"] == "normal"  # unchanged
    for params, message in (({"offset": "x"}, 'invalid offset parameter "x" must be an '
                             'integer: strconv.ParseInt: parsing "x": invalid syntax'),
                            ({"limit": "-1"}, 'invalid limit parameter "-1" must not be '
                             'negative'),
                            ({"fields": "hash"}, 'unsupported field "hash"'),
                            ({"pattern": "["}, 'invalid pattern "[": syntax error in '
                             'pattern')):
        response = httpx.get(base, params=params)
        assert (response.status_code, response.json()) == (400, {"error": message})
    response = httpx.get(base + "/")
    assert (response.status_code, response.json()) == (
        400, {"error": "must specify username on path"})


def test_users_api_absent_without_auth_section() -> None:
    with DaemonProcess() as daemon:
        response = httpx.get(daemon.url + "/kapacitor/v1/users")
        assert (response.status_code, response.json()) == (404, {"error": "Not Found"})


@pytest.mark.parametrize(("config", "message"), [
    ({"http": {"auth-enabled": True}}, "authentication needs a user backend"),
    ({"auth": {**AUTH, "bcrypt-cost": 3}}, "bcrypt-cost"),
])
def test_refuses_to_start(config: dict, message: str) -> None:
    daemon = DaemonProcess(config, ready_timeout=20)
    try:
        with pytest.raises(RuntimeError) as info:
            daemon.start()
        assert message in str(info.value)
    finally:
        daemon.close()


# -- authentication on: credentials and the whole route table -----------------------------
USERS = {  # name -> permissions
    "none": ["none"], "api": ["api"], "config": ["config_api"], "write": ["write_points"],
    "api_config": ["api", "config_api"], "api_write": ["api", "write_points"],
    "config_write": ["config_api", "write_points"],
}
PASSWORD = "s3cret-pw"

# Every route of the API and the permission it needs ("ping": any one of api,
# config_api, write_points). A route missing here fails the test: add it with the
# permission Kapacitor requires for it.
ROUTE_PERMISSIONS = {
    "/kapacitor/v1/:routes": "api",
    "/kapacitor/v1/alerts/topics": "api",
    "/kapacitor/v1/alerts/topics/{topic}": "api",
    "/kapacitor/v1/alerts/topics/{topic}/events": "api",
    "/kapacitor/v1/alerts/topics/{topic}/events/{event}": "api",
    "/kapacitor/v1/alerts/topics/{topic}/handlers": "api",
    "/kapacitor/v1/alerts/topics/{topic}/handlers/{handler}": "api",
    "/kapacitor/v1/config": "config_api",
    "/kapacitor/v1/config/{rest:path}": "config_api",
    "/kapacitor/v1/debug/vars": "api",
    # the profiles: any path but write and config needs api (without pprof-enabled)
    "/kapacitor/v1/debug/pprof/": "api",
    "/kapacitor/v1/debug/pprof/cmdline": "api",
    "/kapacitor/v1/debug/pprof/profile": "api",
    "/kapacitor/v1/debug/pprof/symbol": "api",
    "/kapacitor/v1/debug/pprof/{name}": "api",
    # a kapa-core addition: every path but write and config needs the api privilege
    "/kapacitor/v1/discovery": "api",
    "/kapacitor/v1/discovery/{service}": "api",
    "/kapacitor/v1/discovery/{service}/{id}": "api",
    "/kapacitor/v1/loglevel": "api",
    "/kapacitor/v1/logs": "api",  # only its /kapacitor/v1preview/logs form answers
    "/kapacitor/v1/ping": "ping",
    "/kapacitor/v1/replays": "api",
    "/kapacitor/v1/replays/": "api",
    "/kapacitor/v1/replays/batch": "api",
    "/kapacitor/v1/replays/query": "api",
    "/kapacitor/v1/replays/{id:path}": "api",
    "/kapacitor/v1/recordings": "api",
    "/kapacitor/v1/recordings/": "api",
    "/kapacitor/v1/recordings/batch": "api",
    "/kapacitor/v1/recordings/import": "api",
    "/kapacitor/v1/recordings/query": "api",
    "/kapacitor/v1/recordings/stream": "api",
    "/kapacitor/v1/recordings/{id:path}": "api",
    "/kapacitor/v1/service-tests": "api",
    "/kapacitor/v1/service-tests/{name}": "api",
    "/kapacitor/v1/sideload/reload": "api",
    "/kapacitor/v1/storage/backup": "api",
    "/kapacitor/v1/storage/stores": "api",
    "/kapacitor/v1/storage/stores/{store}": "api",
    "/kapacitor/v1/subscriptions": "api",
    "/kapacitor/v1/tasks": "api",
    "/kapacitor/v1/tasks/{id}": "api",
    "/kapacitor/v1/tasks/{id}/{endpoint}": "api",
    "/kapacitor/v1/templates": "api",
    "/kapacitor/v1/templates/{id}": "api",
    "/kapacitor/v1/users": "api",
    "/kapacitor/v1/users/": "api",
    "/kapacitor/v1/users/{name}": "api",
    "/kapacitor/v1/write": "write_points",
    "/write": "write_points",
    # kapa-core additions: the script check and dry run need api; the console's files
    # need nothing; /me needs any user (and without credentials says "nobody")
    "/kapacitor/v1/scripts/check": "api",
    "/kapacitor/v1/scripts/try": "api",
    "/kapacitor/v1/about": "api",
    "/kapacitor/v1/me": "me",
    "/console": "open",
    "/console/": "open",
    "/console/{name}": "open",
}
# permission -> (users holding it, users lacking it)
HOLDERS = {
    "api": (["api", "api_config", "api_write"], ["none", "config_write"]),
    "config_api": (["config", "api_config", "config_write"], ["none", "api_write"]),
    "write_points": (["write", "api_write", "config_write"], ["none", "api_config"]),
    "ping": (["api", "config", "write"], ["none"]),
    "me": (["none", "api", "config", "write"], []),
}
PRIVILEGES = {"GET": "read", "POST": "write", "PATCH": "write", "PUT": "write",
              "DELETE": "delete"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """Users created with authentication off, then the daemon restarted with it on."""
    data_dir = str(tmp_path_factory.mktemp("secured") / "data")
    with DaemonProcess({"auth": AUTH}, data_dir=data_dir) as daemon:
        base = daemon.url + "/kapacitor/v1/users"
        assert httpx.post(base, json={"name": "admin", "password": PASSWORD,
                                      "type": "admin"}).status_code == 200
        for name, perms in USERS.items():
            assert httpx.post(base, json={"name": name, "password": PASSWORD,
                                          "permissions": perms}).status_code == 200
    with DaemonProcess({"auth": AUTH, "http": {"auth-enabled": True,
                                               "shared-secret": SECRET}},
                       data_dir=data_dir) as daemon:
        yield daemon


def concrete(route: str) -> str:
    """A request path for a route pattern."""
    path = route.replace("{rest:path}", "influxdb")
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: "sample-" + m.group(1), path)


def test_every_route_and_method(secured) -> None:
    admin = httpx.Client(base_url=secured.url, auth=("admin", PASSWORD), timeout=30)
    routes = admin.get("/kapacitor/v1/:routes").json()
    missing = sorted(set(routes) - set(ROUTE_PERMISSIONS))
    assert not missing, f"routes with no expected permission: {missing}"
    assert not sorted(set(ROUTE_PERMISSIONS) - set(routes)), "table lists absent routes"

    anonymous = httpx.Client(base_url=secured.url, timeout=30)
    wrong = httpx.Client(base_url=secured.url, auth=("admin", "wrong"), timeout=30)
    clients = {name: httpx.Client(base_url=secured.url, auth=(name, PASSWORD), timeout=30)
               for name in USERS}
    checked = 0
    try:
        for route, methods in routes.items():
            path = concrete(route)
            # the CPU profile samples 30 s by default
            params = {"seconds": "0"} if path.endswith("/debug/pprof/profile") else None
            if ROUTE_PERMISSIONS[route] == "open":  # no credentials asked, none checked
                for method in methods:
                    for client in (anonymous, wrong, clients["none"]):
                        response = client.request(method, path)
                        assert response.status_code in (200, 301, 404), f"{method} {path}"
                    checked += 1
                continue
            holders, lacking = HOLDERS[ROUTE_PERMISSIONS[route]]
            for method in methods:
                where = f"{method} {path}"
                body = (lambda b: b"") if method == "HEAD" else (lambda b: b)
                response = anonymous.request(method, path, params=params)
                if ROUTE_PERMISSIONS[route] == "me":
                    assert response.json()["authenticated"] is False, where
                else:
                    assert (response.status_code, response.content) == (
                        401, body(NO_CREDENTIALS)), where
                response = wrong.request(method, path, params=params)
                assert (response.status_code, response.content) == (
                    401, body(WRONG_CREDENTIALS)), where
                for name in lacking:
                    response = clients[name].request(method, path, params=params)
                    if method == "HEAD":  # HEAD asks for no privilege
                        assert response.status_code not in (401, 403), where
                        continue
                    assert (response.status_code, response.content) == (
                        403, forbidden(name, PRIVILEGES[method], path)), f"{where} as {name}"
                for name in holders:
                    response = clients[name].request(method, path, params=params)
                    assert response.status_code not in (401, 403), \
                        f"{where} as {name}: {response.status_code} {response.text}"
                response = admin.request(method, path, params=params)
                assert response.status_code not in (401, 403), where
                checked += 1
    finally:
        for client in (admin, anonymous, wrong, *clients.values()):
            client.close()
    assert checked == sum(len(m) for m in routes.values()) >= 35


def test_unknown_paths_and_preview_paths(secured) -> None:
    response = httpx.get(secured.url + "/kapacitor/v1/nothing-here")
    assert (response.status_code, response.content) == (401, NO_CREDENTIALS)
    response = httpx.get(secured.url + "/kapacitor/v1/nothing-here", auth=("api", PASSWORD))
    assert response.status_code == 404
    response = httpx.get(secured.url + "/kapacitor/v1preview/config", auth=("api", PASSWORD))
    assert (response.status_code, response.content) == (
        403, forbidden("api", "read", "/kapacitor/v1/config"))
    assert httpx.get(secured.url + "/kapacitor/v1preview/config",
                     auth=("config", PASSWORD)).status_code == 200
    # CORS preflight is answered before authentication, as by Kapacitor
    assert httpx.options(secured.url + "/kapacitor/v1/tasks").status_code == 200


def raw_get(url: str, target: str, user: str, password: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (clients would normalize dot segments)."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic "
                     f"{token}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_dot_segments_cannot_dodge_the_map(secured) -> None:
    # /config/{rest:path} would serve this path: the api user may not reach it...
    status, body = raw_get(secured.url, "/kapacitor/v1/config/../tasks", "api", PASSWORD)
    assert (status, body) == (403, forbidden("api", "read", "/kapacitor/v1/config/../tasks"))
    # ...and the config user may not use it to reach the tasks either
    status, _ = raw_get(secured.url, "/kapacitor/v1/config/%2e%2e/tasks", "config", PASSWORD)
    assert status == 403
    status, _ = raw_get(secured.url, "/kapacitor/v1/config/../tasks", "api_config", PASSWORD)
    assert status not in (401, 403)


def test_query_parameter_credentials(secured) -> None:
    url = secured.url + "/kapacitor/v1/tasks"
    assert httpx.get(url, params={"u": "api", "p": PASSWORD}).status_code == 200
    response = httpx.get(url, params={"u": "api", "p": "nope"})
    assert (response.status_code, response.content) == (401, WRONG_CREDENTIALS)
    response = httpx.get(url, params={"u": "api"})
    assert (response.status_code, response.content) == (401, NO_CREDENTIALS)


def test_write_points_user_writes(secured) -> None:
    body = b"cpu,host=a value=1 1\n"
    for path in ("/write", "/kapacitor/v1/write"):
        response = httpx.post(secured.url + path, params={"db": "db", "rp": "rp"},
                              content=body, auth=("write", PASSWORD))
        assert response.status_code == 204, response.text
        response = httpx.post(secured.url + path, params={"db": "db", "rp": "rp"},
                              content=body, auth=("api", PASSWORD))
        assert (response.status_code, response.content) == (
            403, forbidden("api", "write", path))


def test_bearer_tokens(secured) -> None:
    url = secured.url + "/kapacitor/v1/tasks"

    def call(token: str) -> httpx.Response:
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"})

    now = int(time.time())
    assert call(jwt.encode({"username": "api", "exp": now + 60}, SECRET)).status_code == 200
    response = call(jwt.encode({"username": "config", "exp": now + 60}, SECRET))
    assert (response.status_code, response.content) == (
        403, forbidden("config", "read", "/kapacitor/v1/tasks"))
    for token, message in (
            (jwt.encode({"username": "api", "exp": now - 5}, SECRET),
             "invalid token: Token is expired"),
            (jwt.encode({"username": "api", "exp": now + 60}, "guess"),
             "invalid token: signature is invalid"),
            (jwt.encode({"username": "api"}, SECRET), "token expiration required"),
            (jwt.encode({"exp": now + 60}, SECRET), "username in token must be a string"),
            (jwt.encode({"username": "ghost", "exp": now + 60}, SECRET),
             'retrieving user "ghost" from store: no user exists')):
        response = call(token)
        assert (response.status_code, response.json()) == (401, {"error": message})
    none_alg = (jwt._b64encode(b'{"alg":"none","typ":"JWT"}') + "." +
                jwt._b64encode(json.dumps({"username": "admin", "exp": now + 60}).encode())
                + ".")
    response = call(none_alg)
    assert (response.status_code, response.json()) == (
        401, {"error": "invalid token: unexpected signing method: none"})


def test_user_changes_apply_at_once(secured) -> None:
    url = secured.url
    admin = ("admin", PASSWORD)
    users = url + "/kapacitor/v1/users"
    assert httpx.post(users, json={"name": "temp", "password": "one",
                                   "permissions": ["api"]}, auth=admin).status_code == 200
    assert httpx.get(url + "/kapacitor/v1/tasks", auth=("temp", "one")).status_code == 200
    # password change: the cached old password stops working immediately
    assert httpx.patch(users + "/temp", json={"password": "two"}, auth=admin).status_code == 200
    assert httpx.get(url + "/kapacitor/v1/tasks", auth=("temp", "one")).status_code == 401
    assert httpx.get(url + "/kapacitor/v1/tasks", auth=("temp", "two")).status_code == 200
    # permission change
    assert httpx.patch(users + "/temp", json={"permissions": ["config_api"]},
                       auth=admin).status_code == 200
    assert httpx.get(url + "/kapacitor/v1/tasks", auth=("temp", "two")).status_code == 403
    assert httpx.get(url + "/kapacitor/v1/config", auth=("temp", "two")).status_code == 200
    # deletion
    assert httpx.delete(users + "/temp", auth=admin).status_code == 204
    assert httpx.get(url + "/kapacitor/v1/config", auth=("temp", "two")).status_code == 401
    # a user without admin rights but with "api" manages users too, as in Kapacitor
    assert httpx.get(users, auth=("api", PASSWORD)).status_code == 200
    assert httpx.get(users, auth=("config", PASSWORD)).status_code == 403
