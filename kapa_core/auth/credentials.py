"""Where a request carries its credentials, read as Kapacitor reads them.

In order: an ``Authorization`` header holding ``Bearer <JWT>``; an ``Authorization:
Basic`` header (what a client sends for ``http://user:pass@host:9092``; the special user
``~subscriber`` marks an InfluxDB subscription token); else the ``u`` and ``p`` query
parameters, both non-empty. Anything else is "unable to parse authentication
credentials".
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Protocol


class Request(Protocol):
    """What is read of a request (``kapa_core.http.messages.Request``)."""

    def header(self, name: str) -> str | None: ...
    def arg(self, name: str, default: str = "") -> str: ...

USER = "user"
BEARER = "bearer"
SUBSCRIPTION = "subscription"
SUBSCRIPTION_USER = "~subscriber"


class CredentialsError(Exception):
    """No usable credentials in the request."""


@dataclass(frozen=True)
class Credentials:
    method: str  # USER, BEARER or SUBSCRIPTION
    username: str = ""
    password: str = ""
    token: str = ""

    def __repr__(self) -> str:  # never print a password or token
        return f"Credentials(method={self.method!r}, username={self.username!r})"


def basic_auth(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from a ``Basic`` Authorization header, or None."""
    prefix = "basic "
    if len(header) < len(prefix) or header[:len(prefix)].lower() != prefix:
        return None
    try:
        decoded = base64.b64decode(header[len(prefix):], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep:
        return None
    return username, password


def parse_credentials(request: Request) -> Credentials:
    header = request.header("authorization") or ""
    if header:
        parts = header.split(" ")
        if len(parts) == 2 and parts[0] == "Bearer":
            return Credentials(BEARER, token=parts[1])
        basic = basic_auth(header)
        if basic is not None:
            if basic[0] == SUBSCRIPTION_USER:
                return Credentials(SUBSCRIPTION, token=basic[1])
            return Credentials(USER, username=basic[0], password=basic[1])
    username, password = request.arg("u"), request.arg("p")
    if username and password:
        return Credentials(USER, username=username, password=password)
    raise CredentialsError("unable to parse authentication credentials")
