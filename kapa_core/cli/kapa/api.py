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

import ipaddress
import json
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httpx

from kapa_core.cli.kapa.flags import go_quote

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


_HOST_CHARS = frozenset("-._~!$&'()*+,;=:[]<>\"%")


class _Parsed:
    def __init__(self, scheme: str, netloc: str, host: str, port: str,
                 user: str | None, password: str | None) -> None:
        self.scheme, self.netloc, self.host, self.port = scheme, netloc, host, port
        self.user, self.password = user, password


def _check_url(url: str) -> _Parsed:
    """The parts of the base URL, or URLError worded as Go's ``url.Parse`` and the
    client's scheme check."""
    if url.startswith(":"):
        raise URLError(f'parse "{url}": missing protocol scheme')
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise URLError(f'parse "{url}": net/url: invalid control character in URL')
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise URLError(f'parse "{url}": {exc}') from None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise URLError(f'parse "{url}": missing \']\' in host')
        host, port_part = hostport[:end + 1], hostport[end + 1:]
    else:
        colon = hostport.rfind(":")
        host, port_part = (hostport[:colon], hostport[colon:]) if colon >= 0 else (
            hostport, "")
    if port_part and (port_part[0] != ":" or not port_part[1:].isdigit() and port_part[1:]):
        raise URLError(f'parse "{url}": invalid port {go_quote(port_part)} after host')
    for c in host.strip("[]") if host.startswith("[") else host:
        if not (c.isascii() and c.isalnum()) and c not in _HOST_CHARS and c.isascii():
            raise URLError(f'parse "{url}": invalid character {go_quote(c)} in host name')
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise URLError(f"Unsupported protocol scheme: {parts.scheme}, your address must "
                       "start with http:// or https://")
    user: str | None = None
    password: str | None = None
    if userinfo:
        name, has_password, secret = userinfo.partition(":")
        user = unquote(name)
        password = unquote(secret) if has_password else None
    port = port_part[1:] or ("443" if scheme == "https" else "80")
    return _Parsed(scheme, hostport, host, port, user, password)


def _verb(method: str) -> str:
    return method[:1] + method[1:].lower()


def _dial_address(host: str, port: str) -> str:
    """``host:port`` as Go's dialer names it: a name resolved to its first address."""
    try:
        ipaddress.ip_address(host)
        address = host
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            inet4 = [i for i in infos if i[0] == socket.AF_INET]
            address = str((inet4 or infos)[0][4][0])
        except (OSError, IndexError, ValueError):
            address = host
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _nameserver() -> str:
    """The first name server of /etc/resolv.conf as Go's resolver names it
    (``10.0.0.1:53``), or ""."""
    try:
        with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    return f"[{fields[1]}]:53" if ":" in fields[1] else f"{fields[1]}:53"
    except OSError:
        pass
    return ""


def _transport_reason(exc: httpx.TransportError, host: str, port: str) -> str:
    """The reason a request got no answer, in words close to Go's ``net`` errors."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return f"dial tcp {_dial_address(host, port)}: connect: connection refused"
        if isinstance(cause, socket.gaierror):
            server = _nameserver()
            where = f" on {server}" if server else ""
            return f"dial tcp: lookup {host}{where}: no such host"
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
        parsed = _check_url(url)
        scheme, netloc, user, password = (parsed.scheme, parsed.netloc, parsed.user,
                                          parsed.password)
        self.url = url
        self.scheme = scheme
        self.netloc = netloc
        self.host = f"{parsed.host}:{parsed.port}"
        self._hostname = parsed.host.strip("[]")
        self._port = parsed.port
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

    def _check_port(self, method: str, url: str) -> None:
        if int(self._port) > 65535:
            raise APIError(f'{_verb(method)} "{self._shown_url(url)}": dial tcp: address '
                           f"{self._port}: invalid port")

    def _failure(self, method: str, url: str, exc: httpx.TransportError) -> APIError:
        return APIError(f'{_verb(method)} "{self._shown_url(url)}": '
                        f"{_transport_reason(exc, self._hostname, self._port)}")

    # -- requests ----------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: Params | None = None,
                body: Any = None, raw: bytes | None = None,
                codes: Sequence[int] = (200,)) -> httpx.Response:
        """Send one request; fail with the Go client's words unless the status is in
        ``codes``. ``body`` is sent as JSON (``None`` sends no body unless ``raw``)."""
        url = self.url_for(path, params)
        self._check_port(method, url)
        headers = {}
        content: bytes | None = raw
        if body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.http.request(method, url, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise self._failure(method, url, exc) from None
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
        self._check_port(method, url)
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
            raise self._failure(method, url, exc) from None


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
