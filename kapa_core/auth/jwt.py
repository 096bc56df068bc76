"""JSON Web Tokens signed with HMAC (HS256, HS384, HS512), written on the standard
library so that bearer authentication needs no extra dependency.

``decode`` checks what Kapacitor's JWT library checks, in an order that gives the same
first error: the token's shape, its ``alg`` (only HMAC algorithms are accepted, the
``none`` algorithm never), the signature (constant-time comparison), then the time
claims ``exp``, ``nbf`` and ``iat`` when present. Error texts are the ones Kapacitor
puts after ``invalid token:`` in its 401 answers, e.g. ``Token is expired``.

``encode`` makes tokens, for tests and for clients of an API secured with
``[http] shared-secret``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from typing import Any

#: HMAC algorithms by JWT ``alg`` name.
ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
#: Algorithms the reference JWT library knows but that are refused here (no HMAC).
_KNOWN_OTHER = frozenset({"none", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                          "ES256", "ES384", "ES512"})
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")


class JWTError(Exception):
    """A token that cannot be trusted; ``str(exc)`` is the reason."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    if not _SEGMENT.match(segment) or len(segment) % 4 == 1:
        raise JWTError("illegal base64 data in token segment")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JWTError(f"illegal base64 data in token segment: {exc}") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JWTError(f"invalid {what} JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JWTError(f"invalid {what} JSON: expected an object")
    return value


def _sign(signing_input: bytes, secret: bytes, alg: str) -> bytes:
    return hmac.new(secret, signing_input, ALGORITHMS[alg]).digest()


def encode(claims: dict[str, Any], secret: str | bytes, alg: str = "HS256") -> str:
    """A signed compact JWT carrying ``claims``."""
    if alg not in ALGORITHMS:
        raise ValueError(f"unsupported algorithm {alg!r} (expected HS256, HS384 or HS512)")
    key = secret.encode() if isinstance(secret, str) else secret
    header = _b64encode(json.dumps({"alg": alg, "typ": "JWT"},
                                   separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64encode(_sign(signing_input, key, alg))}"


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # absent or not a number: not checked, as the reference library does
    return float(value)


def decode(token: str, secret: str | bytes, *, now: float | None = None) -> dict[str, Any]:
    """The claims of ``token`` once its signature and time claims are verified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("token contains an invalid number of segments")
    header = _json_object(_b64decode(parts[0]), "header")
    claims = _json_object(_b64decode(parts[1]), "claims")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise JWTError("signing method (alg) is unspecified.")
    if alg not in ALGORITHMS:
        if alg in _KNOWN_OTHER:
            raise JWTError(f"unexpected signing method: {alg}")
        raise JWTError("signing method (alg) is unavailable.")
    key = secret.encode() if isinstance(secret, str) else secret
    signature = _b64decode(parts[2])
    expected = _sign(f"{parts[0]}.{parts[1]}".encode("ascii"), key, alg)
    if not hmac.compare_digest(signature, expected):
        raise JWTError("signature is invalid")
    current = time.time() if now is None else now
    exp = _number(claims, "exp")
    if exp is not None and exp != 0 and int(current) > exp:
        raise JWTError("Token is expired")
    iat = _number(claims, "iat")
    if iat is not None and iat != 0 and int(current) < iat:
        raise JWTError("Token used before issued")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf != 0 and int(current) < nbf:
        raise JWTError("Token is not valid yet")
    return claims


def token_username(claims: dict[str, Any]) -> str:
    """The user a Kapacitor bearer token names, after Kapacitor's own claim checks: a
    positive ``exp`` is required and ``username`` must be a non-empty string."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= 0:
        raise JWTError("token expiration required")
    username = claims.get("username")
    if not isinstance(username, str):
        raise JWTError("username in token must be a string")
    if not username:
        raise JWTError("token must contain a username")
    return username
