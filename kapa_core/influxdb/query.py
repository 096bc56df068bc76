"""Running an InfluxQL query on a cluster: ``POST /query`` and its JSON answer.

As Kapacitor's client does, the statement goes in the ``q`` URL parameter of a POST
with an empty ``db`` (batch queries name their measurements fully, ``"db"."rp"."m"``).
Times are asked for as integer nanoseconds (``epoch=ns``), so no RFC3339 parsing is
needed and no precision is lost.

Two kinds of failure are told apart, because they are counted apart:

* :class:`~kapa_core.influxdb.client.ConnectionFailed` — InfluxDB could not be reached
  (refused, reset, timed out, TLS failure); the client moves on to its next URL;
* :class:`QueryFailed` — InfluxDB answered but with an error: a bad query, an unknown
  database, failed authorization (HTTP 401/403), a server error, or a body that is not
  the JSON of a query result. An error in any statement's result fails the whole query,
  as in Kapacitor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from kapa_core.errors import KapaError
from kapa_core.influxdb.client import ClusterClient, ConnectionFailed, _explain, error_text


class QueryFailed(KapaError):
    """InfluxDB answered a query with an error; the message is InfluxDB's."""


@dataclass(frozen=True)
class Series:
    """One series of a statement's result (InfluxQL's ``models.Row``)."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    values: list[list[Any]] = field(default_factory=list)






def parse_response(body: Any) -> list[list[Series]]:
    """The series of each statement of a decoded ``/query`` answer; QueryFailed on an
    error anywhere or on an unexpected shape."""
    if not isinstance(body, dict):
        raise QueryFailed("unexpected query response: not a JSON object")
    if body.get("error"):
        raise QueryFailed(str(body["error"]))
    results = body.get("results")
    if not isinstance(results, list):
        raise QueryFailed("unexpected query response: no results")
    out: list[list[Series]] = []
    for result in results:
        if not isinstance(result, dict):
            raise QueryFailed("unexpected query response: a result is not an object")
        if result.get("error"):
            raise QueryFailed(str(result["error"]))
        series = []
        for row in result.get("series") or ():
            try:
                series.append(Series(str(row.get("name", "")), dict(row.get("tags") or {}),
                                     list(row["columns"]), list(row.get("values") or ())))
            except (AttributeError, KeyError, TypeError) as exc:
                raise QueryFailed(f"unexpected series in query response: {exc}") from None
        out.append(series)
    return out


async def run_query(client: ClusterClient, statement: str, *, database: str = "",
                    retention_policy: str = "", epoch: str = "ns") -> list[list[Series]]:
    """Run ``statement`` on the client's current URL; see the module doc for errors.

    ``database``/``retention_policy`` only matter to measurements the query does not
    qualify (``FROM cpu``); a ``"db"."rp"."m"`` name always wins."""
    if client.http is None:
        raise ConnectionFailed("the InfluxDB client is closed")
    url = client.url
    params = {"q": statement, "db": database}
    if retention_policy:
        params["rp"] = retention_policy
    if epoch:
        params["epoch"] = epoch
    try:
        response = await client.http.post(url + "/query", params=params)
    except httpx.HTTPError as exc:
        client.next_url()
        raise ConnectionFailed(_explain(url, exc)) from None
    if response.status_code in (401, 403):
        raise QueryFailed(f"{url}: authorization failed ({error_text(response)}): check "
                          "username/password (or token)")
    if response.status_code != 200:
        raise QueryFailed(f"{url} answered HTTP {response.status_code}: "
                          f"{error_text(response)}")
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise QueryFailed(f"unable to decode the query response as JSON: {exc}") from None
    return parse_response(body)
