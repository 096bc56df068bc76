"""HTTP POST: the [[httppost]] section (named endpoints) and the ``post`` handler."""

from __future__ import annotations

import os
from collections.abc import Sequence
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

from . import http11


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
        #: the URL when it is a plain text (no template action): nothing to render
        self.url = url if "{{" not in url else None
        self.headers = {"Content-Type": "application/json"}
        self.auth: tuple[str, str] | None = None
        if self.endpoint is not None:
            self.headers.update(self.endpoint.headers)
            if self.endpoint.basic_auth.username:
                self.auth = (self.endpoint.basic_auth.username,
                             self.endpoint.basic_auth.password)
        self.headers.update(options.headers)
        self.http11 = http11.Client11()

    async def handle(self, event: Event) -> None:
        (outcome,) = await self.handle_batch([event])
        if outcome is not None:
            raise outcome

    async def handle_batch(self, events: Sequence[Event]) -> list[Exception | None]:
        """POST each event, in order, one request each; one outcome per event (None:
        delivered). Plain-HTTP requests to one origin are pipelined on a kept-alive
        connection (http11); the others go through httpx one at a time."""
        outcomes: list[Exception | None] = [None] * len(events)
        timeout = self.options.timeout / 1e9 or 30.0
        direct = not http11.proxied()
        run: list[tuple[int, str, bytes]] = []  # (index, url, wire) for one origin
        origin: tuple[str, int] | None = None
        for index, event in enumerate(events):
            try:
                url, headers, auth, body = self._request(event)
            except Exception as exc:  # a template or the deny list refused it
                outcomes[index] = exc
                continue
            prepared = http11.prepare(url, headers, body, auth) if direct else None
            if run and (prepared is None or prepared.origin != origin):
                await self._pipeline(origin, run, timeout, outcomes)
                run = []
            if prepared is None:
                outcomes[index] = await self._send(url, headers, auth, body, timeout)
            else:
                origin = prepared.origin
                run.append((index, url, prepared.wire))
        if run:
            await self._pipeline(origin, run, timeout, outcomes)
        return outcomes

    def _request(self, event: Event
                 ) -> tuple[str, dict[str, str], tuple[str, str] | None, bytes]:
        """URL, headers, basic auth and body of the event's POST (the URL checked
        against the deny list)."""
        data = None
        if self.url is None or self.body_template is not None:
            data = event.alert_template_data()  # Kapacitor's alert.Data, URL and body
        url = self.url if self.url is not None else self.url_template.execute(data)
        self.context.check_outgoing(url)
        # The alert JSON ends with a newline, as Go's json.Encoder writes it; a template's
        # output is sent as it is.
        body = self.body_template.execute(data) if self.body_template else \
            event.json() + "\n"
        return url, self.headers, self.auth, body.encode()

    async def _pipeline(self, origin: tuple[str, int] | None,
                        run: list[tuple[int, str, bytes]], timeout: float,  # noqa: ASYNC109
                        outcomes: list[Exception | None]) -> None:
        assert origin is not None
        answers = await self.http11.pipeline(origin, [wire for _, _, wire in run], timeout)
        for (index, url, _), answer in zip(run, answers, strict=True):
            if isinstance(answer, http11.HTTP11Error):
                outcomes[index] = HandlerError(f"post: {url}: {answer}")
            elif answer.is_error:
                outcomes[index] = self._refused(url, answer.status, answer.text)

    async def _send(self, url: str, headers: dict[str, str],
                    auth: tuple[str, str] | None, body: bytes,
                    timeout: float) -> Exception | None:  # noqa: ASYNC109
        """One POST through the shared httpx client: TLS, proxies and unusual URLs."""
        try:
            client = self.context.http_client(self.tls, timeout)
            response = await client.request("POST", url, content=body, headers=headers,
                                            auth=auth)
        except httpx.HTTPError as exc:
            return HandlerError(f"post: {url}: {exc}")
        except Exception as exc:  # a TLS file that cannot be loaded, the service stopping
            return exc
        if response.is_error:
            return self._refused(url, response.status_code, response.text)
        return None

    def _refused(self, url: str, status: int, text: str) -> HandlerError:
        detail = f": {text[:500]}" if self.options.capture_response else ""
        return HandlerError(f"post: {url} answered {status}{detail}")

    def close(self) -> None:
        self.http11.close()


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="post", options=PostOptions, factory=PostHandler,
                        section="httppost", args=("url",),
                        doc="POST alert JSON to a URL or a [[httppost]] endpoint.")]
