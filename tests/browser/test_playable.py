"""A `playable` title (its first version still being encoded) in the web client: listed on
home with a small "still encoding" note, the note and a Play button on its page, and it
plays, with no console error (the CSP included) and no HTTP error."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"
NOTE = "Still encoding — more qualities soon"


def make_playable(live_server: Any, title: dict[str, Any]) -> None:
    """Turn a title the fixtures published back into one whose first version is still being
    encoded: no version, processing, then catalog.status.mark_playable on that version."""

    async def change() -> None:
        import asyncpg

        from catalog import status

        conn = await asyncpg.connect(live_server.settings.database_url)
        try:
            await conn.execute(
                "UPDATE catalog.titles SET status = 'processing', current_version = NULL WHERE id = $1::uuid",
                title["id"],
            )
            assert await status.mark_playable(conn, title["id"], title["version"], duration_s=title["duration_s"])
        finally:
            await conn.close()

    live_server.call(change())


def test_a_playable_title_shows_the_note_and_plays(live_server: Any, clip_factory: Any, new_context: Any) -> None:
    clip = clip_factory(seconds=6, width=320, height=180)
    name = f"Early Bird <b>{secrets.token_hex(2)}</b>"  # markup in data stays text
    title = live_server.ingest_ready(clip, title=name, year=2024, genres=["test"], description="Still encoding.")
    make_playable(live_server, title)
    account = live_server.register_and_login()
    _ctx, page, watch = new_context(width=1280, height=800)
    sign_in(page, live_server.url, account)

    # home: the card is listed, with the note instead of a status badge
    card = page.locator(".card", has=page.get_by_text(name, exact=True)).first
    card.wait_for()
    assert card.locator(".encoding-note").inner_text() == NOTE
    assert card.locator(".badge").count() == 0

    # its page: Play, and the note
    card.locator("a").click()
    page.wait_for_url(f"**/title/{title['id']}")
    page.get_by_role("heading", name=name, exact=True).wait_for()
    assert page.locator("#encoding-note").inner_text() == NOTE
    assert page.locator("b").count() == 0

    # it plays
    page.locator("#play").click()
    page.wait_for_url(f"**/watch/{title['id']}")
    page.locator("#encoding-note").wait_for()
    page.evaluate(f"() => {{ const v = {VIDEO}; if (v) v.muted = true; }}")
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime >= 2", timeout=30_000)
    assert page.evaluate(f"{VIDEO}.error") is None
    watch.assert_clean()
