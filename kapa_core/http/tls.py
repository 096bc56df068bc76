"""HTTPS for the API: the ``[http] https-*`` keys and Kapacitor's ``[tls]`` policy.

``[tls] ciphers`` takes Go's cipher-suite names (case-insensitive, in priority order),
``min-version`` / ``max-version`` take ``tls1.0`` ... ``tls1.3`` (or ``1.0`` ... ``1.3``),
as Kapacitor's ``tlsconfig`` package does. They are mapped onto an OpenSSL context
through Python's ``ssl`` module. What this TLS library cannot do is refused at startup
with the key and the value named, never silently weakened:

* a suite name Go does not know, or one this OpenSSL build does not offer (RC4, 3DES);
* a TLS version this OpenSSL build will not negotiate at its security level (TLS 1.0 and
  1.1 on OpenSSL 3), checked with an in-memory handshake against the real certificate;
* a subset of the TLS 1.3 suites while TLS 1.3 is allowed, when Python's ``ssl`` cannot
  select TLS 1.3 suites (``SSLContext.set_ciphersuites`` does not exist before it is
  added to Python): listing all of them, none of them, or capping ``max-version`` at
  ``tls1.2`` is accepted. As in Go, a list of TLS 1.0-1.2 suites alone leaves the TLS 1.3
  suites on.

The module also recognises the classic mistake of speaking plain HTTP to the HTTPS port
(e.g. an InfluxDB subscription left on ``subscription-protocol = "http"``) and holds the
answer Go's HTTP server gives in that case.
"""

from __future__ import annotations

import os
import platform
import ssl
import warnings
from typing import Any

import trio

from kapa_core.errors import ConfigError
from kapa_core.tlsconfig import (  # the [tls] policy, checked with the configuration
    GO_CIPHERS as GO_CIPHERS,
)
from kapa_core.tlsconfig import TLS13_SUITES as TLS13_SUITES
from kapa_core.tlsconfig import VERSIONS as VERSIONS
from kapa_core.tlsconfig import TLSPolicy as TLSPolicy
from kapa_core.tlsconfig import available_ciphers as available_ciphers
from kapa_core.tlsconfig import parse_policy as parse_policy
from kapa_core.tlsconfig import policy_of as policy_of

_VERSION_NAMES = {ssl.TLSVersion.TLSv1: "tls1.0", ssl.TLSVersion.TLSv1_1: "tls1.1",
                  ssl.TLSVersion.TLSv1_2: "tls1.2", ssl.TLSVersion.TLSv1_3: "tls1.3"}

#: What Go's HTTP server writes back when a TLS port receives plain HTTP.
PLAIN_HTTP_ANSWER = (b"HTTP/1.0 400 Bad Request\r\n\r\n"
                     b"Client sent an HTTP request to an HTTPS server.\n")
PLAIN_HTTP_ERROR = "client sent an HTTP request to an HTTPS server"
PLAIN_HTTP_HINT = ("use https:// in the client URL (for an InfluxDB subscription, "
                   "subscription-protocol = \"https\")")
_HTTP_STARTS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"PATCH ", b"OPTIONS ",
                b"CONNECT ", b"TRACE ")
_PLAIN_HTTP_REASONS = ("HTTP_REQUEST", "HTTPS_PROXY_REQUEST")
#: OpenSSL failure reasons -> the words Go's crypto/tls uses, with the key to look at.
_REASONS = {
    "UNSUPPORTED_PROTOCOL": "tls: client offered only unsupported versions "
                            "([tls] min-version/max-version)",
    "VERSION_TOO_LOW": "tls: client offered only unsupported versions "
                       "([tls] min-version/max-version)",
    "NO_SHARED_CIPHER": "tls: no cipher suite supported by both client and server "
                        "([tls] ciphers)",
    "WRONG_VERSION_NUMBER": "tls: first record does not look like a TLS handshake",
    "PACKET_LENGTH_TOO_LONG": "tls: first record does not look like a TLS handshake",
}


def server_context(http: Any, tls: Any) -> ssl.SSLContext:
    """The SSL context of the HTTPS API from ``[http]`` and ``[tls]``.

    Raises :class:`ConfigError` naming the key when the certificate cannot be loaded or the
    policy cannot be honoured by this Python/OpenSSL build.
    """
    policy = policy_of(tls)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_certificate(context, http.https_certificate, http.https_private_key)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: refused below if unusable
        warnings.simplefilter("ignore", DeprecationWarning)
        if policy.min_version is not None:
            context.minimum_version = policy.min_version
        if policy.max_version is not None:
            context.maximum_version = policy.max_version
    _apply_ciphers(context, policy)
    _check_versions(context, policy)
    return context


def _load_certificate(context: ssl.SSLContext, certificate: str, private_key: str) -> None:
    if not os.path.isfile(certificate):
        raise ConfigError("http.https-certificate",
                          f"cannot read certificate {certificate!r}: no such file")
    if private_key and not os.path.isfile(private_key):
        raise ConfigError("http.https-private-key",
                          f"cannot read private key {private_key!r}: no such file")
    try:
        context.load_cert_chain(certificate, private_key or None)
    except (OSError, ssl.SSLError) as exc:
        if not private_key:
            raise ConfigError("http.https-private-key", f"no usable private key: it is empty, "
                              f"so the key must be inside https-certificate {certificate!r}, "
                              f"and loading failed: {exc}") from None
        raise ConfigError("http.https-certificate", f"cannot load certificate "
                          f"{certificate!r} with private key {private_key!r}: {exc}") from None


def allows(context: ssl.SSLContext, version: ssl.TLSVersion) -> bool:
    """Whether ``version`` lies within the context's minimum and maximum versions."""
    low, high = context.minimum_version, context.maximum_version
    return ((low == ssl.TLSVersion.MINIMUM_SUPPORTED or low <= version) and
            (high == ssl.TLSVersion.MAXIMUM_SUPPORTED or high >= version))


def _apply_ciphers(context: ssl.SSLContext, policy: TLSPolicy) -> None:
    if not policy.ciphers:
        return
    for go_name in policy.ciphers:
        if go_name not in available_ciphers():
            raise ConfigError("tls.ciphers", f"cipher suite {go_name!r} "
                              f"({GO_CIPHERS[go_name]}) is not available in "
                              f"{ssl.OPENSSL_VERSION}; available: "
                              + ", ".join(available_ciphers()))
    if policy.openssl_ciphers:
        context.set_ciphers(":".join(policy.openssl_ciphers))
    else:  # only TLS 1.3 suites listed: nothing is left for TLS 1.2 and below
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    if not policy.tls13_suites or not allows(context, ssl.TLSVersion.TLSv1_3):
        return
    setter = getattr(context, "set_ciphersuites", None)
    if setter is not None:
        setter(":".join(policy.tls13_suites))
        return
    available = [c["name"] for c in context.get_ciphers() if c.get("protocol") == "TLSv1.3"]
    left = [name for name in available if name not in policy.tls13_suites]
    if left:
        listed = ", ".join(policy.tls13_suites)
        raise ConfigError("tls.ciphers", f"cannot restrict TLS 1.3 to {listed}: Python "
                          f"{platform.python_version()}'s ssl module ({ssl.OPENSSL_VERSION}) "
                          "cannot select TLS 1.3 cipher suites, so "
                          f"{', '.join(left)} would stay enabled; list all TLS 1.3 suites or "
                          "none of them, or set max-version = \"tls1.2\"")


def _check_versions(context: ssl.SSLContext, policy: TLSPolicy) -> None:
    """Refuse versions this build will not negotiate, and suites no client could use."""
    for key, version in (("tls.min-version", policy.min_version),
                         ("tls.max-version", policy.max_version)):
        if version is not None and version < ssl.TLSVersion.TLSv1_2:
            failure = handshake_failure(context, version)
            if failure:
                raise ConfigError(key, f"{_VERSION_NAMES[version]} cannot be negotiated with "
                                  f"{ssl.OPENSSL_VERSION} at its security level "
                                  f"({failure}); use tls1.2 or tls1.3")
    if policy.openssl_ciphers and allows(context, ssl.TLSVersion.TLSv1_2):
        failure = handshake_failure(context, ssl.TLSVersion.TLSv1_2)
        if failure:
            raise ConfigError("tls.ciphers", "none of the listed TLS 1.2 cipher suites can "
                              f"be used with the certificate's key ({failure})")


def handshake_failure(server: ssl.SSLContext, version: ssl.TLSVersion) -> str:
    """Why an in-memory handshake at ``version`` with ``server`` fails ("" if it works).

    The client offers every suite OpenSSL has at security level 0, so only the server's
    own policy and certificate decide.
    """
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            client.minimum_version = client.maximum_version = version
            client.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as exc:
            return str(exc)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    ends = [client.wrap_bio(bios[0], bios[1], server_hostname="localhost"),
            server.wrap_bio(bios[2], bios[3], server_side=True)]
    done = [False, False]
    for _ in range(20):
        for i, end in enumerate(ends):
            if done[i]:
                continue
            try:
                end.do_handshake()
                done[i] = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return getattr(exc, "reason", None) or str(exc)
        if all(done):
            return ""
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
    return "handshake did not complete"


# -- plain HTTP on the HTTPS port ----------------------------------------------------------
class TLSTransport(trio.abc.Stream):
    """The raw side of one HTTPS connection.

    It remembers the first bytes the client sent (to recognise plain HTTP), and can send
    the TLS alert OpenSSL queued when a handshake failed: trio drops it, while Go sends it,
    and a client is better told "protocol version" or "handshake failure" than given a
    bare EOF.
    """

    def __init__(self, inner: trio.abc.Stream, keep: int = 8) -> None:
        self.inner = inner
        self.keep = keep
        self.first = b""
        self.tls: trio.SSLStream[TLSTransport] | None = None

    def start_tls(self, context: ssl.SSLContext) -> trio.SSLStream[TLSTransport]:
        """The server-side TLS stream over this transport."""
        self.tls = trio.SSLStream(self, context, server_side=True, https_compatible=True)
        return self.tls

    async def send_alert(self) -> None:
        """Send what OpenSSL left to write after a failed handshake (its alert), if any."""
        outgoing = getattr(self.tls, "_outgoing", None)
        if isinstance(outgoing, ssl.MemoryBIO) and outgoing.pending:
            await self.inner.send_all(outgoing.read())

    async def linger(self, limit: int = 1 << 20) -> None:
        """Finish our side, then read and drop what the client still sends.

        Closing a socket with unread bytes (say, the body of a plain-HTTP POST) makes the
        kernel answer with a reset, and a client may then lose the 400 answer before it
        reads it. The caller bounds this with a timeout; ``limit`` bounds the bytes.
        """
        send_eof = getattr(self.inner, "send_eof", None)
        if send_eof is not None:
            await send_eof()
        while limit > 0:
            data = await self.inner.receive_some(65536)
            if not data:
                return
            limit -= len(data)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if len(self.first) < self.keep:
            self.first += data[:self.keep - len(self.first)]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


def is_plain_http(exc: ssl.SSLError, first: bytes) -> bool:
    """Whether a failed handshake was a plain HTTP request (OpenSSL's verdict or ours)."""
    if getattr(exc, "reason", None) in _PLAIN_HTTP_REASONS:
        return True
    for method in _HTTP_STARTS:
        n = min(len(method), len(first))
        if n >= 4 and first[:n] == method[:n]:
            return True
    return False


def describe(exc: ssl.SSLError) -> str:
    """A handshake failure in Go's words where there is an equivalent, else OpenSSL's."""
    reason = getattr(exc, "reason", None) or ""
    text = _REASONS.get(reason)
    return f"{text}: {reason.lower().replace('_', ' ')}" if text else str(exc)
