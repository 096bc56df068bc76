"""TLS client settings as Kapacitor's sections spell them (``ssl-ca``, ``ssl-cert``,
``ssl-key``, ``insecure-skip-verify``), turned into an ``ssl.SSLContext`` in one place
for every outgoing connection: alert handlers, InfluxDB, the meta API, MQTT, Kafka."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


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
    def of(cls, config: Any) -> TLS:
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
