"""Every page of the web client at phone widths (360 and 375 px) and a desktop width (1440 px):
screenshots under test-output/screenshots/ for a person to look at, no horizontal scrolling
on the phone, and no console error or failed request anywhere. Also: a series' seasons and
the next episode at the end of one, the admin page's progress and failure reasons, keyboard
use, and a catalog title made of HTML that must render as text."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"
XSS = "<img src=x onerror=alert(1)>"
WIDTHS = [360, 375, 1440]  # 360: the narrowest phone we support


# The catalog is made once for this module's tests: its titles live in the browser tests'
# session database and storage, and the tests only read them (each signs in a new viewer, so
# favorites and history start empty every time).
_CATALOG: dict[str, Any] = {}


@pytest.fixture
def catalog(live_server: Any, clip_factory: Any, tmp_path: Path) -> dict[str, Any]:
    """A movie, a two-season series, and a title whose source is not video (failed)."""
    if not _CATALOG:
        _CATALOG.update(_make_catalog(live_server, clip_factory, tmp_path))
    return _CATALOG


def _make_catalog(live_server: Any, clip_factory: Any, tmp_path: Path) -> dict[str, Any]:
    tag = secrets.token_hex(2)
    short = clip_factory(seconds=4, width=640, height=360)
    movie = live_server.ingest_ready(
        clip_factory(seconds=12, width=640, height=360),
        title=f"Paper Lanterns {tag}",
        year=2021,
        genres=["Drama", "Family"],
        description="Three generations, one restaurant, and the night the power goes out.",
    )
    series = f"Harbour Tales {tag}"
    episodes = [
        live_server.ingest_ready(
            short,
            title=name,
            series=series,
            season=season,
            episode=number,
            genres=["Mystery"],
            description=f"{name}: a short episode.",
            year=2022,
        )
        for season, number, name in [(1, 1, "The Fog"), (1, 2, "The Bell"), (2, 1, "Low Tide")]
    ]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + secrets.token_bytes(4096))
    failed = live_server.ingest_ready(broken, expect="failed", title=f"Broken Upload {tag}", max_attempts=1)
    return {"movie": movie, "episodes": episodes, "series_id": episodes[0]["series_id"], "failed": failed}


def settle(page: Any) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('#main[aria-busy]')")


def snap(page: Any, directory: Path, name: str, width: int) -> None:
    settle(page)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 8).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)""")
        pytest.fail(f"{name} scrolls sideways by {overflow}px at {width}px: {wide}")
    page.screenshot(path=str(directory / f"{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page(
    width: int, live_server: Any, catalog: dict[str, Any], new_context: Any, screenshot_dir: Path
) -> None:
    base = live_server.url
    admin = live_server.create_admin()
    movie, series_id = catalog["movie"], catalog["series_id"]
    ep1 = catalog["episodes"][0]
    _ctx, page, watch = new_context(width=width, height=900 if width > 400 else 780)

    page.goto(base + "/")
    snap(page, screenshot_dir, "home-signed-out", width)
    page.goto(base + "/register")
    snap(page, screenshot_dir, "register", width)
    page.goto(base + "/login")
    snap(page, screenshot_dir, "login", width)

    sign_in(page, base, admin)
    # something to continue watching, something in the list
    page.goto(f"{base}/watch/{movie['id']}")
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime > 0", timeout=30_000)
    page.evaluate(f"() => {{ {VIDEO}.currentTime = 7; }}")  # past "started", without 7 s of playing
    page.wait_for_function(f"() => {VIDEO}.currentTime >= 7 && !{VIDEO}.seeking", timeout=30_000)
    page.evaluate(f"() => {VIDEO}.pause()")
    snap(page, screenshot_dir, "player", width)
    page.goto(f"{base}/title/{movie['id']}")
    page.locator("#favorite-toggle").click()
    page.locator("#favorite-toggle[aria-pressed='true']").wait_for()
    snap(page, screenshot_dir, "title-movie", width)

    page.goto(base + "/")
    page.locator('section[data-row="continue"]').wait_for()
    page.locator('section[data-row="new"]').wait_for()
    snap(page, screenshot_dir, "home", width)

    box = page.locator("#search-input")
    box.click()
    box.press_sequentially("harbr tales", delay=40)
    page.get_by_role("option").first.wait_for()
    page.screenshot(path=str(screenshot_dir / f"search-suggestions-{width}.png"))
    page.goto(f"{base}/search?q=lantern")
    page.locator(".grid .card").first.wait_for()
    snap(page, screenshot_dir, "search-results", width)

    page.goto(f"{base}/title/{series_id}")
    page.get_by_role("heading", name="Episodes").wait_for()
    assert page.locator(".episode-title").all_inner_texts() == ["The Fog", "The Bell"]
    page.get_by_role("button", name="Season 2").click()
    assert page.locator(".episode-title").all_inner_texts() == ["Low Tide"]
    page.get_by_role("button", name="Season 1").click()
    snap(page, screenshot_dir, "title-series", width)

    # the end of an episode offers the next one
    page.goto(f"{base}/watch/{ep1['id']}")
    page.wait_for_function(f"() => {VIDEO} && {VIDEO}.duration > 0 && {VIDEO}.currentTime > 0", timeout=30_000)
    page.evaluate(f"() => {{ const v = {VIDEO}; v.currentTime = v.duration - 0.5; }}")
    page.locator("#next-episode:not([hidden])").wait_for(timeout=20_000)
    assert "The Bell" in page.locator("#next-episode").inner_text()
    page.screenshot(path=str(screenshot_dir / f"player-next-episode-{width}.png"))
    page.locator("#play-next").click()
    page.wait_for_url(f"**/watch/{catalog['episodes'][1]['id']}")
    page.get_by_role("heading", name="The Bell").wait_for()

    page.goto(base + "/favorites")
    page.locator(".grid .card-title", has_text=movie["title"]).wait_for()
    snap(page, screenshot_dir, "favorites", width)

    page.goto(base + "/profile")
    page.locator("#sessions tbody tr").first.wait_for()
    assert "this device" in page.locator("#sessions").inner_text().lower()
    snap(page, screenshot_dir, "profile", width)

    page.goto(base + "/admin")
    failed_row = page.locator(f"tr[data-title-id='{catalog['failed']['id']}']")
    failed_row.wait_for()
    assert failed_row.get_attribute("data-status") == "failed"
    assert failed_row.locator(".reason").inner_text().strip(), "the failure reason is shown"
    ready_row = page.locator(f"tr[data-title-id='{movie['id']}']")
    assert "100%" in ready_row.inner_text()
    snap(page, screenshot_dir, "admin", width)

    page.goto(base + "/no/such/page")
    page.get_by_role("heading", name="Page not found").wait_for()
    snap(page, screenshot_dir, "not-found", width)

    watch.assert_clean()


def test_catalog_html_renders_as_text(
    live_server: Any, clip_factory: Any, new_context: Any, screenshot_dir: Path
) -> None:
    """A title named `<img src=x onerror=alert(1)>` shows those characters, runs nothing,
    adds no element, in the rows, the suggestions, the results and its own page."""
    title = live_server.ingest_ready(
        clip_factory(seconds=4, width=640, height=360),
        title=XSS,
        genres=["<b>bold</b>"],
        description='"><script>alert(2)</script>',
        year=2020,
    )
    base = live_server.url
    _ctx, page, watch = new_context(width=1440)
    page.goto(base + "/")
    page.locator(".card-title", has_text=XSS).first.wait_for()
    page.locator("#search-input").press_sequentially("<img", delay=30)
    page.get_by_role("option", name=XSS).wait_for()
    page.goto(f"{base}/search?q={XSS}")
    page.locator(".grid .card-title", has_text=XSS).wait_for()
    page.goto(f"{base}/title/{title['id']}")
    heading = page.get_by_role("heading", level=1)
    heading.wait_for()
    assert heading.inner_text() == XSS
    assert page.get_by_text('"><script>alert(2)</script>').count() == 1
    page.screenshot(path=str(screenshot_dir / "title-xss-as-text-1440.png"))
    # no element came from catalog text: no <img> but posters, no <b>, no <script> in <main>
    assert page.evaluate("() => [...document.querySelectorAll('main img')].every(i => i.getAttribute('src') !== 'x')")
    assert page.locator("main b, main script").count() == 0
    assert watch.dialogs == []
    watch.assert_clean()


def test_keyboard_only(live_server: Any, catalog: dict[str, Any], new_context: Any) -> None:
    """Skip link first, suggestions by arrow keys and Enter, a favourite toggled with Enter,
    and a visible focus ring on whatever has focus."""
    base = live_server.url
    viewer = live_server.register_and_login()
    movie = catalog["movie"]
    _ctx, page, watch = new_context(width=1440)
    sign_in(page, base, viewer)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    page.locator("#search-input").focus()
    page.keyboard.type(movie["title"][:-2], delay=40)
    options = page.get_by_role("option")
    options.first.wait_for()
    names = options.all_inner_texts()
    for _ in range(names.index(movie["title"]) + 1):
        page.keyboard.press("ArrowDown")
    active = page.locator("#search-input").get_attribute("aria-activedescendant")
    assert page.locator(f"#{active}").inner_text() == movie["title"]
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?q=*")
    card = page.locator(".grid .card-link", has_text=movie["title"])
    card.wait_for()
    card.focus()
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/title/{movie['id']}")
    fav = page.locator("#favorite-toggle")
    fav.focus()
    page.keyboard.press("Enter")
    page.locator("#favorite-toggle[aria-pressed='true']").wait_for()
    assert page.evaluate("() => document.activeElement.tagName") == "BUTTON"
    watch.assert_clean()


def test_player_quality_menu(live_server: Any, clip_factory: Any, new_context: Any) -> None:
    """The app's own player lists every rendition and switches to the one picked."""
    title = live_server.ingest_ready(
        clip_factory(seconds=12, width=854, height=480), title=f"Two Rungs {secrets.token_hex(2)}", genres=["test"]
    )
    viewer = live_server.register_and_login()
    _ctx, page, watch = new_context(width=1440)
    sign_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/watch/{title['id']}")
    page.wait_for_function("() => document.querySelectorAll('#quality option').length >= 3", timeout=20_000)
    labels = page.locator("#quality option").all_inner_texts()
    assert (
        labels[0] == "Auto"
        and any(lbl.startswith("480p") for lbl in labels)
        and any(lbl.startswith("360p") for lbl in labels)
    )
    page.wait_for_function(f"() => {VIDEO}.currentTime > 0.5", timeout=20_000)
    showing = page.evaluate(f"() => {VIDEO}.videoHeight")
    target = 360 if showing == 480 else 480
    page.select_option("#quality", label=next(lbl for lbl in labels if lbl.startswith(f"{target}p")))
    page.wait_for_function(f"() => {VIDEO}.videoHeight === {target}", timeout=20_000)
    page.get_by_text(f"Playing {target}p").wait_for()
    watch.assert_clean()
