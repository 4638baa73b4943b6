"""Sending mail: SMTP through aiosmtplib, or a log-only sender when no SMTP URL is set.

`smtp://user:pass@host:587` speaks plain SMTP and upgrades with STARTTLS when the server
offers it; `smtps://user:pass@host:465` uses implicit TLS (RFC 8314 prefers it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

log = logging.getLogger("streamflix.mail")

SEND_TIMEOUT_S = 10.0


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpConfig:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("STREAMFLIX_SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
    tls = parts.scheme == "smtps"
    return SmtpConfig(
        host=parts.hostname,
        port=parts.port or (465 if tls else 25),
        use_tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def send(self, message: EmailMessage) -> None:
        c = self.config
        await aiosmtplib.send(
            message,
            hostname=c.host,
            port=c.port,
            use_tls=c.use_tls,
            start_tls=None if not c.use_tls else False,
            username=c.username,
            password=c.password,
            timeout=SEND_TIMEOUT_S,
        )


class LogMailer:
    """Development: the mail (link included) goes to the log instead of a mailbox."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)
        del self.sent[:-100]
        log.info(
            "mail (no STREAMFLIX_SMTP_URL set) to %s: %s\n%s", message["To"], message["Subject"], message.get_content()
        )


def open_mailer(smtp_url: str | None) -> Mailer:
    return SmtpMailer(parse_smtp_url(smtp_url)) if smtp_url else LogMailer()
