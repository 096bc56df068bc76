"""The web console (a kapa-core addition): its files under ``/console/``, and the two
small endpoints it reads besides Kapacitor's own API.

- ``GET /console/`` and ``GET /console/<file>``: the page and its assets, read once from
  ``kapa_core/http/console/`` (package data). Only files that are there are served; any
  other name is a 404, so no path can reach outside the folder. The files need no
  credentials, even with ``[http] auth-enabled``: they hold no data, and the page must
  load to show its login form. Every call the page then makes goes through the API and
  its authorization.
- Caching: ``Cache-Control: no-cache`` with a strong ``ETag`` (a hash of the content),
  so a browser revalidates each file and gets a 304 while it is unchanged, and never
  runs an old script after an upgrade.
- Every console response has a Content-Security-Policy that lets the page load only
  the daemon's own scripts and styles and talk only to the daemon (no inline script,
  no external host), and forbids framing.
- ``GET /kapacitor/v1/me``: who the request is authenticated as and what they may do,
  so the page offers only what the API would allow (the API enforces it regardless).
  Any authenticated user may ask (see :mod:`kapa_core.auth.permissions`); asked with no
  credentials at all while authentication is on, it answers ``"authenticated": false``
  (the page then shows its login form).
- ``GET /kapacitor/v1/about``: version, start time, uptime, identity, the line-protocol
  parser in use and the loaded plugins with their versions (``api`` permission).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from kapa_core.auth.principal import Principal
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

PREFIX = "/console"
ME_PATH = "/kapacitor/v1/me"
ABOUT_PATH = "/kapacitor/v1/about"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [("content-security-policy", CONTENT_SECURITY_POLICY),
                    ("x-content-type-options", "nosniff"),
                    ("referrer-policy", "no-referrer"),
                    ("x-frame-options", "DENY")]
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(package: str = "kapa_core.http", folder: str = "console") -> dict[str, Asset]:
    """Every file of the console folder, by name (``index.html`` also as ``""``)."""
    out: dict[str, Asset] = {}
    root = resources.files(package).joinpath(folder)
    for entry in root.iterdir():
        name = entry.name
        suffix = name[name.rfind("."):] if "." in name else ""
        if not entry.is_file() or suffix not in TYPES:
            continue
        body = entry.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:20]
        out[name] = Asset(body, TYPES[suffix], f'"{digest}"')
    if "index.html" in out:
        out[""] = out["index.html"]
    return out


def principal_json(principal: Principal | None, *, anonymous: bool = False
                   ) -> dict[str, Any]:
    """``/me``'s answer: with authentication off everyone may do everything; with it on
    and no credentials given, nobody is logged in (and may do nothing)."""
    if anonymous:
        return {"auth": True, "authenticated": False, "username": "", "admin": False,
                "permissions": []}
    if principal is None:
        return {"auth": False, "authenticated": False, "username": "", "admin": True,
                "permissions": ["all"]}
    return {"auth": True, "authenticated": True, "username": principal.name,
            "admin": principal.admin, "permissions": sorted(principal.permissions)}


class ConsoleAPI:
    """``about`` builds ``/about``'s answer (the daemon knows its plugins and uptime)."""

    def __init__(self, about: Callable[[], dict[str, Any]],
                 assets: dict[str, Asset] | None = None) -> None:
        self.about_json = about
        self.assets = load_assets() if assets is None else assets

    def register(self, router: Router) -> None:
        router.add(["GET", "HEAD"], PREFIX, self.redirect)
        router.add(["GET", "HEAD"], PREFIX + "/", self.file)
        router.add(["GET", "HEAD"], PREFIX + "/{name}", self.file)
        router.add("GET", ME_PATH, self.me)
        router.add("GET", ABOUT_PATH, self.about)

    async def redirect(self, request: Request) -> Response:
        return Response(301, [("location", PREFIX + "/"), *SECURITY_HEADERS], b"")

    async def file(self, request: Request) -> Response:
        asset = self.assets.get(request.params.get("name", ""))
        if asset is None:
            return Response(404, [("content-type", "text/plain; charset=utf-8"),
                                  *SECURITY_HEADERS], b"404 page not found\n")
        headers = [("cache-control", "no-cache"), ("etag", asset.etag), *SECURITY_HEADERS]
        if asset.etag in _tags(request.header("if-none-match")):
            return Response(304, headers, b"")
        return Response(200, [("content-type", asset.content_type), *headers], asset.body)

    async def me(self, request: Request) -> Response:
        principal = request.context.get("principal")
        return Response.json(principal_json(
            principal if isinstance(principal, Principal) else None,
            anonymous=bool(request.context.get("anonymous"))))

    async def about(self, request: Request) -> Response:
        return Response.json(self.about_json())


def _tags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def is_console_path(path: str) -> bool:
    """The paths whose files are served without credentials."""
    return path == PREFIX or path.startswith(PREFIX + "/")
