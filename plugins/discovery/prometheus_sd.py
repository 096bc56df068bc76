"""What the discoverers share with Prometheus' service discovery code, which they follow:
addresses as Go joins them, label names as Prometheus sanitizes them, JSON fields as Go
matches them, and failures as the logs show them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import DiscoveryContext, KapaError, TargetGroup

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def join_host_port(host: str, port: object) -> str:
    """Go's ``net.JoinHostPort``: brackets around a host holding a colon."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def sanitize_label_name(name: str) -> str:
    """Prometheus' ``strutil.SanitizeLabelName``: every character other than a letter,
    a digit or ``_`` becomes ``_``."""
    return _INVALID_LABEL_CHARS.sub("_", name)


def go_field(obj: Mapping[str, Any], name: str) -> Any:
    """``obj[name]`` matched as Go's encoding/json matches struct fields: the exact key,
    else the first key equal ignoring case; None when absent."""
    if name in obj:
        return obj[name]
    folded = name.casefold()
    for key, value in obj.items():
        if key.casefold() == folded:
            return value
    return None


def describe(exc: BaseException, *own: type[BaseException]) -> str:
    """A failure as a log line shows it: our own errors (``own`` and KapaError) by their
    message, the library's by exception type and text (an httpx error often has no text
    of its own: then its first cause that has)."""
    text, cause = str(exc), exc.__cause__ or exc.__context__
    while not text and cause is not None:
        text, cause = str(cause), cause.__cause__ or cause.__context__
    if isinstance(exc, (KapaError, *own)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def get_json(client: httpx.AsyncClient, url: str, error: type[Exception], *,
                   headers: Mapping[str, str] | None = None, server_name: str = "",
                   not_json: str = "") -> Any:
    """The decoded JSON answer to a GET of ``url`` (SNI ``server_name`` when set);
    ``error`` naming the URL when the request fails or the status is not 2xx, and with
    ``not_json`` (default ``<url>: the answer is not JSON``) when the body is no JSON."""
    extensions = {"sni_hostname": server_name} if server_name else None
    try:
        response = await client.get(url, headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        raise error(f"GET {url}: {describe(exc, error)}") from exc
    if not 200 <= response.status_code < 300:
        raise error(f"{url}: unexpected response code {response.status_code}: "
                    f"{response.text[:200]}")
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise error(f"{not_json or url + ': the answer is not JSON'}: {exc}") from None


async def refresh_every(context: DiscoveryContext,
                        refresh: Callable[[], Awaitable[Iterable[TargetGroup]]],
                        interval: float, failure: str,
                        errors: tuple[type[Exception], ...] = (Exception,),
                        text: Callable[[BaseException], str] = str) -> None:
    """Prometheus' refresh loop: ``refresh()`` at once and then at every tick of
    ``interval`` seconds, its groups published in place of the previous ones; ticks a
    slow refresh missed are dropped, as Go's ticker drops them (a failing API is not
    asked again back to back). A refresh failing with one of ``errors`` is logged as
    ``failure`` (``text(exc)`` as its ``err``) and the previous groups stay."""
    next_run = trio.current_time()
    while True:
        try:
            groups = await refresh()
        except errors as exc:
            context.log.error(failure, err=text(exc))
        else:
            context.update(groups, replace=True)
        next_run += interval
        now = trio.current_time()
        if next_run <= now:
            next_run += math.floor((now - next_run) / interval + 1) * interval
        await trio.sleep_until(next_run)


__all__ = ["describe", "get_json", "go_field", "join_host_port", "refresh_every",
           "sanitize_label_name"]
