"""HTTP POST: the [[httppost]] section (named endpoints) and the ``post`` handler."""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Duration,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    TemplateError,
    hookimpl,
    option,
    parse_template,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class BasicAuth:
    username: str = ""
    password: str = ""


@dataclass(frozen=True, kw_only=True)
class HTTPPostConfig:
    endpoint: str = "example"
    url: str = setting("http://example.com", doc="A Go template since Kapacitor 1.5.7.")
    headers: dict[str, str] = setting({})
    basic_auth: BasicAuth = setting(default_factory=BasicAuth, redact=True)
    alert_template: str = ""
    alert_template_file: str = ""
    row_template: str = ""
    row_template_file: str = ""

    def validate(self) -> None:
        if not self.endpoint:
            raise ConfigError("endpoint", "must be set")
        if not self.url:
            raise ConfigError("url", "must be set")
        if self.alert_template and self.alert_template_file:
            raise ConfigError("alert-template", "cannot set both alert-template and "
                              "alert-template-file")
        if self.row_template and self.row_template_file:
            raise ConfigError("row-template", "cannot set both row-template and "
                              "row-template-file")
        # refused by Kapacitor 1.5.7 as well: a URL template that does not parse, a
        # template file given by a relative path
        try:
            parse_template(self.url, "url")
        except TemplateError as exc:
            raise ConfigError("url", f"invalid URL template syntax {self.url!r}: {exc}"
                              ) from None
        for key, path in (("alert-template-file", self.alert_template_file),
                          ("row-template-file", self.row_template_file)):
            if path and not os.path.isabs(path):
                raise ConfigError(key, f"must use an absolute path for {key}")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="httppost", schema=HTTPPostConfig, multiple=True,
                    element_key="endpoint", default_elements=1,
                    check=unique_elements("endpoint"),
                    doc="Named HTTP endpoints for the post handler and httpPost node.")]


@dataclass(frozen=True, kw_only=True)
class PostOptions:
    """``.post('http://…').header('k', 'v').captureResponse().timeout(10s)``."""

    url: str = ""
    endpoint: str = ""
    headers: dict[str, str] = option(default_factory=dict, tick="header")
    capture_response: bool = False
    timeout: Duration = Duration(0)
    skip_ssl_verification: bool = option(False, tick="skipSSLVerification")



class PostHandler:
    """POSTs the alert JSON (or the endpoint's alert-template) to a URL."""

    def __init__(self, options: PostOptions,
                 context: HandlerContext[tuple[HTTPPostConfig, ...] | None, object]) -> None:
        self.options = options
        self.context = context
        # As Kapacitor: a configured endpoint wins (its URL, headers, auth and template),
        # else the URL given, else no handler.
        endpoints = {e.endpoint: e for e in (context.config or ())}
        self.endpoint = endpoints.get(options.endpoint)
        if self.endpoint is None and not options.url:
            raise HandlerError("An appropriately formatted url must be specified if an "
                               "endpoint is not specified")
        url = self.endpoint.url if self.endpoint is not None else options.url
        self.url_template = parse_template(url, "url")
        self.body_template = None
        self.tls = TLS(insecure_skip_verify=options.skip_ssl_verification)
        if self.endpoint is not None:
            text = self.endpoint.alert_template
            if self.endpoint.alert_template_file:
                with open(self.endpoint.alert_template_file, encoding="utf-8") as f:
                    text = f.read()
            if text:
                self.body_template = parse_template(text, "alert-template")

    async def handle(self, event: Event) -> None:
        data = event.alert_template_data()  # Kapacitor's alert.Data, for URL and body
        url = self.url_template.execute(data)
        self.context.check_outgoing(url)
        headers = {"Content-Type": "application/json"}
        auth = None
        if self.endpoint is not None:
            headers.update(self.endpoint.headers)
            if self.endpoint.basic_auth.username:
                auth = (self.endpoint.basic_auth.username, self.endpoint.basic_auth.password)
        headers.update(self.options.headers)
        # The alert JSON ends with a newline, as Go's json.Encoder writes it; a template's
        # output is sent as it is.
        body = self.body_template.execute(data) if self.body_template else \
            event.json() + "\n"
        timeout = self.options.timeout / 1e9 or 30.0
        client = self.context.http_client(self.tls, timeout)
        try:
            response = await client.request("POST", url, content=body.encode(),
                                            headers=headers, auth=auth)
        except httpx.HTTPError as exc:
            raise HandlerError(f"post: {url}: {exc}") from None
        if response.is_error:
            detail = f": {response.text[:500]}" if self.options.capture_response else ""
            raise HandlerError(f"post: {url} answered {response.status_code}{detail}")


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="post", options=PostOptions, factory=PostHandler,
                        section="httppost", args=("url",),
                        doc="POST alert JSON to a URL or a [[httppost]] endpoint.")]
