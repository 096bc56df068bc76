"""TLS client settings as Kapacitor's sections spell them (``ssl-ca``, ``ssl-cert``,
``ssl-key``, ``insecure-skip-verify``), turned into an ``ssl.SSLContext`` in one place
for every outgoing connection: alert handlers, InfluxDB, the meta API, MQTT, Kafka.

Also the ``[tls]`` policy of the API's HTTPS (cipher suites and versions by Go's names),
checked here with the configuration and applied by ``kapa_core.http.tls``."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kapa_core.errors import ConfigError


class TLSFileError(Exception):
    """A TLS file could not be loaded; ``which`` is ``"ca"`` or ``"cert"`` (the
    certificate with its key), so callers can name their own setting."""

    def __init__(self, which: str, path: str, reason: object) -> None:
        super().__init__(f"cannot load {path!r}: {reason}")
        self.which = which
        self.path = path


@dataclass(frozen=True)
class TLS:
    """Trust ``ca`` (else the system store), present ``cert``/``key`` when set;
    ``insecure_skip_verify`` turns certificate and host-name checks off."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    insecure_skip_verify: bool = False

    @classmethod
    def of(cls, config: object) -> TLS:
        """The ``ssl_ca``/``ssl_cert``/``ssl_key``/``insecure_skip_verify`` of a section."""
        return cls(getattr(config, "ssl_ca", ""), getattr(config, "ssl_cert", ""),
                   getattr(config, "ssl_key", ""),
                   getattr(config, "insecure_skip_verify", False))

    def context(self) -> ssl.SSLContext:
        """The client context; TLSFileError when a file cannot be loaded."""
        ca = None if self.insecure_skip_verify else self.ca or None
        try:
            context = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise TLSFileError("ca", self.ca, exc) from None
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert:
            try:
                context.load_cert_chain(self.cert, self.key or None)
            except (OSError, ssl.SSLError) as exc:
                raise TLSFileError("cert", self.cert, exc) from None
        return context

    def verify(self) -> ssl.SSLContext | bool:
        """What httpx's ``verify`` takes: False, True (system store) or a context."""
        if self.insecure_skip_verify and not self.cert:
            return False
        if not (self.ca or self.cert):
            return True
        return self.context()


# -- the [tls] policy of the API's HTTPS: cipher suites and versions as Kapacitor names them
#: Go's TLS 1.0-1.2 cipher-suite names (as Kapacitor accepts them) -> OpenSSL names.
GO_CIPHERS: dict[str, str] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
#: The TLS 1.3 suites: Go and OpenSSL use the same (IANA) names.
TLS13_SUITES: tuple[str, ...] = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                 "TLS_CHACHA20_POLY1305_SHA256")
#: Accepted spellings of the versions (compared upper-cased).
VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS1.0": ssl.TLSVersion.TLSv1, "1.0": ssl.TLSVersion.TLSv1,
    "TLS1.1": ssl.TLSVersion.TLSv1_1, "1.1": ssl.TLSVersion.TLSv1_1,
    "TLS1.2": ssl.TLSVersion.TLSv1_2, "1.2": ssl.TLSVersion.TLSv1_2,
    "TLS1.3": ssl.TLSVersion.TLSv1_3, "1.3": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class TLSPolicy:
    """The parsed ``[tls]`` section."""

    ciphers: tuple[str, ...] = ()          # Go names as configured, upper-cased
    openssl_ciphers: tuple[str, ...] = ()  # the TLS 1.0-1.2 ones, OpenSSL names, in order
    tls13_suites: tuple[str, ...] = ()     # the TLS 1.3 ones
    min_version: ssl.TLSVersion | None = None
    max_version: ssl.TLSVersion | None = None


@functools.cache
def available_ciphers() -> tuple[str, ...]:
    """The Go names this OpenSSL build can serve, sorted."""
    names = [*TLS13_SUITES]
    for go_name, name in GO_CIPHERS.items():
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(name)
        except ssl.SSLError:
            continue
        names.append(go_name)
    return tuple(sorted(names))


def _version(key: str, value: str) -> ssl.TLSVersion | None:
    if not value:
        return None
    version = VERSIONS.get(value.strip().upper())
    if version is None:
        raise ConfigError(key, f"unknown TLS version {value!r} (expected tls1.0, tls1.1, "
                          "tls1.2 or tls1.3)")
    return version


def parse_policy(ciphers: Sequence[str], min_version: str, max_version: str) -> TLSPolicy:
    """Check the ``[tls]`` values as Kapacitor does; errors name the key (section-relative)."""
    names: list[str] = []
    openssl: list[str] = []
    tls13: list[str] = []
    for raw in ciphers:
        name = str(raw).strip().upper()
        if name in GO_CIPHERS:
            openssl.append(GO_CIPHERS[name])
        elif name in TLS13_SUITES:
            tls13.append(name)
        else:
            raise ConfigError("ciphers", f"unknown cipher suite {raw!r}; available: "
                              + ", ".join(available_ciphers()))
        names.append(name)
    low = _version("min-version", min_version)
    high = _version("max-version", max_version)
    if low is not None and high is not None and low > high:
        raise ConfigError("min-version", f"{min_version!r} is above max-version "
                          f"{max_version!r}: no TLS version would be left")
    if names and not openssl and high is not None and high < ssl.TLSVersion.TLSv1_3:
        raise ConfigError("ciphers", f"only TLS 1.3 cipher suites are listed but max-version "
                          f"is {max_version!r}: no cipher suite would be left")
    return TLSPolicy(tuple(names), tuple(openssl), tuple(tls13), low, high)


class TLSSettings(Protocol):
    """What :func:`policy_of` reads of a ``[tls]`` config object."""

    @property
    def ciphers(self) -> Sequence[str]: ...

    @property
    def min_version(self) -> str: ...

    @property
    def max_version(self) -> str: ...


def policy_of(tls: TLSSettings) -> TLSPolicy:
    """:func:`parse_policy` for a ``[tls]`` config object, errors prefixed with ``tls``."""
    try:
        return parse_policy(tls.ciphers, tls.min_version, tls.max_version)
    except ConfigError as exc:
        raise exc.within("tls") from None
