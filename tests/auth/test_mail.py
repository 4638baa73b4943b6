"""SMTP URL parsing and mail composition (pure)."""

from __future__ import annotations

import pytest

from auth.mail import RESET_PATH, link, reset_mail, verification_mail
from auth.mailer import LogMailer, SmtpMailer, open_mailer, parse_smtp_url


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user", "password"),
    [
        pytest.param("smtp://mail.example.com", "mail.example.com", 25, False, None, None, id="plain-default-port"),
        pytest.param("smtp://u:p@127.0.0.1:2525", "127.0.0.1", 2525, False, "u", "p", id="plain-auth"),
        pytest.param(
            "smtps://u%40x:p%3Aw@mail.example.com", "mail.example.com", 465, True, "u@x", "p:w", id="tls-quoted"
        ),
    ],
)
def test_parse_smtp_url(url, host, port, tls, user, password):
    c = parse_smtp_url(url)
    assert (c.host, c.port, c.use_tls, c.username, c.password) == (host, port, tls, user, password)


@pytest.mark.parametrize("url", ["http://x", "smtp://", "mail.example.com"])
def test_bad_smtp_url(url):
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_open_mailer():
    assert isinstance(open_mailer(None), LogMailer)
    assert isinstance(open_mailer("smtp://127.0.0.1:2525"), SmtpMailer)


def test_token_in_fragment():
    url = link("https://tv.example.com/", RESET_PATH, "a/b+c")
    assert url == "https://tv.example.com/#/reset-password?token=a%2Fb%2Bc"


def test_mails_carry_link_and_expiry():
    m = reset_mail(sender="S <s@x.io>", to="bob@example.com", base_url="https://tv", token="T", minutes=60)
    assert m["To"] == "bob@example.com" and "https://tv/#/reset-password?token=T" in m.get_content()
    assert "60 minutes" in m.get_content()
    m = verification_mail(sender="s@x.io", to="bob@example.com", base_url="https://tv", token="V", hours=48)
    assert "https://tv/#/verify-email?token=V" in m.get_content()
