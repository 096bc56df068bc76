"""Email: the [smtp] section and the ``email`` handler (topic kind ``smtp``).

As Kapacitor sends it: subject = the alert message, an HTML body = the alert details,
From = ``[smtp] from``, To = the handler's addresses or ``[smtp] to``; STARTTLS when the
server offers it, login when a username is set.

The message is written as Kapacitor's mail library (gomail) writes it: headers
``Mime-Version: 1.0``, ``Date`` (RFC 1123 with a numeric zone), ``From``, ``To`` (the
addresses joined with ", "), ``Subject``, ``Content-Type: text/html; charset=UTF-8`` and
``Content-Transfer-Encoding: quoted-printable``, header values that are not printable
ASCII as RFC 2047 Q encoded-words (``=?UTF-8?q?...?=``), and the body in Go's
quoted-printable (CRLF line ends, soft breaks before 76 columns). The envelope sender
and recipients are the addresses of From and To (each recipient once); the client
greets with ``EHLO localhost`` as Go's does.

``.toTemplates('{{ index .Tags "owner" }}@example.com')`` (topic-handler option
``to-field``, Kapacitor 1.6.3+) adds addresses rendered from the alert: each template
that renders to a non-empty text adds one recipient to ``.to()``'s. ``[smtp] toTemplates``
are used, like ``[smtp] to``, when the handler names no recipients of its own.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses, parseaddr

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    Template,
    TemplateError,
    hookimpl,
    option,
    option_template,
    setting,
)


@dataclass(frozen=True, kw_only=True)
class SMTPConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 25
    username: str = ""
    password: str = setting("", redact=True)
    no_verify: bool = setting(False, doc="Skip TLS certificate verification.")
    global_: bool = False
    state_changes_only: bool = False
    from_: str = setting("", doc="From address of outgoing mail.")
    to: list[str] = setting([])
    idle_timeout: Duration = Duration(30_000_000_000)
    to_templates: list[str] = setting([], key="toTemplates", doc="Templated addresses, "
                                      "used when a handler names no recipients.")

    def validate(self) -> None:
        for i, text in enumerate(self.to_templates):
            option_template(text, f"toTemplates[{i}]", "smtp")
        if self.idle_timeout < 0:  # Kapacitor refuses it even when disabled
            raise ConfigError("idle-timeout", "must not be negative (idle timeout must be "
                              "positive)")
        if self.enabled:
            if not self.host:
                raise ConfigError("host", "must be set when enabled = true")
            if not 0 < self.port <= 65535:
                raise ConfigError("port", f"invalid port {self.port} (expected 1-65535)")
        # Kapacitor's checks of the addresses, after host and port, made on every change
        # (a config override that enables the section without a from address is refused).
        if self.enabled and not self.from_:
            raise ConfigError("from", "must provide a 'from' address")
        if self.from_ and "@" not in self.from_:
            raise ConfigError("from", f"invalid from email address: {json.dumps(self.from_)}")
        for address in self.to:
            if "@" not in address:
                raise ConfigError("to", f"invalid to email address: {json.dumps(address)}")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="smtp", schema=SMTPConfig, doc="Send alerts by email.")]


@dataclass(frozen=True, kw_only=True)
class EmailOptions:
    to: tuple[str, ...] = ()
    to_templates: tuple[str, ...] = option((), tick="toTemplates", key="to-field",
                                           doc="Go templates rendering more addresses.")

    def validate(self) -> None:
        _parse(self.to_templates, "to-field")


def _parse(texts: Iterable[str], name: str) -> list[Template]:
    return [option_template(text, f"{name}[{i}]", "email") for i, text in enumerate(texts)]


class EmailHandler:
    def __init__(self, options: EmailOptions,
                 context: HandlerContext[SMTPConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.to_templates = _parse(options.to_templates, "to-field")

    def recipients(self, config: SMTPConfig, event: Event) -> list[str]:
        """``.to()`` plus the rendered ``.toTemplates()``; else ``[smtp]``'s."""
        to, templates = list(self.options.to), self.to_templates
        if not to and not templates:
            to, templates = list(config.to), _parse(config.to_templates, "toTemplates")
        if templates:
            data = event.template_data()
            for template in templates:
                try:
                    address = template.execute(data)
                except TemplateError as exc:
                    self.context.log.error("email: error in an address template",
                                           alert=event.id, err=str(exc))
                    continue
                if address:
                    to.append(address)
        return to

    def _send(self, config: SMTPConfig, sender: str, recipients: list[str],
              message: bytes) -> None:
        timeout = 30
        with smtplib.SMTP(config.host, config.port, timeout=timeout,
                          local_hostname="localhost") as client:
            client.ehlo()
            if client.has_extn("starttls"):
                context = ssl.create_default_context()
                if config.no_verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                client.starttls(context=context)
                client.ehlo()
            if config.username:
                client.login(config.username, config.password)
            # MAIL FROM as Go's net/smtp words it: BODY=8BITMIME and SMTPUTF8 when the
            # server offers them (no SIZE); then each RCPT TO and the DATA.
            options = [option for extension, option in (("8bitmime", "BODY=8BITMIME"),
                                                         ("smtputf8", "SMTPUTF8"))
                       if client.has_extn(extension)]
            code, answer = client.mail(sender, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, answer, sender)
            for recipient in recipients:
                code, answer = client.rcpt(recipient)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({recipient: (code, answer)})
            code, answer = client.data(message)
            if code != 250:
                raise smtplib.SMTPDataError(code, answer)

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("email: the [smtp] section is not enabled")
        to = self.recipients(config, event)
        if not to:
            raise HandlerError("email: no recipients (set .to(), .toTemplates() or "
                               "[smtp] to)")
        message = mail_message(config.from_, to, event.state.message, event.state.details)
        sender = parseaddr(config.from_)[1] or config.from_
        recipients = list(dict.fromkeys(address for _, address in getaddresses(to)
                                        if address))
        # -blacklist-cidrs, for a literal address
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.context.check_outgoing(f"smtp://{host}:{config.port}")
        try:
            # Resolving through trio applies the daemon's deny list to a host name too.
            await trio.socket.getaddrinfo(config.host, config.port,
                                          type=trio.socket.SOCK_STREAM)
            await trio.to_thread.run_sync(self._send, config, sender, recipients, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise HandlerError(f"email: {config.host}:{config.port}: {exc}") from None


def header_word(value: str) -> str:
    """A header value as Go's mime.QEncoding encodes it for UTF-8: unchanged when it is
    printable ASCII (or tabs), else Q encoded-words of at most 75 characters, a
    character's bytes never split between two words."""
    if all(" " <= c <= "~" or c == "\t" for c in value):
        return value
    words: list[str] = []
    current: list[str] = []
    size = 0
    room = 75 - len("=?UTF-8?q?") - len("?=")
    for c in value:
        if " " <= c <= "~" and c not in "=?_":
            piece = "_" if c == " " else c
        else:
            piece = "".join(f"={b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        if size + len(piece) > room:
            words.append("".join(current))
            current, size = [], 0
        current.append(piece)
        size += len(piece)
    words.append("".join(current))
    return " ".join(f"=?UTF-8?q?{word}?=" for word in words)


def quoted_printable(text: str) -> bytes:
    """``text`` (as UTF-8) in quoted-printable as Go's mime/quotedprintable Writer writes
    it: line ends (CR, LF or CRLF) become CRLF, a space or tab before a line end or at the
    end is encoded, lines are broken with a soft ``=`` before 76 columns."""
    out = bytearray()
    line = bytearray()
    cr = False

    def crlf() -> None:
        line.extend(b"\r\n")
        out.extend(line)
        line.clear()

    def encode(byte: int) -> None:
        if 75 - len(line) < 3:
            line.append(0x3D)
            crlf()
        line.extend(b"=%02X" % byte)

    def last_byte() -> None:
        if line and line[-1] in (0x20, 0x09):
            encode(line.pop())

    for byte in text.encode("utf-8", "surrogatepass"):
        if (0x21 <= byte <= 0x7E and byte != 0x3D) or byte in (0x20, 0x09):
            if len(line) == 75:
                line.append(0x3D)
                crlf()
            line.append(byte)
            cr = False
        elif byte in (0x0A, 0x0D):
            if cr and byte == 0x0A:
                cr = False
                continue
            cr = byte == 0x0D
            last_byte()
            crlf()
        else:
            encode(byte)
    last_byte()
    out.extend(line)
    return bytes(out)


def mail_message(sender: str, to: list[str], subject: str, body: str,
                 now: datetime | None = None) -> bytes:
    """The message Kapacitor's mail library writes (Go writes the headers of a map in no
    fixed order; these come in one)."""
    date = format_datetime((now or datetime.now()).astimezone())
    headers = [("Mime-Version", "1.0"), ("Date", date), ("From", header_word(sender)),
               ("To", ", ".join(header_word(address) for address in to)),
               ("Subject", header_word(subject)),
               ("Content-Type", "text/html; charset=UTF-8"),
               ("Content-Transfer-Encoding", "quoted-printable")]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\n").encode("utf-8", "surrogatepass") + quoted_printable(body)


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="smtp", property="email", options=EmailOptions,
                        factory=EmailHandler, section="smtp", args=("to",),
                        doc="Send alerts by email.")]
