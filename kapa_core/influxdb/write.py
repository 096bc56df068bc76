"""Writing line protocol to an InfluxDB cluster and running management statements.

Functions over a :class:`~kapa_core.influxdb.client.ClusterClient` (its
``httpx.AsyncClient`` carries the credentials, TLS and timeout of the ``[[influxdb]]``
element):

* :func:`write` POSTs a body of line protocol to
  ``/write?consistency=&db=&precision=&rp=`` (every parameter, empty or not, in that
  order, as Kapacitor 1.5.7's client sends them) with ``Content-Type:
  application/octet-stream``, gzip-compressed (``Content-Encoding: gzip``) unless the
  element says ``compression = "none"``;
* :func:`query` POSTs one InfluxQL statement to ``/query?db=&q=`` and returns its results;
* :func:`create_database` issues ``CREATE DATABASE db [WITH NAME rp]`` as Kapacitor's
  ``influxDBOut().create()`` does, the names quoted only where InfluxQL needs it
  (nothing happens when the database and retention policy exist already).

Failures raise :class:`WriteFailed` whose ``retry`` says whether trying the same request
later can help: the cluster could not be reached, timed out or answered 5xx/429
(retry), or it refused the request with another 4xx (database not found, bad
credentials, a field type conflict) or said the retention policy does not exist:
retrying cannot help. A transport failure moves the client on to the element's next
URL, as ``ping`` does.
"""

from __future__ import annotations

import gzip
import re
from typing import Any

import httpx
import trio

from kapa_core.errors import KapaError
from kapa_core.influxdb.client import ClusterClient, error_text
from kapa_core.influxdb.select_query import _KEYWORDS

#: Bodies at least this large are compressed in a worker thread (zlib releases the GIL),
#: so that the event loop, and the tasks' nodes on it, keep running meanwhile.
THREADED_GZIP = 256 * 1024
GZIP_LEVEL = 6  # Go's and zlib's default level
_DROPPED = re.compile(r"dropped=(\d+)")


class WriteFailed(KapaError):
    """A write or query that InfluxDB did not accept; ``retry`` when it may later."""

    def __init__(self, message: str, *, retry: bool, status: int = 0,
                 dropped: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status
        #: for a partial write, how many points InfluxDB says it dropped
        self.dropped = dropped








def _raise_for(url: str, response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 300:
        return
    text = error_text(response)
    # InfluxDB 1.x answers a missing retention policy with a 500; like a missing
    # database (404) it will not fix itself by retrying.
    retry = (status >= 500 or status == 429) and "retention policy not found" not in text
    dropped = None
    if "partial write" in text:
        match = _DROPPED.search(text)
        dropped = int(match.group(1)) if match else None
    if status == 401:
        text = f"authorization failed ({text}): check username/password (or token)"
    raise WriteFailed(f"{what} to {url} answered HTTP {status}: {text}", retry=retry,
                      status=status, dropped=dropped)


async def compress(body: bytes) -> bytes:
    """gzip ``body``; large bodies in a worker thread."""
    if len(body) < THREADED_GZIP:
        return gzip.compress(body, GZIP_LEVEL)
    return await trio.to_thread.run_sync(gzip.compress, body, GZIP_LEVEL)


async def write(client: ClusterClient, body: bytes, *, database: str,
                retention_policy: str = "", precision: str = "",
                consistency: str = "") -> None:
    """POST ``body`` (line protocol) to the cluster's ``/write``; raises WriteFailed."""
    if client.http is None:
        raise WriteFailed("the InfluxDB client is closed", retry=True)
    params = {"consistency": consistency, "db": database, "precision": precision,
              "rp": retention_policy}
    headers = {"Content-Type": "application/octet-stream"}
    if client.config.compression != "none":
        body = await compress(body)
        headers["Content-Encoding"] = "gzip"
    url = client.url
    try:
        response = await client.http.post(url + "/write", params=params, content=body,
                                          headers=headers)
    except httpx.HTTPError as exc:
        client.next_url()
        raise WriteFailed(f"write to {url} failed: {_describe(exc)}", retry=True) from None
    _raise_for(url, response, "write")


async def query(client: ClusterClient, command: str, *, database: str = "") -> list[Any]:
    """POST one InfluxQL statement to ``/query``; its ``results``, or WriteFailed."""
    if client.http is None:
        raise WriteFailed("the InfluxDB client is closed", retry=True)
    params = {"db": database, "q": command}
    url = client.url
    try:
        response = await client.http.post(url + "/query", params=params)
    except httpx.HTTPError as exc:
        client.next_url()
        raise WriteFailed(f"query to {url} failed: {_describe(exc)}", retry=True) from None
    _raise_for(url, response, "query")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise WriteFailed(f"query to {url}: the answer is not InfluxDB JSON: "
                          f"{response.text[:200]!r}", retry=False)
    if payload.get("error"):
        raise WriteFailed(f"query to {url}: {payload['error']}", retry=False)
    results = payload.get("results") or []
    for result in results:
        if isinstance(result, dict) and result.get("error"):
            raise WriteFailed(f"{command}: {result['error']}", retry=False)
    return list(results)


#: Words InfluxQL reads as keywords (its parser's list, and the literals true and false).
_RESERVED = _KEYWORDS | {"true", "false"}


def influxql_ident(name: str) -> str:
    """``name`` as InfluxQL's QuoteIdent writes it: bare when it is an identifier (a
    letter or ``_``, then ASCII letters, digits and ``_``, not a keyword), else between
    double quotes with backslash, quote and newline escaped."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    bare = name[:1].isascii() and (name[:1].isalpha() or name[:1] == "_") and all(
        c.isascii() and (c.isalnum() or c == "_") for c in name)
    return escaped if bare and name.lower() not in _RESERVED else f'"{escaped}"'


def create_database_statement(database: str, retention_policy: str = "") -> str:
    statement = f"CREATE DATABASE {influxql_ident(database)}"
    if retention_policy:
        statement += f" WITH NAME {influxql_ident(retention_policy)}"
    return statement


async def create_database(client: ClusterClient, database: str,
                          retention_policy: str = "") -> None:
    """Create the database (and, if named, a retention policy that becomes its default
    when the database is new); nothing happens for existing ones."""
    await query(client, create_database_statement(database, retention_policy))


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({text})"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {text} (is InfluxDB running and the URL right?)"
    return text
