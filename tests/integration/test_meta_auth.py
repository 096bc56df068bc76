"""Authenticating against InfluxDB Enterprise users (seed 004) through a local meta API.

The meta node is ``fake_meta.FakeMeta``; the users and roles are made with the meta-API
requests the seed shows (``POST /user``, ``POST /role``), then ``MetaAuthenticator`` is
asked about them the way the HTTP layer does for each request's basic-auth credentials.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trio

from kapa_core.auth import jwt
from kapa_core.auth.meta import MetaAuthenticator, kapacitor_permissions
from kapa_core.auth.meta_client import MetaConnection
from kapa_core.auth.principal import Principal
from kapa_core.config.core_sections import CORE_SECTIONS, AuthConfig
from kapa_core.config.loader import ConfigLayers
from kapa_core.errors import ConfigError
from kapa_core.logs import ROOT, stream_handler
from kapa_core.testing import DaemonProcess
from tests.integration.fake_meta import FakeMeta
from tests.integration.influxd import free_port

pytestmark = pytest.mark.integration

ALL_ENTERPRISE = ["ViewAdmin", "ViewChronograf", "CreateDatabase", "CreateUserAndRole",
                  "AddRemoveNode", "DropDatabase", "DropData", "ReadData", "WriteData",
                  "Rebalance", "ManageShard", "ManageContinuousQuery", "ManageQuery",
                  "ManageSubscription", "Monitor", "CopyShard", "KapacitorAPI",
                  "KapacitorConfigAPI"]


# -- helpers ---------------------------------------------------------------------------

def auth_section(toml_text: str, environ: dict[str, str] | None = None) -> AuthConfig:
    """[auth] as the daemon reads it from kapacitor.conf and KAPACITOR_* variables."""
    layers = ConfigLayers([s for s in CORE_SECTIONS if s.name == "auth"])
    layers.load(tomllib.loads(toml_text), environ or {})
    return layers.build_section(layers.effective_raw(), "auth")


def config(addr: str, **keys: object) -> AuthConfig:
    values: dict[str, object] = {"enabled": True, "meta_addr": addr,
                                 "meta_username": "admin", "meta_password": "changeit"}
    values.update(keys)
    return AuthConfig(**values)  # type: ignore[arg-type]


async def meta_post(meta: FakeMeta, path: str, body: dict, user: tuple[str, str] =
                    ("admin", "changeit")) -> httpx.Response:
    """``curl --request POST <meta>/<path> --user u:p --data '<json>'``"""
    def post() -> httpx.Response:
        return httpx.post(meta.url + path, auth=user, content=json.dumps(body),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = await trio.to_thread.run_sync(post)
    assert response.status_code == 200, response.text
    return response


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logs() -> Iterator[Callable[[], str]]:
    """Everything kapa-core logged during the test, as logfmt text."""
    buffer = io.StringIO()
    handler = stream_handler(buffer)
    logger = logging.getLogger(ROOT)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield buffer.getvalue
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def meta() -> Iterator[FakeMeta]:
    with FakeMeta() as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate signed by it."""
    d = tmp_path_factory.mktemp("meta-pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=meta ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    (d / "server.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    (d / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=kapacitor")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout",
            f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.pem")
    return {k: str(d / f) for k, f in (("ca", "ca.pem"), ("cert", "server.pem"),
                                       ("key", "server.key"), ("client_cert", "client.pem"),
                                       ("client_key", "client.key"))}


# -- the seed, step by step -------------------------------------------------------------

async def test_seed_user_with_kapacitor_permissions(meta: FakeMeta) -> None:
    # Create a new InfluxDB Enterprise user
    await meta_post(meta, "/user", {"action": "create",
                                    "user": {"name": "johndoe", "password": "pa5sw0Rd"}})
    # Grant Kapacitor permissions to the new user
    await meta_post(meta, "/user", {"action": "add-permissions", "user": {
        "name": "johndoe", "permissions": {"": ["KapacitorAPI", "KapacitorConfigAPI"]}}})
    # Enable and configure Kapacitor authentication (the seed's meta-addr has a leading
    # space; its TLS keys come later, in the HTTPS tests)
    auth = auth_section(f"""
[auth]
  enabled = true
  cache-expiration = "1h"
  bcrypt-cost = 4
  meta-addr = " {meta.addr}"
  meta-username = "admin"
  meta-password = "changeit"
  meta-use-tls = false
""")
    authenticator = MetaAuthenticator(auth)
    # Authenticate with the Kapacitor API: -u "johndoe:pa5sw0Rd"
    principal = await authenticator.authenticate("johndoe", "pa5sw0Rd")
    assert principal == Principal("johndoe", False, frozenset({"api", "config_api"}))
    user_lookups = [q for m, p, q, _s in meta.requests if (m, p) == ("GET", "/user")]
    assert user_lookups == [{"name": ["johndoe"]}]
    assert await authenticator.authenticate("johndoe", "wrong") is None
    assert await authenticator.authenticate("janedoe", "pa5sw0Rd") is None
    assert meta.count("GET", "/user", status=404) == 1


async def test_seed_role_with_kapacitor_permissions(meta: FakeMeta) -> None:
    await meta_post(meta, "/role", {"action": "create", "role": {"name": "kapacitor"}})
    await meta_post(meta, "/role", {"action": "add-permissions", "role": {
        "name": "kapacitor", "permissions": {"": ["KapacitorAPI", "KapacitorConfigAPI"]}}})
    await meta_post(meta, "/user", {"action": "create",
                                    "user": {"name": "johndoe", "password": "pa5sw0Rd"}})
    clock = Clock()
    authenticator = MetaAuthenticator(config(meta.addr), clock=clock)
    # Before being assigned to the role the user has no Kapacitor permission.
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == Principal("johndoe")
    # Assign a user to the new role
    await meta_post(meta, "/role", {"action": "add-users",
                                    "role": {"name": "kapacitor", "users": ["johndoe"]}})
    clock.now += 601  # the default cache-expiration is 10m
    principal = await authenticator.authenticate("johndoe", "pa5sw0Rd")
    assert principal == Principal("johndoe", False, frozenset({"api", "config_api"}))


async def test_environment_variables_configure_the_meta_api(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    auth = auth_section("", {
        "KAPACITOR_AUTH_ENABLED": "true", "KAPACITOR_AUTH_CACHE_EXPIRATION": "1h",
        "KAPACITOR_AUTH_BCRYPT_COST": "4", "KAPACITOR_AUTH_META_ADDR": meta.addr,
        "KAPACITOR_AUTH_META_USERNAME": "admin", "KAPACITOR_AUTH_META_PASSWORD": "changeit",
        "KAPACITOR_AUTH_META_USE_TLS": "false",
        "KAPACITOR_AUTH_META_INSECURE_SKIP_VERIFY": "false"})
    assert (auth.meta_addr, auth.cache_expiration) == (meta.addr, 3600 * 10**9)
    principal = await MetaAuthenticator(auth).authenticate("johndoe", "pa5sw0Rd")
    assert principal == Principal("johndoe", False, frozenset({"api"}))


# -- permissions -------------------------------------------------------------------------

@pytest.mark.parametrize(("scoped", "expected"), [
    ({"": ["KapacitorAPI"]}, {"api"}),
    ({"": ["KapacitorConfigAPI"]}, {"config_api"}),
    ({"telegraf": ["KapacitorAPI"]}, {"api"}),  # Kapacitor ignores the scope of these
    ({"": ["WriteData"]}, {"write_points"}),
    ({"": ["9"]}, {"write_points"}),
    ({"telegraf": ["WriteData"]}, set()),  # one database only: not expressible, not granted
    ({"": ["ReadData", "ViewAdmin", "CreateUserAndRole"]}, set()),
    ({"": ALL_ENTERPRISE}, {"api", "config_api", "write_points"}),
    ({}, set()),
])
def test_enterprise_permissions_map_to_kapacitor(scoped: dict, expected: set) -> None:
    assert kapacitor_permissions(scoped) == frozenset(expected)


async def test_users_of_the_seed_examples(meta: FakeMeta) -> None:
    meta.add_user("tasks", "pw-tasks", {"": ["KapacitorAPI"]})
    meta.add_user("configurer", "pw-config", {"": ["KapacitorConfigAPI"]})
    meta.add_user("admin2", "pw-admin", {"": ALL_ENTERPRISE})
    meta.add_user("reader", "pw-reader", {"telegraf": ["ReadData", "WriteData"]})
    authenticator = MetaAuthenticator(config(meta.addr))
    tasks = await authenticator.authenticate("tasks", "pw-tasks")
    assert tasks is not None
    assert tasks.allows("api") and not tasks.allows("config_api")
    configurer = await authenticator.authenticate("configurer", "pw-config")
    assert configurer is not None
    assert configurer.allows("config_api") and not configurer.allows("api")
    # An Enterprise admin gets every Kapacitor permission but is no Kapacitor admin.
    chief = await authenticator.authenticate("admin2", "pw-admin")
    assert chief == Principal("admin2", False, frozenset({"api", "config_api",
                                                          "write_points"}))
    # Known, right password, no Kapacitor permission: authenticated, allowed nothing
    # (the authorization check then answers 403 with the seed's message).
    reader = await authenticator.authenticate("reader", "pw-reader")
    assert reader == Principal("reader")
    assert not any(reader.allows(p) for p in ("api", "config_api", "write_points"))


# -- the cache ---------------------------------------------------------------------------

async def test_user_details_are_cached_for_cache_expiration(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    clock = Clock()
    authenticator = MetaAuthenticator(config(meta.addr, cache_expiration=3600 * 10**9),
                                      clock=clock)
    expected = Principal("johndoe", False, frozenset({"api"}))
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected
    assert (meta.count("GET", "/user"), meta.count("GET", "/role")) == (1, 1)
    clock.now += 3599
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected
    assert (meta.count("GET", "/user"), meta.count("GET", "/role")) == (1, 1)
    clock.now += 2  # past the expiration: asked again, once
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected
    assert (meta.count("GET", "/user"), meta.count("GET", "/role")) == (2, 2)
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected
    assert meta.count("GET", "/user") == 2


async def test_zero_cache_expiration_asks_every_time(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    authenticator = MetaAuthenticator(config(meta.addr, cache_expiration=0))
    for _ in range(3):
        assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is not None
    assert meta.count("GET", "/user") == 3


async def test_permission_changes_apply_after_expiration(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    clock = Clock()
    authenticator = MetaAuthenticator(config(meta.addr, cache_expiration=60 * 10**9),
                                      clock=clock)
    assert (await authenticator.authenticate("johndoe", "pa5sw0Rd")).permissions == {"api"}
    await meta_post(meta, "/user", {"action": "remove-permissions", "user": {
        "name": "johndoe", "permissions": {"": ["KapacitorAPI"]}}})
    assert (await authenticator.authenticate("johndoe", "pa5sw0Rd")).permissions == {"api"}
    clock.now += 61
    assert (await authenticator.authenticate("johndoe", "pa5sw0Rd")).permissions == set()


async def test_other_password_for_cached_user_asks_the_meta_api(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    authenticator = MetaAuthenticator(config(meta.addr))
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is not None
    assert await authenticator.authenticate("johndoe", "guess") is None
    assert meta.count("GET", "/user") == 2
    # A password changed in Enterprise works at once; the old one no longer does.
    await meta_post(meta, "/user", {"action": "change-password",
                                    "user": {"name": "johndoe", "password": "n3w-Pass"}})
    assert await authenticator.authenticate("johndoe", "n3w-Pass") is not None
    assert meta.count("GET", "/user") == 3
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is None
    assert await authenticator.authenticate("johndoe", "n3w-Pass") is not None
    assert meta.count("GET", "/user") == 5  # the wrong one dropped the cache entry


async def test_concurrent_requests_for_one_user_make_one_lookup(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    authenticator = MetaAuthenticator(config(meta.addr))
    results: list[Principal | None] = []

    async def one() -> None:
        results.append(await authenticator.authenticate("johndoe", "pa5sw0Rd"))

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(one)
    assert len(results) == 6 and all(r is not None for r in results)
    assert meta.count("GET", "/user") == 1


async def test_users_without_hash_are_checked_by_the_meta_api(meta: FakeMeta) -> None:
    meta.add_ldap_user("ldapuser", "from-ldap", {"": ["KapacitorAPI"]})
    authenticator = MetaAuthenticator(config(meta.addr))
    assert await authenticator.authenticate("ldapuser", "from-ldap") == Principal(
        "ldapuser", False, frozenset({"api"}))
    assert meta.count("GET", "/authorized", status=200) == 1
    assert await authenticator.authenticate("ldapuser", "from-ldap") is not None
    assert meta.count("GET", "/authorized") == 1  # cached
    assert await authenticator.authenticate("ldapuser", "nope") is None
    assert meta.count("GET", "/authorized", status=401) == 1


async def test_unreadable_roles_use_own_permissions_uncached(meta: FakeMeta, logs) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorConfigAPI"]})
    meta.forbidden.add("/role")
    authenticator = MetaAuthenticator(config(meta.addr))
    expected = Principal("johndoe", False, frozenset({"config_api"}))
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected
    assert meta.count("GET", "/user") == 2
    assert "cannot read InfluxDB Enterprise roles" in logs()


# -- credentials for the meta API -------------------------------------------------------

async def test_wrong_meta_credentials_are_logged(meta: FakeMeta, logs) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    started = time.monotonic()
    wrong = MetaAuthenticator(config(meta.addr, meta_password="nope"))
    assert await wrong.authenticate("johndoe", "pa5sw0Rd") is None
    # A refusal is not retried (transient failures are, for the 10 s timeout).
    assert time.monotonic() - started < 5
    assert meta.count("GET", "/user", status=401) == 1
    text = logs()
    assert "lvl=error" in text and "refused Kapacitor's credentials" in text
    assert "check [auth] meta-username and meta-password" in text
    assert "nope" not in text and "pa5sw0Rd" not in text
    none = MetaAuthenticator(config(meta.addr, meta_username="", meta_password=""))
    assert await none.authenticate("johndoe", "pa5sw0Rd") is None
    assert "set [auth] meta-username and meta-password" in logs()


async def test_internal_shared_secret_signs_a_token(logs) -> None:
    with FakeMeta(admin=("nobody", "unguessable"), secret="s3cret") as meta:
        meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
        # The secret wins over meta-username/meta-password (which are wrong here).
        ok = MetaAuthenticator(config(meta.addr, meta_internal_shared_secret="s3cret"))
        assert await ok.authenticate("johndoe", "pa5sw0Rd") == Principal(
            "johndoe", False, frozenset({"api"}))
        bad = MetaAuthenticator(config(meta.addr, meta_internal_shared_secret="other"))
        assert await bad.authenticate("johndoe", "pa5sw0Rd") is None
        assert "check [auth] meta-internal-shared-secret" in logs()


async def test_follower_redirect_to_the_lead_node(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    with FakeMeta(redirect_to=meta.url) as follower:
        authenticator = MetaAuthenticator(config(follower.addr))
        assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is not None
        assert follower.count("GET", "/user", status=307) == 1
    assert [q for m, p, q, _s in meta.requests if p == "/user"] == [{"name": ["johndoe"]}]


async def test_unreachable_meta_node_fails_after_timeout(logs) -> None:
    authenticator = MetaAuthenticator(config(f"127.0.0.1:{free_port()}"), timeout=0.5)
    started = time.monotonic()
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is None
    assert time.monotonic() - started < 5  # its 0.5 s, not the default 10 s
    assert "cannot connect to http://127.0.0.1:" in logs()


# -- TLS -----------------------------------------------------------------------------------

async def test_https_with_meta_ca(pki: dict[str, str]) -> None:
    with FakeMeta(certfile=pki["cert"], keyfile=pki["key"]) as meta:
        meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
        auth = auth_section(f"""
[auth]
  enabled = true
  meta-addr = "{meta.addr}"
  meta-username = "admin"
  meta-password = "changeit"
  meta-use-tls = true
  meta-ca = "{pki['ca']}"
  meta-insecure-skip-verify = false
""")
        principal = await MetaAuthenticator(auth).authenticate("johndoe", "pa5sw0Rd")
        assert principal == Principal("johndoe", False, frozenset({"api"}))


async def test_https_insecure_skip_verify(pki: dict[str, str]) -> None:
    with FakeMeta(certfile=pki["cert"], keyfile=pki["key"]) as meta:
        meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
        authenticator = MetaAuthenticator(config(meta.addr, meta_use_tls=True,
                                                 meta_insecure_skip_verify=True))
        assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is not None


async def test_https_untrusted_certificate_is_a_clear_error(pki: dict[str, str],
                                                             logs) -> None:
    with FakeMeta(certfile=pki["cert"], keyfile=pki["key"]) as meta:
        meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
        authenticator = MetaAuthenticator(config(meta.addr, meta_use_tls=True))
        started = time.monotonic()
        assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is None
        assert time.monotonic() - started < 5  # not retried for the 10 s timeout
        assert meta.count("GET", "/user") == 0
    text = logs()
    assert f"TLS certificate verification failed for https://{meta.addr}/user" in text
    assert "set [auth] meta-ca to the CA that signed the meta node's certificate" in text


async def test_tls_to_a_plain_http_meta_node_is_explained(meta: FakeMeta, logs) -> None:
    authenticator = MetaAuthenticator(config(meta.addr, meta_use_tls=True))
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") is None
    assert "check [auth] meta-use-tls" in logs()


async def test_client_certificate(pki: dict[str, str], logs) -> None:
    with FakeMeta(certfile=pki["cert"], keyfile=pki["key"], client_ca=pki["ca"]) as meta:
        meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
        with_cert = MetaAuthenticator(config(meta.addr, meta_use_tls=True, meta_ca=pki["ca"],
                                             meta_cert=pki["client_cert"],
                                             meta_key=pki["client_key"]))
        assert await with_cert.authenticate("johndoe", "pa5sw0Rd") is not None
        without = MetaAuthenticator(config(meta.addr, meta_use_tls=True, meta_ca=pki["ca"]),
                                    timeout=1)
        assert await without.authenticate("johndoe", "pa5sw0Rd") is None
        assert meta.count("GET", "/user") == 1
    assert "check [auth] meta-cert and meta-key" in logs()


def test_bad_tls_keys_stop_startup(tmp_path: Path, pki: dict[str, str]) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"^auth\.meta-ca: cannot load"):
        MetaAuthenticator(config("meta:8091", meta_use_tls=True, meta_ca=missing))
    with pytest.raises(ConfigError, match=r"^auth\.meta-key: set meta-cert too"):
        MetaAuthenticator(config("meta:8091", meta_use_tls=True, meta_key=pki["client_key"]))
    with pytest.raises(ConfigError, match=r"^auth\.meta-cert: cannot load"):
        MetaAuthenticator(config("meta:8091", meta_use_tls=True, meta_cert=missing))
    with pytest.raises(ConfigError, match=r"^auth\.meta-addr: invalid address"):
        MetaAuthenticator(config("ftp://meta:8091"))


def test_meta_addr_forms() -> None:
    def base(addr: str, tls: bool = False) -> str:
        return MetaConnection.from_config(config(addr, meta_use_tls=tls,
                                                 meta_insecure_skip_verify=tls)).base_url
    assert base(" 172.17.0.2:8091") == "http://172.17.0.2:8091"
    assert base("172.17.0.2:8091", tls=True) == "https://172.17.0.2:8091"
    assert base("https://meta.example:8091/") == "https://meta.example:8091"


# -- bearer tokens name a meta user ------------------------------------------------------

async def test_lookup_for_bearer_tokens_needs_no_password(meta: FakeMeta) -> None:
    meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI"]})
    authenticator = MetaAuthenticator(config(meta.addr))
    expected = Principal("johndoe", False, frozenset({"api"}))
    assert await authenticator.lookup("johndoe") == expected
    assert await authenticator.lookup("janedoe") is None
    assert await authenticator.lookup("johndoe") == expected
    assert meta.count("GET", "/user") == 2  # johndoe once (cached), janedoe once
    # The cached user document still checks passwords.
    assert await authenticator.authenticate("johndoe", "wrong") is None
    assert await authenticator.authenticate("johndoe", "pa5sw0Rd") == expected


# -- through the daemon ------------------------------------------------------------------

def test_daemon_answers_with_enterprise_permissions() -> None:
    with FakeMeta() as meta:
        meta.add_user("johndoe", "pa5sw0Rd", {"": ["KapacitorAPI", "KapacitorConfigAPI"]})
        meta.add_user("configonly", "c0nfig", {"": ["KapacitorConfigAPI"]})
        conf = {"http": {"auth-enabled": True, "shared-secret": "jwt-secret"},
                "auth": {"enabled": True, "cache-expiration": "1h", "bcrypt-cost": 4,
                         "meta-addr": " " + meta.addr, "meta-username": "admin",
                         "meta-password": "changeit", "meta-use-tls": False,
                         "meta-insecure-skip-verify": False}}
        with DaemonProcess(conf) as daemon:
            tasks = daemon.url + "/kapacitor/v1/tasks"
            # curl --request GET http://localhost:9092/kapacitor/v1/tasks -u "johndoe:pa5sw0Rd"
            response = httpx.get(tasks, auth=("johndoe", "pa5sw0Rd"))
            assert response.status_code == 200, response.text
            assert response.json()["tasks"] == []
            # Same credentials again: answered from the cache.
            assert httpx.get(tasks, auth=("johndoe", "pa5sw0Rd")).status_code == 200
            assert meta.count("GET", "/user") == 1
            # A user without KapacitorAPI: the seed's 403 body, byte for byte.
            response = httpx.get(tasks, auth=("configonly", "c0nfig"))
            assert response.status_code == 403
            assert response.content == (b'{"error":"user configonly does not have \\"read\\" '
                                         b'privilege for API endpoint \\"/kapacitor/v1/tasks'
                                         b'\\""}')
            config_url = daemon.url + "/kapacitor/v1/config"
            assert httpx.get(config_url, auth=("configonly", "c0nfig")).status_code == 200
            response = httpx.get(tasks, auth=("johndoe", "wrong"))
            assert (response.status_code, response.json()) == (
                401, {"error": "authorization failed"})
            token = jwt.encode({"username": "johndoe", "exp": int(time.time()) + 60},
                               "jwt-secret")
            response = httpx.get(tasks, headers={"Authorization": "Bearer " + token})
            assert response.status_code == 200, response.text


def test_daemon_refuses_an_unreadable_meta_ca(tmp_path: Path) -> None:
    daemon = DaemonProcess({"auth": {"enabled": True, "meta-addr": "127.0.0.1:8091",
                                     "meta-use-tls": True,
                                     "meta-ca": str(tmp_path / "missing.pem")}})
    try:
        with pytest.raises(RuntimeError, match=r"invalid configuration: auth\.meta-ca: "
                                               r"cannot load"):
            daemon.start()
    finally:
        daemon.close()
