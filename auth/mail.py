"""The mails we send, composed from values (pure: no I/O)."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import quote

# Links carry the token in the fragment: browsers never send a fragment to a server, so the
# token stays out of access logs, proxies and Referer headers. The web client reads it.
VERIFY_PATH = "/#/verify-email?token="
RESET_PATH = "/#/reset-password?token="


def link(base_url: str, path: str, token: str) -> str:
    return base_url.rstrip("/") + path + quote(token, safe="")


def _message(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def verification_mail(*, sender: str, to: str, base_url: str, token: str, hours: int) -> EmailMessage:
    url = link(base_url, VERIFY_PATH, token)
    return _message(
        sender=sender,
        to=to,
        subject="Confirm your StreamFlix email address",
        body=f"Open this link to confirm your address:\n\n{url}\n\n"
        f"The link works once, for {hours} hours. If you did not sign up, ignore this mail.\n",
    )


def reset_mail(*, sender: str, to: str, base_url: str, token: str, minutes: int) -> EmailMessage:
    url = link(base_url, RESET_PATH, token)
    return _message(
        sender=sender,
        to=to,
        subject="Reset your StreamFlix password",
        body=f"Open this link to choose a new password:\n\n{url}\n\n"
        f"The link works once, for {minutes} minutes, and signs you out everywhere.\n"
        "If you did not ask for this, ignore this mail: your password is unchanged.\n",
    )
