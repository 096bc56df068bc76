"""HMAC JWTs (``kapa_core.auth.jwt``): verification against known tokens and every way a
token is refused, with the texts Kapacitor answers after ``invalid token:``."""

from __future__ import annotations

import base64
import json

import pytest

from kapa_core.auth import jwt

# The example token published on jwt.io (HS256, secret "your-256-bit-secret"), made by
# another implementation: proves interoperability, not just encode/decode symmetry.
JWT_IO_TOKEN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
                "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
SECRET = "s3cret"
NOW = 1_700_000_000


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def unsigned(header: dict, claims: dict, signature: str = "") -> str:
    return f"{b64(header)}.{b64(claims)}.{signature}"


def test_verifies_a_token_made_elsewhere() -> None:
    claims = jwt.decode(JWT_IO_TOKEN, "your-256-bit-secret", now=NOW)
    assert claims == {"sub": "1234567890", "name": "John Doe", "iat": 1516239022}


def test_a_token_made_elsewhere_fails_with_another_secret() -> None:
    with pytest.raises(jwt.JWTError, match=r"^signature is invalid$"):
        jwt.decode(JWT_IO_TOKEN, "not-the-secret", now=NOW)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_round_trip(alg: str) -> None:
    token = jwt.encode({"username": "bob", "exp": NOW + 60}, SECRET, alg)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == alg
    assert jwt.decode(token, SECRET, now=NOW) == {"username": "bob", "exp": NOW + 60}


def test_tampered_claims_are_refused() -> None:
    token = jwt.encode({"username": "bob", "exp": NOW + 60}, SECRET)
    head, _claims, sig = token.split(".")
    forged = f"{head}.{b64({'username': 'admin', 'exp': NOW + 60})}.{sig}"
    with pytest.raises(jwt.JWTError, match=r"^signature is invalid$"):
        jwt.decode(forged, SECRET, now=NOW)


def test_signature_checked_before_expiry() -> None:
    token = jwt.encode({"username": "bob", "exp": NOW - 10}, "other")
    with pytest.raises(jwt.JWTError, match=r"^signature is invalid$"):
        jwt.decode(token, SECRET, now=NOW)


@pytest.mark.parametrize(("alg", "message"), [
    ("none", "unexpected signing method: none"),
    ("RS256", "unexpected signing method: RS256"),
    ("ES256", "unexpected signing method: ES256"),
    ("XX1", "signing method (alg) is unavailable."),
])
def test_non_hmac_algorithms_are_refused(alg: str, message: str) -> None:
    token = unsigned({"alg": alg, "typ": "JWT"}, {"username": "admin", "exp": NOW + 60})
    with pytest.raises(jwt.JWTError) as info:
        jwt.decode(token, SECRET, now=NOW)
    assert str(info.value) == message


def test_missing_alg() -> None:
    token = unsigned({"typ": "JWT"}, {"username": "admin"}, "x")
    with pytest.raises(jwt.JWTError, match=r"^signing method \(alg\) is unspecified\.$"):
        jwt.decode(token, SECRET, now=NOW)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "onlyone"])
def test_wrong_number_of_segments(token: str) -> None:
    with pytest.raises(jwt.JWTError, match=r"^token contains an invalid number of segments$"):
        jwt.decode(token, SECRET, now=NOW)


@pytest.mark.parametrize("token", ["!!!.e30.sig", "e30.%%%.sig", "bm90IGpzb24.e30.sig",
                                   "WzFd.e30.sig"])
def test_garbage_segments(token: str) -> None:
    with pytest.raises(jwt.JWTError):
        jwt.decode(token, SECRET, now=NOW)


def test_expiry_boundary() -> None:
    token = jwt.encode({"exp": NOW}, SECRET)
    assert jwt.decode(token, SECRET, now=NOW) == {"exp": NOW}
    with pytest.raises(jwt.JWTError, match=r"^Token is expired$"):
        jwt.decode(token, SECRET, now=NOW + 1)


def test_not_before_and_issued_at() -> None:
    with pytest.raises(jwt.JWTError, match=r"^Token is not valid yet$"):
        jwt.decode(jwt.encode({"nbf": NOW + 5}, SECRET), SECRET, now=NOW)
    with pytest.raises(jwt.JWTError, match=r"^Token used before issued$"):
        jwt.decode(jwt.encode({"iat": NOW + 5}, SECRET), SECRET, now=NOW)
    assert jwt.decode(jwt.encode({"nbf": NOW, "iat": NOW}, SECRET), SECRET, now=NOW)


def test_real_clock_is_used_by_default() -> None:
    with pytest.raises(jwt.JWTError, match=r"^Token is expired$"):
        jwt.decode(jwt.encode({"exp": 1000}, SECRET), SECRET)


def test_bytes_secret_equals_text_secret() -> None:
    token = jwt.encode({"exp": NOW + 1}, SECRET.encode())
    assert jwt.decode(token, SECRET, now=NOW) == {"exp": NOW + 1}


def test_encode_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        jwt.encode({}, SECRET, "none")


@pytest.mark.parametrize(("claims", "message"), [
    ({"username": "bob"}, "token expiration required"),
    ({"username": "bob", "exp": 0}, "token expiration required"),
    ({"username": "bob", "exp": -5}, "token expiration required"),
    ({"username": "bob", "exp": "9999999999"}, "token expiration required"),
    ({"username": "bob", "exp": True}, "token expiration required"),
    ({"exp": NOW}, "username in token must be a string"),
    ({"exp": NOW, "username": 7}, "username in token must be a string"),
    ({"exp": NOW, "username": ""}, "token must contain a username"),
])
def test_kapacitor_claim_rules(claims: dict, message: str) -> None:
    with pytest.raises(jwt.JWTError) as info:
        jwt.token_username(claims)
    assert str(info.value) == message


def test_token_username() -> None:
    assert jwt.token_username({"exp": NOW, "username": "bob"}) == "bob"
