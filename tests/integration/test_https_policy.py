"""HTTPS for the API and the ``[tls]`` policy, proved with real TLS clients.

Every test runs the real daemon on 127.0.0.1 and talks to it with Python ``ssl`` sockets or
httpx pinned to a client context. The steps follow the "Kapacitor over TLS" part of the
security guide (seed 001): ``https-enabled`` / ``https-certificate`` / ``https-private-key``
in kapacitor.conf or as ``KAPACITOR_`` environment variables, not settable over the HTTP
API, a self-signed certificate needing ``-skipVerify`` (verification off) in clients, and
the "TLS handshake error" an InfluxDB subscription left on plain HTTP produces.
"""

from __future__ import annotations

import socket
import ssl
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, run_cli, to_toml
from tests.integration.pki import self_signed

GO_PLAIN_HTTP_ANSWER = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                        b"Client sent an HTTP request to an HTTPS server.\n")
HANDSHAKE_ERROR = 'msg="http: TLS handshake error"'
PLAIN_HTTP_ERR = 'err="client sent an HTTP request to an HTTPS server"'


@dataclass(frozen=True)
class Certs:
    cert: str
    key: str
    combined: str  # certificate and key in one PEM file


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("https")
    cert, key = self_signed(folder, cn="localhost", san="IP:127.0.0.1,DNS:localhost")
    combined = folder / "kapacitor.pem"
    combined.write_text(cert.read_text() + key.read_text())
    return Certs(str(cert), str(key), str(combined))


def https(certs: Certs, tls: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Seed 001, example 6: HTTPS with a separate private key (+ a [tls] table)."""
    config: dict[str, Any] = {"http": {"https-enabled": True,
                                       "https-certificate": certs.cert,
                                       "https-private-key": certs.key}}
    if tls is not None:
        config["tls"] = dict(tls)
    return config


@pytest.fixture
def serve(certs: Certs) -> Iterator[Any]:
    started: list[DaemonProcess] = []

    def start(config: Mapping[str, Any], **kwargs: Any) -> DaemonProcess:
        daemon = DaemonProcess(config, **kwargs)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.close()


def client(certs: Certs, *, minimum: ssl.TLSVersion | None = None,
           maximum: ssl.TLSVersion | None = None, ciphers: str | None = None,
           ) -> ssl.SSLContext:
    """A client context trusting the test certificate, limited as asked."""
    context = ssl.create_default_context(cafile=certs.cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


def address(daemon: DaemonProcess) -> tuple[str, int]:
    host, _, port = daemon.url.split("://", 1)[1].rpartition(":")
    return host, int(port)


def exchange(daemon: DaemonProcess, context: ssl.SSLContext,
             path: str = "/kapacitor/v1/ping") -> tuple[str, str, str]:
    """One GET over a fresh TLS connection: (status line, TLS version, cipher suite)."""
    host, port = address(daemon)
    with socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as conn:
        version, suite = conn.version() or "", (conn.cipher() or ("",))[0]
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data.split(b"\r\n", 1)[0].decode(), version, suite


def refused(daemon: DaemonProcess, context: ssl.SSLContext) -> ssl.SSLError:
    with pytest.raises(ssl.SSLError) as info:
        exchange(daemon, context)
    return info.value


def plain(daemon: DaemonProcess, request: bytes) -> bytes:
    """Send raw bytes to the HTTPS port and read everything the server answers."""
    with socket.create_connection(address(daemon), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def handshake_errors(daemon: DaemonProcess, count: int, settle: float = 0.3) -> list[str]:
    """The handshake-error log lines, once there are ``count`` (and no more arrive)."""
    daemon.wait_for_text(HANDSHAKE_ERROR, count=count)
    time.sleep(settle)  # a surplus line would have arrived by now
    return [line for line in daemon.log().splitlines() if HANDSHAKE_ERROR in line]


def fails_to_start(tmp_path: Path, config: Mapping[str, Any]) -> str:
    """Run the daemon with ``config``; it must exit non-zero at once: its stderr."""
    data = tmp_path / "data"
    merged = {"data_dir": str(data), "influxdb": [{"enabled": False}],
              "logging": {"file": "STDERR", "level": "INFO"}, **config}
    merged["http"] = {"bind-address": "127.0.0.1:0", **config.get("http", {})}
    path = tmp_path / "kapacitor.conf"
    path.write_text(to_toml(merged))
    done = run_cli("run", "-config", str(path), env={"HOME": str(tmp_path)}, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ready" not in done.stdout
    assert not list(tmp_path.rglob("*.db")), "storage was opened before the check"
    return done.stderr


# -- seed 001: enabling TLS --------------------------------------------------------------
def test_seed_https_with_certificate_and_private_key(serve, certs: Certs) -> None:
    daemon = serve(https(certs))
    assert daemon.url.startswith("https://127.0.0.1:")
    daemon.wait_for_log(r'msg="listening on" .*protocol=https')
    trusted = httpx.get(daemon.url + "/kapacitor/v1/ping", verify=client(certs))
    assert trusted.status_code == 204
    assert trusted.headers["X-Kapacitor-Version"]
    # A self-signed certificate is unknown to the system store: the x509 error ...
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(daemon.url + "/kapacitor/v1/tasks")
    # ... unless verification is skipped, as `kapacitor -url https://... -skipVerify`.
    listed = httpx.get(daemon.url + "/kapacitor/v1/tasks", verify=False)
    assert listed.status_code == 200
    assert listed.json()["tasks"] == []
    # "However, they cannot be set over the HTTP API."
    for section, change in (("http", {"https-enabled": False}),
                            ("tls", {"min-version": "tls1.0"})):
        posted = httpx.post(f"{daemon.url}/kapacitor/v1/config/{section}",
                            json={"set": change}, verify=False)
        assert posted.status_code == 403
        assert "cannot be overridden" in posted.json()["error"]
        shown = httpx.get(f"{daemon.url}/kapacitor/v1/config/{section}", verify=False)
        assert shown.status_code == 404
    sections = httpx.get(daemon.url + "/kapacitor/v1/config", verify=False).json()["sections"]
    assert "http" not in sections and "tls" not in sections
    assert httpx.get(daemon.url + "/kapacitor/v1/ping", verify=client(certs)).status_code == 204


def test_seed_https_from_environment_with_key_inside_certificate(serve, certs: Certs) -> None:
    daemon = serve({}, env={"KAPACITOR_HTTP_HTTPS_ENABLED": "true",
                            "KAPACITOR_HTTP_HTTPS_CERTIFICATE": certs.combined,
                            "KAPACITOR_TLS_MIN_VERSION": "1.3"})
    assert daemon.url.startswith("https://")
    status, version, _ = exchange(daemon, client(certs))
    assert status == "HTTP/1.1 204 No Content"
    assert version == "TLSv1.3"
    refused(daemon, client(certs, maximum=ssl.TLSVersion.TLSv1_2))


# -- versions ------------------------------------------------------------------------------
def test_min_version_tls13_refuses_a_tls12_client(serve, certs: Certs) -> None:
    daemon = serve(https(certs, {"min-version": "tls1.3"}))
    error = refused(daemon, client(certs, maximum=ssl.TLSVersion.TLSv1_2))
    assert "PROTOCOL_VERSION" in str(error).upper()  # told why, by a TLS alert
    lines = handshake_errors(daemon, 1)
    assert len(lines) == 1
    assert "lvl=error" in lines[0] and "unsupported versions" in lines[0]
    assert "[tls] min-version/max-version" in lines[0]
    status, version, _ = exchange(daemon, client(certs))
    assert (status, version) == ("HTTP/1.1 204 No Content", "TLSv1.3")
    # Overriding over the API changes nothing: the policy still holds.
    posted = httpx.post(daemon.url + "/kapacitor/v1/config/tls", verify=client(certs),
                        json={"set": {"min-version": "tls1.2"}})
    assert posted.status_code == 403
    refused(daemon, client(certs, maximum=ssl.TLSVersion.TLSv1_2))


def test_max_version_tls12_refuses_a_tls13_only_client(serve, certs: Certs) -> None:
    daemon = serve(https(certs, {"max-version": "TLS1.2"}))  # spelled as Kapacitor allows
    refused(daemon, client(certs, minimum=ssl.TLSVersion.TLSv1_3))
    assert "unsupported versions" in handshake_errors(daemon, 1)[0]
    status, version, _ = exchange(daemon, client(certs))
    assert (status, version) == ("HTTP/1.1 204 No Content", "TLSv1.2")


def test_versions_below_tls12_are_honoured_or_refused_at_startup(
        serve, certs: Certs, tmp_path: Path) -> None:
    config = https(certs, {"min-version": "tls1.0"})
    old = client(certs, minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1,
                 ciphers="ALL:@SECLEVEL=0")
    refusal = ""
    try:
        daemon = serve(config)
    except RuntimeError as exc:  # this OpenSSL will not negotiate TLS 1.0
        refusal = str(exc)
    if refusal:  # then it must be a clear startup error naming the key
        assert "error: invalid configuration: tls.min-version: tls1.0" in refusal
        assert "tls.min-version" in fails_to_start(tmp_path, config)
    else:
        status, version, _ = exchange(daemon, old)
        assert (status, version) == ("HTTP/1.1 204 No Content", "TLSv1")


# -- cipher suites -------------------------------------------------------------------------
def test_ciphers_restrict_tls12_suites_in_priority_order(serve, certs: Certs) -> None:
    daemon = serve(https(certs, {
        "ciphers": ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
                    "tls_ecdhe_rsa_with_aes_128_gcm_sha256"],  # case-insensitive
        "max-version": "tls1.2"}))
    tls12 = ssl.TLSVersion.TLSv1_2
    outside = client(certs, maximum=tls12, ciphers="ECDHE-RSA-AES256-GCM-SHA384")
    assert "HANDSHAKE_FAILURE" in str(refused(daemon, outside)).upper()
    lines = handshake_errors(daemon, 1)
    assert len(lines) == 1 and "no cipher suite supported by both" in lines[0]
    allowed = client(certs, maximum=tls12, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    assert exchange(daemon, allowed) == ("HTTP/1.1 204 No Content", "TLSv1.2",
                                         "ECDHE-RSA-AES128-GCM-SHA256")
    # The client prefers AES; the server's list puts ChaCha20 first and wins.
    both = client(certs, maximum=tls12,
                  ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
    assert exchange(daemon, both)[2] == "ECDHE-RSA-CHACHA20-POLY1305"


def test_tls12_cipher_list_leaves_tls13_on_as_go_does(serve, certs: Certs) -> None:
    daemon = serve(https(certs, {"ciphers": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]}))
    tls12 = ssl.TLSVersion.TLSv1_2
    refused(daemon, client(certs, maximum=tls12, ciphers="ECDHE-RSA-CHACHA20-POLY1305"))
    assert exchange(daemon, client(certs, maximum=tls12))[2] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert exchange(daemon, client(certs))[1] == "TLSv1.3"


def test_a_tls13_suite_subset_is_honoured_or_refused(serve, certs: Certs,
                                                     tmp_path: Path) -> None:
    suites = ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    if hasattr(ssl.SSLContext, "set_ciphersuites"):  # this Python can select TLS 1.3 suites
        daemon = serve(https(certs, {"ciphers": suites}))
        other = client(certs, minimum=ssl.TLSVersion.TLSv1_3)
        other.set_ciphersuites("TLS_AES_256_GCM_SHA384")  # type: ignore[attr-defined]
        refused(daemon, other)
        assert exchange(daemon, client(certs))[2] == "TLS_AES_128_GCM_SHA256"
    else:
        stderr = fails_to_start(tmp_path, https(certs, {"ciphers": suites}))
        assert "error: invalid configuration: tls.ciphers" in stderr
        assert "TLS_AES_128_GCM_SHA256" in stderr and "TLS_AES_256_GCM_SHA384" in stderr
    # Capped at TLS 1.2 the TLS 1.3 names do not matter; the TLS 1.2 one is enforced.
    daemon = serve(https(certs, {"ciphers": suites, "max-version": "tls1.2"}))
    assert exchange(daemon, client(certs))[1:] == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    refused(daemon, client(certs, ciphers="ECDHE-RSA-AES256-GCM-SHA384"))


def _offered(openssl_name: str) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(openssl_name)
    except ssl.SSLError:
        return False
    return True


def test_a_suite_this_openssl_lacks_is_a_startup_error(serve, certs: Certs,
                                                       tmp_path: Path) -> None:
    config = https(certs, {"ciphers": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                       "TLS_RSA_WITH_RC4_128_SHA"], "max-version": "tls1.2"})
    if _offered("RC4-SHA"):
        daemon = serve(config)
        assert exchange(daemon, client(certs))[0] == "HTTP/1.1 204 No Content"
    else:
        stderr = fails_to_start(tmp_path, config)
        assert "tls.ciphers" in stderr and "'TLS_RSA_WITH_RC4_128_SHA'" in stderr
        assert "not available" in stderr


# -- invalid values ------------------------------------------------------------------------
@pytest.mark.parametrize(("tls", "http", "key", "named"), [
    ({"ciphers": ["TLS_NOT_A_SUITE"]}, {}, "tls.ciphers", "TLS_NOT_A_SUITE"),
    ({"min-version": "tls1.4"}, {}, "tls.min-version", "tls1.4"),
    ({"max-version": "ssl3.0"}, {}, "tls.max-version", "ssl3.0"),
    ({"min-version": "tls1.3", "max-version": "tls1.2"}, {}, "tls.min-version", "tls1.2"),
    ({"ciphers": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                  "TLS_CHACHA20_POLY1305_SHA256"], "max-version": "tls1.2"}, {},
     "tls.ciphers", "only TLS 1.3"),
    ({"ciphers": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], "max-version": "tls1.2"}, {},
     "tls.ciphers", "certificate's key"),
    ({}, {"https-certificate": "/nonexistent/kapacitor.pem"}, "http.https-certificate",
     "/nonexistent/kapacitor.pem"),
    ({}, {"https-private-key": "/nonexistent/kapacitor.key"}, "http.https-private-key",
     "/nonexistent/kapacitor.key"),
    ({}, {"https-private-key": ""}, "http.https-private-key", "https-certificate"),
], ids=["unknown-cipher", "unknown-min", "unknown-max", "min-above-max", "only-tls13-capped",
        "ecdsa-suite-rsa-key", "missing-certificate", "missing-key", "no-key-in-certificate"])
def test_invalid_values_stop_startup_naming_the_key(
        certs: Certs, tmp_path: Path, tls: dict[str, Any], http: dict[str, Any], key: str,
        named: str) -> None:
    config = https(certs, tls)
    config["http"].update(http)
    stderr = fails_to_start(tmp_path, config)
    assert f"error: invalid configuration: {key}: " in stderr
    assert named in stderr


# -- the plain-HTTP-to-HTTPS mistake ---------------------------------------------------------
def test_plain_http_to_the_https_port_gets_gos_answer_and_one_log_line(
        serve, certs: Certs) -> None:
    daemon = serve(https(certs))
    host, port = address(daemon)
    ping = f"GET /kapacitor/v1/ping HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    assert plain(daemon, ping) == GO_PLAIN_HTTP_ANSWER
    # An InfluxDB subscription left on subscription-protocol = "http" (seed 001).
    posted = httpx.post(f"http://{host}:{port}/write?consistency=&db=telegraf&precision=ns"
                        "&rp=autogen", content=b"cpu usage_user=1\n")
    assert posted.status_code == 400
    assert posted.text == "Client sent an HTTP request to an HTTPS server.\n"
    # A method OpenSSL itself does not recognise as HTTP gets the same answer.
    delete = f"DELETE /kapacitor/v1/tasks/x HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    assert plain(daemon, delete) == GO_PLAIN_HTTP_ANSWER
    lines = handshake_errors(daemon, 3)
    assert len(lines) == 3, lines
    for line in lines:
        assert line.split(" ", 2)[1] == "lvl=error"
        assert PLAIN_HTTP_ERR in line and "use https://" in line
        assert f"client={host}:" in line
    assert 'msg="http request"' not in daemon.log()  # no request reached the API
    # Bytes that are neither TLS nor HTTP get no HTTP answer, and a TLS-style reason.
    assert b"Client sent" not in plain(daemon, b"\x00\x01\x02\x03 hello\r\n\r\n")
    last = handshake_errors(daemon, 4)
    assert len(last) == 4 and PLAIN_HTTP_ERR not in last[-1]
    # The daemon keeps serving HTTPS.
    assert exchange(daemon, client(certs))[0] == "HTTP/1.1 204 No Content"
