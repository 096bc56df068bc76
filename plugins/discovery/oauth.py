"""Access tokens for the cloud discoverers: Google's application default credentials
([[gce]]) and Azure Active Directory client credentials ([[azure]]).

Google, searched as Go's ``golang.org/x/oauth2/google.FindDefaultCredentials`` that
Kapacitor 1.5.7 uses, first found wins:

1. the JSON key file named by ``GOOGLE_APPLICATION_CREDENTIALS``;
2. gcloud's well-known file ``application_default_credentials.json`` in
   ``$CLOUDSDK_CONFIG`` (gcloud's own variable), else ``~/.config/gcloud``;
3. the Compute Engine metadata server, when ``GCE_METADATA_HOST`` names it (as Google's
   libraries take it) or when ``http://169.254.169.254`` answers as one.

A key file is either ``service_account`` (a JWT signed RS256 with its private key is
exchanged at its ``token_uri`` for an access token) or ``authorized_user`` (its refresh
token is exchanged at ``https://accounts.google.com/o/oauth2/token``, or at the file's
``token_uri`` when it has one, as Google's Python library reads it).

Azure: the client-credentials grant of the v1 endpoint that go-autorest uses,
``POST <authority>/<tenant>/oauth2/token?api-version=1.0`` with ``client_id``,
``client_secret``, ``grant_type=client_credentials`` and ``resource`` (the resource
manager URL).

Tokens are kept until shortly before they expire. Every request goes through the
caller's ``check`` (the deny list) first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import KapaError

#: the scope Prometheus' gce discoverer asks for
COMPUTE_READONLY_SCOPE = "https://www.googleapis.com/auth/compute.readonly"
GOOGLE_TOKEN_URL = "https://accounts.google.com/o/oauth2/token"
#: the metadata server's documented address, used when GCE_METADATA_HOST is not set
METADATA_IP = "169.254.169.254"
ADC_HELP = "https://developers.google.com/accounts/docs/application-default-credentials"
#: a token this close to its expiry is fetched again (Go's oauth2 expiryDelta)
GOOGLE_EXPIRY_MARGIN = 10.0
#: go-autorest refreshes a service principal token this long before it expires
AZURE_EXPIRY_MARGIN = 300.0
AZURE_AUTHORITY = "https://login.microsoftonline.com/"
AZURE_RESOURCE_MANAGER = "https://management.azure.com/"
#: the api-version go-autorest puts on Azure AD's token endpoint
AZURE_AD_API_VERSION = "1.0"
#: seconds the metadata server may take (Go's metadata client: 2 s)
METADATA_TIMEOUT = 2.0

Check = Callable[[str], None]


class TokenError(KapaError):
    """No token could be had (the message says why, worded as Go's libraries)."""


def _body_text(response: httpx.Response) -> str:
    return response.content[:4096].decode("utf-8", "replace")


@dataclass
class _Cached:
    token: str = ""
    #: time.time() after which the token is fetched again
    until: float = 0.0

    def valid(self) -> bool:
        return bool(self.token) and time.time() < self.until


# --- RS256 (RSASSA-PKCS1-v1_5 with SHA-256) from a PEM RSA key, standard library only.

def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER item at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _der(data, start)
        items.append(item)
        start = item[2]
    return items


@dataclass(frozen=True)
class RSAKey:
    """The private key of an RSA key pair (``n``, ``e``, ``d``)."""

    n: int
    e: int
    d: int

    @classmethod
    def from_pem(cls, pem: str) -> RSAKey:
        """A PKCS#8 (``BEGIN PRIVATE KEY``) or PKCS#1 (``BEGIN RSA PRIVATE KEY``) key,
        as Go's oauth2 ``ParseKey`` accepts; ValueError otherwise."""
        lines = [line.strip() for line in pem.strip().splitlines()]
        if len(lines) < 3 or not lines[0].startswith("-----BEGIN ") or \
                not lines[-1].startswith("-----END "):
            raise ValueError("private key should be a PEM or plain PKCS1 or PKCS8; "
                             "parse error: no PEM block")
        try:
            der = base64.b64decode("".join(lines[1:-1]), validate=True)
        except ValueError:
            raise ValueError("private key PEM block is not base64") from None
        tag, start, end = _der(der, 0)
        if tag != 0x30:
            raise ValueError("private key is not a DER sequence")
        items = _der_children(der, start, end)
        if len(items) == 3 and items[1][0] == 0x30 and items[2][0] == 0x04:  # PKCS#8
            algorithm = _der_children(der, items[1][1], items[1][2])
            if not algorithm or der[algorithm[0][1]:algorithm[0][2]] != \
                    bytes.fromhex("2a864886f70d010101"):
                raise ValueError("private key is invalid: not an RSA key")
            tag, start, end = _der(der, items[2][1])
            items = _der_children(der, start, end)
        if len(items) < 4 or any(item[0] != 0x02 for item in items[:4]):
            raise ValueError("private key is invalid")
        n, e, d = (int.from_bytes(der[s:t], "big") for _, s, t in items[1:4])
        return cls(n, e, d)

    def sign_sha256(self, message: bytes) -> bytes:
        size = (self.n.bit_length() + 7) // 8
        digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + \
            hashlib.sha256(message).digest()
        if size < len(digest_info) + 11:
            raise ValueError("RSA key too short for SHA-256 signatures")
        encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + \
            digest_info
        return pow(int.from_bytes(encoded, "big"), self.d, self.n).to_bytes(size, "big")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_jwt(key: RSAKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """A JWS compact serialisation signed RS256 (``header`` gets ``alg``/``typ``)."""
    head = {"alg": "RS256", "typ": "JWT", **header}
    signing_input = (_b64url(json.dumps(head, separators=(",", ":")).encode()) + "." +
                     _b64url(json.dumps(dict(claims), separators=(",", ":")).encode()))
    return signing_input + "." + _b64url(key.sign_sha256(signing_input.encode("ascii")))


# --- Google

@dataclass
class GoogleCredentials:
    """Where a Google access token comes from: ``kind`` is ``service_account``,
    ``authorized_user`` or ``metadata``; ``origin`` says where it was found."""

    kind: str
    origin: str
    info: dict[str, Any] = field(default_factory=dict)
    metadata_host: str = METADATA_IP
    scopes: tuple[str, ...] = (COMPUTE_READONLY_SCOPE,)
    _cache: _Cached = field(default_factory=_Cached, repr=False)

    async def token(self, client: httpx.AsyncClient, check: Check) -> str:
        """A valid access token, fetched when the last one is about to expire."""
        if self._cache.valid():
            return self._cache.token
        if self.kind == "metadata":
            token, lifetime = await self._from_metadata(client, check)
        elif self.kind == "service_account":
            token, lifetime = await self._from_jwt(client, check)
        else:
            token, lifetime = await self._from_refresh_token(client, check)
        self._cache = _Cached(token, time.time() + lifetime - GOOGLE_EXPIRY_MARGIN
                              if lifetime > 0 else float("inf"))
        return token

    async def _from_metadata(self, client: httpx.AsyncClient, check: Check) -> tuple[str, float]:
        url = (f"http://{self.metadata_host}/computeMetadata/v1/instance/service-accounts/"
               "default/token")
        check(url)
        response = await client.get(url, headers={"Metadata-Flavor": "Google"},
                                    timeout=METADATA_TIMEOUT)
        if response.status_code != 200:
            raise TokenError(f"status code {response.status_code} trying to fetch {url}")
        try:
            answer = response.json()
            token, lifetime = str(answer.get("access_token") or ""), \
                int(answer.get("expires_in") or 0)
        except (ValueError, AttributeError, TypeError) as exc:
            raise TokenError(f"oauth2/google: invalid token JSON from metadata: {exc}") \
                from None
        if not token or lifetime == 0:
            raise TokenError("oauth2/google: incomplete token received from metadata")
        return token, lifetime

    async def _post_token(self, client: httpx.AsyncClient, check: Check, url: str,
                          form: dict[str, str]) -> tuple[str, float]:
        check(url)
        response = await client.post(url, data=form)
        if not 200 <= response.status_code <= 299:
            raise TokenError(f"oauth2: cannot fetch token: {response.status_code} "
                             f"{response.reason_phrase}\nResponse: {_body_text(response)}")
        try:
            answer = response.json()
            token = str(answer.get("access_token") or "")
            lifetime = float(answer.get("expires_in") or 0)
        except (ValueError, AttributeError, TypeError) as exc:
            raise TokenError(f"oauth2: cannot fetch token: {exc}") from None
        if not token:
            raise TokenError("oauth2: server response missing access_token")
        return token, lifetime

    async def _from_jwt(self, client: httpx.AsyncClient, check: Check) -> tuple[str, float]:
        info = self.info
        url = str(info.get("token_uri") or GOOGLE_TOKEN_URL)
        try:
            key = RSAKey.from_pem(str(info.get("private_key") or ""))
        except ValueError as exc:
            raise TokenError(str(exc)) from None
        # As Go's jws: issued 10 s in the past (clocks ahead of Google's), valid an hour.
        issued = int(time.time()) - 10
        claims = {"iss": str(info.get("client_email") or ""),
                  "scope": " ".join(self.scopes), "aud": url,
                  "exp": issued + 3600, "iat": issued}
        header = {"kid": str(info["private_key_id"])} if info.get("private_key_id") else {}
        assertion = signed_jwt(key, header, claims)
        return await self._post_token(client, check, url, {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": assertion})

    async def _from_refresh_token(self, client: httpx.AsyncClient,
                                  check: Check) -> tuple[str, float]:
        info = self.info
        if not info.get("refresh_token"):
            raise TokenError("oauth2: token expired and refresh token is not set")
        url = str(info.get("token_uri") or GOOGLE_TOKEN_URL)
        return await self._post_token(client, check, url, {
            "client_id": str(info.get("client_id") or ""),
            "client_secret": str(info.get("client_secret") or ""),
            "grant_type": "refresh_token",
            "refresh_token": str(info["refresh_token"])})


def _credentials_file(path: Path, origin: str) -> GoogleCredentials:
    """OSError when it cannot be read; TokenError when it is not a usable key file."""
    text = path.read_text(encoding="utf-8")
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise TokenError(str(exc)) from None
    if not isinstance(info, dict):
        raise TokenError("json: cannot unmarshal into a credentials file")
    kind = info.get("type") or ""
    if kind == "":
        raise TokenError("missing 'type' field in credentials")
    if kind not in ("service_account", "authorized_user"):
        raise TokenError(f"unknown credential type: {json.dumps(kind)}")
    if kind == "service_account":
        try:
            RSAKey.from_pem(str(info.get("private_key") or ""))
        except ValueError as exc:
            raise TokenError(str(exc)) from None
    return GoogleCredentials(kind, origin, info)


def well_known_file(env: Mapping[str, str]) -> Path:
    """gcloud's application default credentials file."""
    config = env.get("CLOUDSDK_CONFIG")
    if config:
        return Path(config, "application_default_credentials.json")
    home = env.get("HOME") or str(Path.home())
    return Path(home, ".config", "gcloud", "application_default_credentials.json")


async def _metadata_answers(client: httpx.AsyncClient, check: Check) -> bool:
    url = f"http://{METADATA_IP}"
    try:
        check(url)
        response = await client.get(url, timeout=METADATA_TIMEOUT)
    except (httpx.HTTPError, KapaError, OSError):
        return False
    return bool(response.headers.get("Metadata-Flavor") == "Google")


async def find_google_credentials(client: httpx.AsyncClient, check: Check,
                                  env: Mapping[str, str] | None = None) -> GoogleCredentials:
    """The application default credentials (see the module docs); TokenError with
    Go's words when there are none or a named file is unusable."""
    env = os.environ if env is None else env
    named = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if named:
        try:
            return _credentials_file(Path(named), f"GOOGLE_APPLICATION_CREDENTIALS={named}")
        except (OSError, TokenError) as exc:
            reason = f"open {named}: {exc.strerror.lower()}" if isinstance(
                exc, OSError) and exc.strerror else str(exc)
            raise TokenError("google: error getting credentials using "
                             f"GOOGLE_APPLICATION_CREDENTIALS environment variable: "
                             f"{reason}") from None
    known = well_known_file(env)
    try:
        return _credentials_file(known, str(known))
    except FileNotFoundError:
        pass
    except (OSError, TokenError) as exc:
        raise TokenError(f"google: error getting credentials using well-known file "
                         f"({known}): {exc}") from None
    host = env.get("GCE_METADATA_HOST")
    if host:
        return GoogleCredentials("metadata", f"GCE_METADATA_HOST={host}",
                                 metadata_host=host)
    if await _metadata_answers(client, check):
        return GoogleCredentials("metadata", f"http://{METADATA_IP}")
    raise TokenError(f"google: could not find default credentials. See {ADC_HELP} "
                     "for more information.")


# --- Azure

def join_url(base: str, path: str) -> str:
    """``path`` (no leading slash) under ``base`` (with or without a trailing one)."""
    return base.rstrip("/") + "/" + path


@dataclass
class AzureCredentials:
    """A service principal's client-credentials token for ``resource``."""

    tenant_id: str
    client_id: str
    client_secret: str
    authority: str = AZURE_AUTHORITY
    resource: str = AZURE_RESOURCE_MANAGER
    _cache: _Cached = field(default_factory=_Cached, repr=False)
    _lock: trio.Lock = field(default_factory=trio.Lock, repr=False)

    @property
    def token_url(self) -> str:
        return join_url(self.authority,
                        f"{self.tenant_id}/oauth2/token?api-version={AZURE_AD_API_VERSION}")

    async def token(self, client: httpx.AsyncClient, check: Check) -> str:
        async with self._lock:  # concurrent requests wait for one fetch
            if not self._cache.valid():
                await self._fetch(client, check)
            return self._cache.token

    async def _fetch(self, client: httpx.AsyncClient, check: Check) -> None:
        url = self.token_url
        check(url)
        response = await client.post(url, data={
            "client_id": self.client_id, "client_secret": self.client_secret,
            "grant_type": "client_credentials", "resource": self.resource})
        where = (f"azure.ServicePrincipalToken#Refresh: Failure handling response to "
                 f"Service Principal {self.client_id} request")
        if response.status_code != 200:
            raise TokenError(f"{where}: StatusCode={response.status_code} "
                             f"{_body_text(response)}".rstrip())
        try:
            answer = response.json()
            token = str(answer.get("access_token") or "")
        except (ValueError, AttributeError) as exc:
            raise TokenError(f"{where}: {exc}") from None
        if not token:
            raise TokenError(f"{where}: no access_token in the answer")
        now, until = time.time(), float("inf")
        for key, base in (("expires_on", 0.0), ("expires_in", now)):
            try:
                expires = base + float(answer[key])
            except (KeyError, TypeError, ValueError):
                continue
            # a short-lived token is still used for the first half of its life
            until = expires - min(AZURE_EXPIRY_MARGIN, max(expires - now, 0) / 2)
            break
        self._cache = _Cached(token, until)
