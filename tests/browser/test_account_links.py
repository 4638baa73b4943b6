"""The pages behind mailed links, driven in the browser with a real SMTP server on loopback:
forgot password -> mail -> reset page -> sign in with the new password; and the
verification link sent at registration."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.browser.conftest import PASSWORD, LiveServer
from tests.support import free_port

pytestmark = pytest.mark.browser

LINK = re.compile(r"https?://\S+?/#/(?:verify-email|reset-password)\?token=\S+")


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd hook
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def link(self, rcpt: str, path: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rcpts, msg in self.messages:
                if rcpt in rcpts:
                    m = LINK.search(msg.get_content())
                    if m and f"#/{path}?" in m.group(0):
                        return m.group(0)
            time.sleep(0.05)
        raise AssertionError(f"no {path} mail for {rcpt}")


def shots(page: Any, directory: Any, name: str) -> None:
    """The page at 1440, 375 and 360 px (no sideways scrolling on phones), back to 1440."""
    for width in (1440, 375, 360):
        page.set_viewport_size({"width": width, "height": 900 if width > 400 else 780})
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
        page.screenshot(path=str(directory / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})


@pytest.fixture
def mail_server(web_settings: Any) -> Iterator[tuple[LiveServer, Mailbox]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    server = LiveServer(dataclasses.replace(web_settings, smtp_url=f"smtp://127.0.0.1:{controller.port}")).start()
    try:
        yield server, box
    finally:
        server.stop()
        controller.stop()


def test_forgot_and_reset_password(mail_server: Any, new_context: Any, screenshot_dir: Any) -> None:
    server, box = mail_server
    account = server.register_and_login()
    _, page, watch = new_context()
    page.goto(server.url + "/login")
    page.click("#forgot-link")
    page.fill("#email", account["email"])
    page.get_by_role("button", name="Send reset link").click()
    page.wait_for_selector("#forgot-status:has-text('reset link is on its way')")
    shots(page, screenshot_dir, "forgot-password")

    link = box.link(account["email"], "reset-password")
    # The link's token sits in the fragment: it never reaches a server or a Referer.
    page.goto(link.replace(link.split("/#/")[0], server.url))
    page.wait_for_url(re.compile(r"/reset-password#token="))
    page.wait_for_selector("#reset-form")
    shots(page, screenshot_dir, "reset-password")
    new_password = "a brand new passphrase " + secrets.token_hex(2)
    page.fill("#password", new_password)
    page.fill("#password-again", new_password)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/login\?reason=password-reset"))
    page.wait_for_selector("text=every device was signed out")

    # The old session is revoked, the old password refused, the new one accepted.
    assert server.api("GET", "/me", token=account["access_token"])[0] == 401
    assert server.api("POST", "/auth/login", {"email": account["email"], "password": PASSWORD})[0] == 401
    page.fill("#email", account["email"])
    page.fill("#password", new_password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")
    watch.assert_clean()

    # A spent link says so instead of failing silently (its 400 is expected from here on).
    page.goto(link.replace(link.split("/#/")[0], server.url))
    page.fill("#password", new_password + "x")
    page.fill("#password-again", new_password + "x")
    page.get_by_role("button", name="Set password").click()
    page.wait_for_selector("#reset-error:not(:empty)")


def test_verify_email_link(mail_server: Any, new_context: Any, screenshot_dir: Any) -> None:
    server, box = mail_server
    account = server.register_and_login()
    link = box.link(account["email"], "verify-email")
    _, page, watch = new_context()
    page.goto(link.replace(link.split("/#/")[0], server.url))
    page.wait_for_selector("text=Your email address is verified")
    shots(page, screenshot_dir, "verify-email")
    assert "#token=" not in page.url  # the spent token is dropped from the address bar
    status, me = server.api("GET", "/me", token=account["access_token"])
    assert status == 200 and me["email_verified"] is True
    watch.assert_clean()
