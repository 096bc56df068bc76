"""A small synchronous client of Kapacitor's HTTP API, on httpx.

It speaks to kapa-core and to Kapacitor alike, and fails with the words the Go client
(``client/v1``) uses, because the ``kapacitor`` command prints them as they are:

* an answer with an unexpected status whose body is ``{"error": "..."}`` fails with that
  text alone;
* any other unexpected answer fails with ``invalid response: code N: body: ...``;
* a body that is not the JSON expected fails with ``failed to decode JSON: ...``;
* a request that gets no answer fails with ``Get "URL": reason`` (Go's ``url.Error``;
  the reason is worded by Python, see :func:`_transport_reason`).

The base URL may carry ``user:password@``; they become HTTP basic authentication (as Go's
``net/http`` does with a URL's userinfo). As in Go's client, a request replaces the base
URL's path with the API path.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httpx

__all__ = [
    "BASE", "PREVIEW", "APIError", "Client", "StreamResponse", "URLError",
    "go_query",
]

BASE = "/kapacitor/v1"
PREVIEW = "/kapacitor/v1preview"
USER_AGENT = "KapacitorClient"

Params = Mapping[str, str | Sequence[str]]
#: OpenSSL's verify codes for a certificate no trusted authority signed (self-signed,
#: self-signed in the chain, issuer unknown locally, leaf unverifiable).
_UNKNOWN_AUTHORITY = frozenset({18, 19, 20, 21})


class APIError(Exception):
    """A request that failed; ``str()`` is what the ``kapacitor`` client prints."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class URLError(ValueError):
    """The base URL cannot be used (the ``kapacitor`` client exits 4 on it)."""


def go_query(params: Params | None) -> str:
    """A query string as Go's ``url.Values.Encode`` writes it: keys sorted, lists kept."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key in sorted(params):
        value = params[key]
        if isinstance(value, str):
            pairs.append((key, value))
        else:
            pairs.extend((key, item) for item in value)
    return urlencode(pairs, quote_via=quote, safe="")


def _check_url(url: str) -> tuple[str, str, str | None, str | None]:
    """``(scheme, netloc without userinfo, user, password)`` or URLError worded as Go."""
    if url.startswith(":"):
        raise URLError(f'parse "{url}": missing protocol scheme')
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise URLError(f'parse "{url}": net/url: invalid control character in URL')
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise URLError(f'parse "{url}": {exc}') from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLError(f"Unsupported protocol scheme: {parts.scheme}, your address must "
                       "start with http:// or https://")
    netloc = parts.netloc.rpartition("@")[2]
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return scheme, netloc, user, password


def _transport_reason(exc: httpx.TransportError, host: str) -> str:
    """The reason a request got no answer, in words close to Go's ``net`` errors."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return f"dial tcp {host}: connect: connection refused"
        if isinstance(cause, socket.gaierror):
            return f"dial tcp: lookup {host.rpartition(':')[0] or host}: no such host"
        if isinstance(cause, ssl.SSLCertVerificationError):
            if cause.verify_code in _UNKNOWN_AUTHORITY:
                return "x509: certificate signed by unknown authority"
            return f"x509: {cause.verify_message or cause}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "EOF"
    return str(exc) or type(exc).__name__


class StreamResponse:
    """An open streamed answer: its status, headers, length, and its body in pieces."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.headers = response.headers
        length = response.headers.get("Content-Length")
        self.content_length: int | None = int(length) if length and length.isdigit() else None

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return self.response.iter_bytes(chunk_size)

    def iter_lines(self) -> Iterator[str]:
        return self.response.iter_lines()


class Client:
    """One ``httpx.Client`` against one Kapacitor (or kapa-core) base URL.

    ``timeout`` is None (no timeout) by default, as the ``kapacitor`` client has none.
    """

    def __init__(self, url: str, *, skip_verify: bool = False,
                 timeout: float | None = None) -> None:
        scheme, netloc, user, password = _check_url(url)
        self.url = url
        self.scheme = scheme
        self.netloc = netloc
        self.host = netloc if urlsplit(url).port else (
            f"{netloc}:{443 if scheme == 'https' else 80}")
        self.base = f"{scheme}://{netloc}"
        # As Go's net/http shows a URL in an error: the password replaced by ***, the
        # user name unescaped (escaped when there is no password).
        self._userinfo = None if user is None else (
            f"{user}:***@" if password is not None else f"{quote(user, safe='')}@")
        auth = httpx.BasicAuth(user, password or "") if user is not None else None
        self.http = httpx.Client(
            verify=not skip_verify, timeout=httpx.Timeout(timeout), auth=auth,
            headers={"User-Agent": USER_AGENT}, follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URLs --------------------------------------------------------------------------
    def url_for(self, path: str, params: Params | None = None) -> str:
        query = go_query(params)
        return self.base + quote(path, safe="/:@!$&'()*+,;=-._~") + (
            "?" + query if query else "")

    def _shown_url(self, url: str) -> str:
        if self._userinfo is None:
            return url
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{self._userinfo}{rest}"

    # -- requests ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Params | None = None,
                body: Any = None, raw: bytes | None = None,
                codes: Sequence[int] = (200,)) -> httpx.Response:
        """Send one request; fail with the Go client's words unless the status is in
        ``codes``. ``body`` is sent as JSON (``None`` sends no body unless ``raw``)."""
        url = self.url_for(path, params)
        headers = {}
        content: bytes | None = raw
        if body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.http.request(method, url, content=content, headers=headers)
        except httpx.TransportError as exc:
            verb = method[:1] + method[1:].lower()
            raise APIError(f'{verb} "{self._shown_url(url)}": '
                           f"{_transport_reason(exc, self.host)}") from None
        if response.status_code not in codes:
            raise decode_error(response)
        return response

    def json(self, method: str, path: str, *, params: Params | None = None,
             body: Any = None, raw: bytes | None = None,
             codes: Sequence[int] = (200,)) -> Any:
        response = self.request(method, path, params=params, body=body, raw=raw,
                                codes=codes)
        if response.status_code == 204:
            return None  # the Go client decodes no body it does not expect
        return decode_json(response.content)

    def get(self, path: str, params: Params | None = None,
            codes: Sequence[int] = (200,)) -> Any:
        return self.json("GET", path, params=params, codes=codes)

    def post(self, path: str, body: Any = None, codes: Sequence[int] = (200,),
             raw: bytes | None = None) -> Any:
        return self.json("POST", path, body=body, raw=raw, codes=codes)

    def patch(self, path: str, body: Any = None, codes: Sequence[int] = (200,)) -> Any:
        return self.json("PATCH", path, body=body, codes=codes)

    def put(self, path: str, body: Any = None, codes: Sequence[int] = (200,)) -> Any:
        return self.json("PUT", path, body=body, codes=codes)

    def delete(self, path: str, codes: Sequence[int] = (204,)) -> None:
        self.request("DELETE", path, codes=codes)

    @contextmanager
    def stream(self, method: str, path: str, *, params: Params | None = None,
               body: Any = None, codes: Sequence[int] | None = None
               ) -> Iterator[StreamResponse]:
        """Send a request and give its answer unread, to be consumed in pieces.

        With ``codes`` None any 2xx status is accepted; otherwise the status must be
        one of ``codes``. A refused status fails as Go's ``Logs`` does
        (``bad status code N``) when ``codes`` is None, or with the API's error text.
        """
        url = self.url_for(path, params)
        headers = {}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            with self.http.stream(method, url, content=content, headers=headers) as resp:
                if codes is None:
                    if resp.status_code // 100 != 2:
                        raise APIError(f"bad status code {resp.status_code}",
                                       resp.status_code)
                elif resp.status_code not in codes:
                    resp.read()
                    raise decode_error(resp)
                yield StreamResponse(resp)
        except httpx.TransportError as exc:
            verb = method[:1] + method[1:].lower()
            raise APIError(f'{verb} "{self._shown_url(url)}": '
                           f"{_transport_reason(exc, self.host)}") from None


def decode_error(response: httpx.Response) -> APIError:
    """The Go client's ``decodeError``: the API's ``error`` text, or the whole answer."""
    body = response.content
    message = ""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), str):
        message = decoded["error"]
    if not message:
        message = (f"invalid response: code {response.status_code}: body: "
                   f"{body.decode('utf-8', 'replace')}")
    return APIError(message, response.status_code)


def decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        if not body.strip():
            raise APIError("failed to decode JSON: EOF") from None
        raise APIError(f"failed to decode JSON: {exc}") from None
