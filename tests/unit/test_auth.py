"""Authentication pieces without sockets: the permission map, credential parsing, the
login cache, the internal-users authenticator and the middleware's answers."""

from __future__ import annotations

import base64
import json
import time

import bcrypt
import pytest

from kapa_core.auth import jwt
from kapa_core.auth.cache import CredentialCache
from kapa_core.auth.credentials import (
    BEARER,
    SUBSCRIPTION,
    USER,
    CredentialsError,
    parse_credentials,
)
from kapa_core.auth.internal import InternalAuthenticator
from kapa_core.auth.permissions import authorize, clean_path, required_permissions
from kapa_core.auth.principal import Principal
from kapa_core.auth.users import UserStore, parse_permissions, permission_names
from kapa_core.errors import APIError
from kapa_core.http.auth_middleware import AuthMiddleware, error_response
from kapa_core.http.messages import Request, Response
from kapa_core.storage import USERS, Store


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(method: str = "GET", path: str = "/kapacitor/v1/tasks", *,
            headers: list[tuple[str, str]] | None = None,
            query: dict[str, list[str]] | None = None) -> Request:
    return Request(method=method, path=path, headers=headers or [], query=query or {},
                   client=("127.0.0.1", 5000), request_id="rid")


# -- the permission map -------------------------------------------------------------
@pytest.mark.parametrize(("path", "needed"), [
    ("/kapacitor/v1/tasks", [("api",)]),
    ("/kapacitor/v1/users/bob", [("api",)]),
    ("/kapacitor/v1/:routes", [("api",)]),
    ("/kapacitor/v1/config", [("config_api",)]),
    ("/kapacitor/v1/config/smtp/", [("config_api",)]),
    ("/kapacitor/v1preview/config", [("config_api",)]),
    ("/kapacitor/v1/configuration", [("api",)]),  # a segment, not a prefix
    ("/kapacitor/v1/write", [("write_points",)]),
    ("/write", [("write_points",)]),
    ("/kapacitor/v1/ping", [("api", "config_api", "write_points")]),
    ("/nothing/here", [("api",)]),
    # unclean paths must satisfy both spellings
    ("/kapacitor/v1/config/../tasks", [("api",), ("config_api",)]),
    ("/kapacitor/v1/tasks/../config", [("config_api",), ("api",)]),
    ("/kapacitor/v1//config", [("config_api",)]),
])
def test_required_permissions(path: str, needed: list[tuple[str, ...]]) -> None:
    assert required_permissions(path) == needed


def test_clean_path() -> None:
    assert clean_path("/a/./b/../../c//d/") == "/c/d"
    assert clean_path("/../..") == "/"


def test_authorize_messages_and_methods() -> None:
    bob = Principal("bob", permissions=frozenset({"config_api"}))
    assert authorize(bob, "GET", "/kapacitor/v1/config") is None
    assert authorize(bob, "HEAD", "/kapacitor/v1/tasks") is None  # no privilege needed
    assert authorize(bob, "GET", "/kapacitor/v1/tasks") == (
        'user bob does not have "read" privilege for API endpoint "/kapacitor/v1/tasks"')
    assert authorize(bob, "PUT", "/kapacitor/v1/tasks") == (
        'user bob does not have "write" privilege for API endpoint "/kapacitor/v1/tasks"')
    assert authorize(bob, "DELETE", "/kapacitor/v1preview/tasks/x") == (
        'user bob does not have "delete" privilege for API endpoint '
        '"/kapacitor/v1/tasks/x"')
    assert authorize(bob, "GET", "/kapacitor/v1/config/../tasks") is not None
    assert authorize(bob, "TRACE", "/kapacitor/v1/config") == 'unknown method "TRACE"'
    assert authorize(Principal("root", admin=True), "DELETE", "/anything") is None
    everything = Principal("al", permissions=frozenset({"all"}))
    assert authorize(everything, "POST", "/write") is None


def test_permission_names_round_trip() -> None:
    assert parse_permissions(["all"]) == {"api", "config_api", "write_points"}
    assert permission_names(parse_permissions(["all"])) == ["all"]
    assert permission_names(parse_permissions(["write_points", "api"])) == [
        "api", "write_points"]
    assert permission_names(parse_permissions(["none"])) == []
    with pytest.raises(APIError, match="unknown permission"):
        parse_permissions(["root"])


# -- credentials ------------------------------------------------------------------------
def test_credentials_forms() -> None:
    creds = parse_credentials(request(headers=[("authorization", basic("bob", "p:w"))]))
    assert (creds.method, creds.username, creds.password) == (USER, "bob", "p:w")
    creds = parse_credentials(request(headers=[("authorization", "Bearer abc.def.ghi")]))
    assert (creds.method, creds.token) == (BEARER, "abc.def.ghi")
    creds = parse_credentials(request(headers=[("authorization",
                                                basic("~subscriber", "tok"))]))
    assert (creds.method, creds.token) == (SUBSCRIPTION, "tok")
    creds = parse_credentials(request(query={"u": ["q"], "p": ["pw"]}))
    assert (creds.method, creds.username, creds.password) == (USER, "q", "pw")
    assert "pw" not in repr(creds)
    # an unusable header falls back to the query parameters
    creds = parse_credentials(request(headers=[("authorization", "Digest x")],
                                      query={"u": ["q"], "p": ["pw"]}))
    assert creds.username == "q"


@pytest.mark.parametrize(("headers", "query"), [
    ([], {}),
    ([], {"u": ["bob"]}),
    ([], {"u": ["bob"], "p": [""]}),
    ([("authorization", "Basic !!notbase64")], {}),
    ([("authorization", "Basic " + base64.b64encode(b"nocolon").decode())], {}),
    ([("authorization", "bearer lowercase-scheme")], {}),
    ([("authorization", "Bearer two parts")], {}),
])
def test_unparsable_credentials(headers, query) -> None:
    with pytest.raises(CredentialsError, match="unable to parse authentication credentials"):
        parse_credentials(request(headers=headers, query=query))


# -- the login cache --------------------------------------------------------------------
def test_cache_expiry_and_mismatch() -> None:
    now = [100.0]
    cache = CredentialCache(60, clock=lambda: now[0])
    bob = Principal("bob")
    cache.put("bob", "pw", bob)
    assert cache.check("bob", "pw") is bob
    assert cache.check("bob", "other") is None
    assert cache.check("alice", "pw") is None
    now[0] += 59.9
    assert cache.check("bob", "pw") is bob
    now[0] += 0.2
    assert cache.check("bob", "pw") is None
    assert len(cache) == 0
    cache.put("bob", "pw", bob)
    cache.forget("bob")
    assert cache.check("bob", "pw") is None
    disabled = CredentialCache(0)
    disabled.put("bob", "pw", bob)
    assert disabled.check("bob", "pw") is None


def test_cache_keeps_no_password() -> None:
    cache = CredentialCache(60)
    cache.put("bob", "hunter2-secret", Principal("bob"))
    assert "hunter2-secret" not in repr(cache._entries)


# -- the internal-users authenticator ---------------------------------------------------
@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "kapacitor.db"))
    yield s
    s.close()


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)
    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


async def test_passwords_are_stored_as_bcrypt_hashes(store) -> None:
    users = UserStore(store, bcrypt_cost=4)
    await users.create("bob", "correct horse", False, frozenset({"api"}))
    raw = store.get(USERS, "bob")
    assert b"correct horse" not in raw
    stored = json.loads(raw)
    assert stored["hash"].startswith("$2b$04$")
    assert bcrypt.checkpw(b"correct horse", stored["hash"].encode())


async def test_authenticator_caches_successful_checks(store, bcrypt_calls) -> None:
    users = UserStore(store, bcrypt_cost=4)
    await users.create("bob", "pw", False, frozenset({"api"}))
    auth = InternalAuthenticator(users, cache_ttl=60)
    now = [0.0]
    auth.cache.clock = lambda: now[0]

    principal = await auth.authenticate("bob", "pw")
    assert principal == Principal("bob", False, frozenset({"api"}))
    assert len(bcrypt_calls) == 1
    for _ in range(5):
        assert await auth.authenticate("bob", "pw") == principal
    assert len(bcrypt_calls) == 1  # served from the cache

    assert await auth.authenticate("bob", "wrong") is None  # a mismatch runs bcrypt
    assert len(bcrypt_calls) == 2
    assert await auth.authenticate("bob", "pw") == principal
    assert len(bcrypt_calls) == 3  # the failed attempt dropped the entry

    now[0] += 61
    assert await auth.authenticate("bob", "pw") == principal
    assert len(bcrypt_calls) == 4  # expired: checked again


async def test_changes_invalidate_the_cache(store) -> None:
    users = UserStore(store, bcrypt_cost=4)
    await users.create("bob", "pw", False, frozenset({"api"}))
    auth = InternalAuthenticator(users, cache_ttl=3600)
    assert (await auth.authenticate("bob", "pw")).permissions == {"api"}
    await users.update("bob", permissions=frozenset({"config_api"}))
    assert (await auth.authenticate("bob", "pw")).permissions == {"config_api"}
    await users.update("bob", password="new")
    assert await auth.authenticate("bob", "pw") is None
    assert await auth.authenticate("bob", "new") is not None
    await users.delete("bob")
    assert await auth.authenticate("bob", "new") is None
    assert await auth.lookup("bob") is None


async def test_unknown_user_costs_a_bcrypt_check(store, bcrypt_calls) -> None:
    users = UserStore(store, bcrypt_cost=4)
    auth = InternalAuthenticator(users)
    assert await auth.authenticate("ghost", "pw") is None
    assert len(bcrypt_calls) == 1


async def test_overlong_passwords(store) -> None:
    users = UserStore(store, bcrypt_cost=4)
    with pytest.raises(APIError, match="at most 72 bytes"):
        await users.create("bob", "x" * 73, False, frozenset())
    await users.create("bob", "x" * 72, False, frozenset())
    auth = InternalAuthenticator(users)
    assert await auth.authenticate("bob", "x" * 72) is not None
    assert await auth.authenticate("bob", "x" * 73) is None


async def test_list_patterns(store) -> None:
    users = UserStore(store, bcrypt_cost=4)
    for name in ("alice", "bob", "bobby", "carol"):
        await users.create(name, "pw", False, frozenset())
    assert [u.name for u in await users.list()] == ["alice", "bob", "bobby", "carol"]
    assert [u.name for u in await users.list("bob*")] == ["bob", "bobby"]
    assert [u.name for u in await users.list("?o?")] == ["bob"]
    assert [u.name for u in await users.list("[ac]*")] == ["alice", "carol"]
    assert [u.name for u in await users.list("[^ac]*")] == ["bob", "bobby"]
    assert [u.name for u in await users.list("", 1, 2)] == ["bob", "bobby"]
    with pytest.raises(ValueError, match="syntax error in pattern"):
        await users.list("[")


# -- the middleware -----------------------------------------------------------------------
class StaticAuthenticator:
    """Knows fixed users; counts calls."""

    def __init__(self, users: dict[str, tuple[str, Principal]]) -> None:
        self.users = users
        self.calls = 0

    async def authenticate(self, username: str, password: str) -> Principal | None:
        self.calls += 1
        known = self.users.get(username)
        return known[1] if known and known[0] == password else None

    async def lookup(self, username: str) -> Principal | None:
        known = self.users.get(username)
        return known[1] if known else None


class Broken:
    async def authenticate(self, username: str, password: str) -> Principal | None:
        raise RuntimeError("backend down")


async def reached(_request: Request) -> Response:
    return Response.empty(204)


BOB = Principal("bob", permissions=frozenset({"api"}))


def body(response: Response) -> dict:
    return json.loads(response.body)


async def test_middleware_answers() -> None:
    first = StaticAuthenticator({})
    second = StaticAuthenticator({"bob": ("pw", BOB)})
    mw = AuthMiddleware([Broken(), first, second], shared_secret="k")

    response = await mw(request(), reached)
    assert (response.status, response.body) == (
        401, b'{"error":"unable to parse authentication credentials"}')
    assert response.header("www-authenticate") is None  # Kapacitor sends none

    response = await mw(request(headers=[("authorization", basic("", "pw"))]), reached)
    assert (response.status, body(response)) == (401, {"error": "username required"})

    response = await mw(request(headers=[("authorization", basic("bob", "no"))]), reached)
    assert (response.status, body(response)) == (401, {"error": "authorization failed"})

    ok = request(headers=[("authorization", basic("bob", "pw"))])
    assert (await mw(ok, reached)).status == 204
    assert ok.context["username"] == "bob" and ok.context["principal"] is BOB
    assert first.calls == 2 and second.calls == 2  # asked in order, past a broken one

    denied = await mw(request(path="/kapacitor/v1/config", headers=[
        ("authorization", basic("bob", "pw"))]), reached)
    assert denied.status == 403
    assert denied.body == (b'{"error":"user bob does not have \\"read\\" privilege for API '
                           b'endpoint \\"/kapacitor/v1/config\\""}')
    assert mw.failures == 3

    response = await mw(request(headers=[("authorization", basic("~subscriber", "t"))]),
                        reached)
    assert (response.status, body(response)) == (401, {"error": "invalid subscription token"})

    response = await mw(request("TRACE"), reached)
    assert response.status == 404


async def test_middleware_bearer_tokens() -> None:
    mw = AuthMiddleware([StaticAuthenticator({"bob": ("pw", BOB)})], shared_secret="k")
    now = int(time.time())

    def bearer(token: str) -> Request:
        return request(headers=[("authorization", "Bearer " + token)])

    assert (await mw(bearer(jwt.encode({"username": "bob", "exp": now + 60}, "k")),
                     reached)).status == 204
    cases = [
        (jwt.encode({"username": "bob", "exp": now - 60}, "k"),
         "invalid token: Token is expired"),
        (jwt.encode({"username": "bob", "exp": now + 60}, "wrong"),
         "invalid token: signature is invalid"),
        (jwt.encode({"username": "bob"}, "k"), "token expiration required"),
        (jwt.encode({"exp": now + 60}, "k"), "username in token must be a string"),
        (jwt.encode({"username": "", "exp": now + 60}, "k"), "token must contain a username"),
        (jwt.encode({"username": "eve", "exp": now + 60}, "k"),
         'retrieving user "eve" from store: no user exists'),
        ("garbage", "invalid token: token contains an invalid number of segments"),
    ]
    for token, message in cases:
        response = await mw(bearer(token), reached)
        assert (response.status, body(response)) == (401, {"error": message}), message

    without_secret = AuthMiddleware([StaticAuthenticator({"bob": ("pw", BOB)})])
    response = await without_secret(bearer(jwt.encode({"username": "bob", "exp": now + 60},
                                                       "")), reached)
    assert response.status == 401
    assert body(response)["error"].startswith("invalid token: bearer tokens are not accepted")


async def test_pprof_bypass_only_when_enabled() -> None:
    closed = AuthMiddleware([StaticAuthenticator({})])
    opened = AuthMiddleware([StaticAuthenticator({})], pprof_enabled=True)
    for path in ("/kapacitor/v1/debug/vars", "/kapacitor/v1/debug/pprof/heap"):
        assert (await closed(request(path=path), reached)).status == 401
        assert (await opened(request(path=path), reached)).status == 204
    assert (await opened(request(path="/kapacitor/v1/debug/varsx"), reached)).status == 401
    assert (await opened(request("POST", "/kapacitor/v1/debug/vars"), reached)).status == 401
    assert (await opened(request(path="/kapacitor/v1/tasks"), reached)).status == 401


def test_error_bodies_escape_like_go() -> None:
    assert error_response(401, "a<b>&c").body == b'{"error":"a\\u003cb\\u003e\\u0026c"}'
