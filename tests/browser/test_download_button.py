"""The player's download button: shown where the playback answer has a `download_url`, a
plain link the keyboard reaches and activates, which saves the title's MP4 under its name;
absent when downloads are off for the title."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def test_download_button(live_server: Any, clip_factory: Any, new_context: Any, tmp_path: Any) -> None:
    clip = clip_factory(seconds=4, width=320, height=180)
    title = live_server.ingest_ready(clip, title=f"Été à Paris {secrets.token_hex(2)}", year=2021, genres=["Drama"])
    account = live_server.register_and_login()
    ctx, page, watch = new_context(accept_downloads=True)
    sign_in(page, live_server.url, account)
    page.goto(f"{live_server.url}/watch/{title['id']}")
    link = page.locator("#download")
    link.wait_for()
    assert f"/stream/{title['id']}/{title['version']}/dl/download.mp4?token=" in (link.get_attribute("href") or "")
    assert link.get_attribute("download") == ""
    # keyboard only: reach the link with Tab, activate it with Enter. Once the page is done
    # rendering (it then moves focus to its heading) and the video plays.
    page.wait_for_function("() => document.getElementById('video').readyState >= 2")
    page.wait_for_function("() => document.activeElement && document.activeElement.tagName === 'H1'")
    page.locator("#quality").focus()
    for _ in range(3):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == "download":
            break
    assert page.evaluate("() => document.activeElement.id") == "download"
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    download = info.value
    slug = title["title"].lower().replace(" ", "-")
    assert download.suggested_filename == f"{slug}.mp4"
    saved = tmp_path / "saved.mp4"
    download.save_as(saved)
    assert saved.stat().st_size > 10_000 and saved.read_bytes()[4:8] == b"ftyp"
    watch.assert_clean()

    # downloads off for the title: no button (and the player still plays)
    admin = live_server.create_admin()
    token = live_server.login(admin["email"], admin["password"])["access_token"]
    status, body = live_server.api("PATCH", f"/titles/{title['id']}", {"downloads_enabled": False}, token=token)
    assert status == 200 and body["downloads_enabled"] is False, body
    page.goto(f"{live_server.url}/watch/{title['id']}")
    page.wait_for_function("() => document.getElementById('video') && document.getElementById('video').readyState >= 2")
    assert page.locator("#download").count() == 0
