"""Watching together in two real Chromium pages, each signed in to a different `streamflix
serve` OS process (sharing Postgres and Redis; the title is ingested in the test process): the
host starts a party on process A, the guest opens its link on process B.

Measured and printed: the time from the host's play, pause, seek, play and rate change to the
same event on the guest's player (each at most 300 ms); over 60 s of playback, |host - guest|
currentTime at every 50 ms host sample (p50, p95, max; p95 at most 100 ms); the guest's page
closed outright and the link opened in a new page: the time until it is within 100 ms of the
host for 0.5 s, and the p95 over the last 2 s (at most 150 ms).

And a host's reload leaves the party's state as it was (same `seq`, still paused): the
player's own resume and autoplay are not the person's seek and play."""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from server.settings import Settings
from tests.browser.conftest import LiveServer, PageWatch, ServeProcess, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.exclusive]

VIDEO = "document.getElementById('video')"
RECORD = """() => {
  const v = document.getElementById('video');
  window.__events = [];
  const note = (kind) => window.__events.push({ kind, at: Date.now(), t: v.currentTime, rate: v.playbackRate });
  for (const kind of ['play', 'pause', 'seeking', 'ratechange']) v.addEventListener(kind, () => note(kind));
  window.__samples = [];
  window.__sampler = setInterval(() => window.__samples.push([Date.now(), v.currentTime, v.paused]), 50);
}"""


def open_player(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#video", state="attached", timeout=15_000)
    page.evaluate(f"() => {{ {VIDEO}.muted = true; }}")


def joined(page: Any) -> None:
    page.wait_for_function("() => window.streamflixParty && window.streamflixParty.state", timeout=15_000)


def follow(guest: Any, kind: str, since_ms: int, check: str = "true") -> float:
    """Milliseconds from the host's action (`since_ms`, this machine's clock) to the guest's
    first `kind` event after it that passes `check` (a JS expression of `e`)."""
    handle = guest.wait_for_function(
        f"s => (window.__events || []).find(e => e.kind === '{kind}' && e.at >= s && ({check}))",
        arg=since_ms,
        timeout=3_000,
    )
    event = handle.json_value()
    return float(event["at"] - since_ms)


def act(host: Any, script: str) -> int:
    return int(host.evaluate(f"() => {{ const v = {VIDEO}; const at = Date.now(); {script}; return at; }}"))


def drift(host: Any, guest: Any) -> list[tuple[int, float]]:
    """(host sample time, |host - guest| currentTime in ms) at each playing host sample, the
    guest's currentTime interpolated between its two samples around it (both pages sample this
    machine's clock every 50 ms)."""
    hs = host.evaluate("() => window.__samples")
    gs = guest.evaluate("() => window.__samples")
    out = []
    j = 0
    for at, t, paused in hs:
        if paused:
            continue
        while j + 1 < len(gs) and gs[j + 1][0] < at:
            j += 1
        if j + 1 >= len(gs) or gs[j][0] > at or gs[j][2] or gs[j + 1][2]:
            continue
        (a0, t0, _), (a1, t1, _) = gs[j], gs[j + 1]
        if a1 - a0 > 200 or t1 < t0:  # a gap or a seek between the two samples
            continue
        guest_t = t0 + (t1 - t0) * (at - a0) / max(1, a1 - a0)
        out.append((int(at), abs(t - guest_t) * 1000))
    return out


def pct(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p))]


def figures(pairs: list[tuple[int, float]], min_samples: int) -> tuple[float, float, float, int]:
    """p50, p95, max (ms) and the sample count."""
    diffs = sorted(d for _, d in pairs)
    assert len(diffs) >= min_samples, len(diffs)
    return pct(diffs, 0.5), pct(diffs, 0.95), diffs[-1], len(diffs)


def in_step_from(pairs: list[tuple[int, float]], within_ms: float = 100, run: int = 10) -> int | None:
    """The time of the first of `run` consecutive samples (0.5 s) all within `within_ms`."""
    for i in range(len(pairs) - run + 1):
        if all(d <= within_ms for _, d in pairs[i : i + run]):
            return pairs[i][0]
    return None


@pytest.fixture
def two_serves(web_settings: Settings, tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two `streamflix serve` processes on one database, Redis prefix and storage."""
    a = ServeProcess(web_settings, tmp_path / "serve-a").start()
    try:
        b = ServeProcess(web_settings, tmp_path / "serve-b").start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


@dataclasses.dataclass
class PartyOfTwo:
    host: Any
    guest: Any
    guest_context: Any
    guest_url: str
    host_watch: PageWatch
    guest_watch: PageWatch


def party_of_two(
    host_server: Any, guest_server: Any, title: dict[str, Any], new_context: Any, before_guest: Any = None
) -> PartyOfTwo:
    """A host on `host_server` starts a party for `title`; a guest signed in on `guest_server`
    opens its link there (`before_guest(page)` runs first); both players loaded, paused and
    recording their events."""
    host_account = host_server.register_and_login()
    guest_account = host_server.register_and_login()
    _hctx, host, host_watch = new_context()
    sign_in(host, host_server.url, host_account)
    open_player(host, f"{host_server.url}/watch/{title['id']}")
    host.locator("#watch-together").click()
    link = host.locator("#party-link")
    link.wait_for(state="visible", timeout=10_000)
    join_url = link.input_value()
    assert f"/watch/{title['id']}?party=" in join_url
    joined(host)

    gctx, guest, guest_watch = new_context()
    sign_in(guest, guest_server.url, guest_account)
    parts = urlsplit(join_url)
    guest_url = f"{guest_server.url}{parts.path}?{parts.query}"  # the link, on the guest's server
    if before_guest is not None:
        before_guest(guest)
    open_player(guest, guest_url)
    joined(guest)
    for page in (host, guest):
        page.wait_for_function(f"() => {VIDEO}.readyState >= 3 && {VIDEO}.paused", timeout=15_000)
        page.evaluate(RECORD)
    return PartyOfTwo(host, guest, gctx, guest_url, host_watch, guest_watch)


def test_two_members_on_two_serve_processes_play_in_step(
    two_serves: tuple[ServeProcess, ServeProcess], clip_factory: Any, new_context: Any
) -> None:
    a, b = two_serves
    clip = clip_factory(seconds=80, width=320, height=180)
    title = a.ingest_ready(clip, title=f"Together {secrets.token_hex(2)}")
    two = party_of_two(a, b, title, new_context)
    host, guest, gctx, guest_url = two.host, two.guest, two.guest_context, two.guest_url
    host_watch, guest_watch = two.host_watch, two.guest_watch

    timings = {}
    at = act(host, "v.play()")
    timings["play"] = follow(guest, "play", at)
    host.wait_for_timeout(2_000)
    at = act(host, "v.pause()")
    timings["pause"] = follow(guest, "pause", at)
    at = act(host, "v.currentTime = 20")
    timings["seek"] = follow(guest, "seeking", at, "Math.abs(e.t - 20) < 0.3")
    at = act(host, "v.play()")
    timings["play again"] = follow(guest, "play", at)
    at = act(host, "v.playbackRate = 1.25")
    timings["rate"] = follow(guest, "ratechange", at, "e.rate > 1.18 && e.rate < 1.32")
    host.wait_for_timeout(1_000)
    at = act(host, "v.playbackRate = 1")
    follow(guest, "ratechange", at, "e.rate > 0.94 && e.rate < 1.06")
    at = act(host, "v.currentTime = 2")
    follow(guest, "seeking", at, "Math.abs(e.t - 2) < 0.5")
    print(f"\nwatch party (2 serve processes): the guest followed within (ms) {timings}")
    assert all(ms <= 300 for ms in timings.values()), timings

    # 60 s of playback: both pages sample currentTime; the first seconds settle the sync
    host.wait_for_timeout(3_000)
    for page in (host, guest):
        page.evaluate("() => { window.__samples = []; }")
    host.wait_for_timeout(60_000)
    p50, p95, worst, n = figures(drift(host, guest), min_samples=900)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"watch party: |host - guest| over 60 s, {n} samples: p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
        f"max {worst:.0f} ms (load average {load})"
    )
    assert p95 <= 100, (p50, p95, worst)

    # the guest's page is killed (its socket and player gone with it); the link opened again
    # in a new page rejoins (membership kept) and catches up
    guest.close(run_before_unload=False)
    guest = gctx.new_page()
    guest_watch = PageWatch()
    guest_watch.attach(guest)
    opened = int(host.evaluate("() => Date.now()"))
    open_player(guest, guest_url)
    guest.evaluate(RECORD)
    host.evaluate("() => { window.__samples = []; }")
    joined(guest)
    host.wait_for_timeout(5_000)
    pairs = drift(host, guest)
    back = in_step_from(pairs)
    assert back is not None, pairs[-20:]
    _, p95_after, worst_after, _ = figures([p for p in pairs if p[0] >= pairs[-1][0] - 2_000], min_samples=30)
    print(
        f"watch party: the guest's page killed and the link reopened: within 100 ms of the host "
        f"{back - opened} ms after the reopen; then p95 {p95_after:.0f} ms, max {worst_after:.0f} ms (last 2 s)"
    )
    assert p95_after <= 150, p95_after

    # a comment in the party shows on the other member's player, as text
    guest.fill("#comment-input", "<b>look</b>")
    guest.locator("#comment-form button").click()
    host.wait_for_function(
        "() => [...document.querySelectorAll('.party-comment-text')].some(e => e.textContent === '<b>look</b>')",
        timeout=10_000,
    )
    assert host.locator(".party-comments b").count() == 0
    host_watch.assert_clean()
    guest_watch.assert_clean()


def test_a_hosts_reload_leaves_the_party_as_it_was(
    live_server: LiveServer, clip_factory: Any, new_context: Any
) -> None:
    """The host reloads a paused party with a saved history position elsewhere and a slow
    manifest (so the party's state is there before the player starts): the party keeps its
    state (same `seq`, still paused at the same position)."""
    clip = clip_factory(seconds=45, width=320, height=180)
    title = live_server.ingest_ready(clip, title=f"Reload {secrets.token_hex(2)}")
    account = live_server.register_and_login()
    _ctx, host, watch = new_context()
    sign_in(host, live_server.url, account)
    open_player(host, f"{live_server.url}/watch/{title['id']}")
    host.locator("#watch-together").click()
    joined(host)
    party_id = host.evaluate("() => window.streamflixParty.party")
    host.wait_for_function(f"() => {VIDEO}.readyState >= 3 && {VIDEO}.paused", timeout=15_000)
    status, before = live_server.api("GET", f"/parties/{party_id}", token=account["access_token"])
    assert status == 200 and not before["state"]["playing"], before
    # a saved position the player would resume at
    status, _ = live_server.api(
        "PUT", f"/me/history/{title['id']}", {"position_s": 20, "duration_s": 45}, token=account["access_token"]
    )
    assert status in (200, 204), status

    def slow_manifest(route: Any) -> None:
        time.sleep(0.5)
        route.continue_()

    host.route(lambda url: ".m3u8" in url, slow_manifest)
    host.reload()
    joined(host)
    host.wait_for_function(f"() => {VIDEO}.readyState >= 3", timeout=15_000)
    host.wait_for_timeout(500)  # what the reload would have sent has arrived by now
    status, after = live_server.api("GET", f"/parties/{party_id}", token=account["access_token"])
    assert status == 200, after
    assert after["state"]["seq"] == before["state"]["seq"], (before["state"], after["state"])
    assert not after["state"]["playing"] and after["state"]["position"] == before["state"]["position"]
    assert host.evaluate(f"() => {VIDEO}.paused")
    watch.assert_clean()


def test_a_guest_paused_in_a_stall_plays_again_with_the_party(
    live_server: LiveServer, clip_factory: Any, new_context: Any
) -> None:
    """The guest's player runs out of data while the party plays (its segments from the third
    on are held back: a real stall, which it reports), then the host pauses, seeks back into
    what the guest has and plays: the guest plays too (a stall the party paused over is over
    once the player can play again)."""
    clip = clip_factory(seconds=45, width=320, height=180)
    title = live_server.ingest_ready(clip, title=f"Stall {secrets.token_hex(2)}")
    held: list[Any] = []
    segment = re.compile(r"/(\d+)\.m4s(\?|$)")

    def hold_late_segments(route: Any) -> None:
        found = segment.search(route.request.url)
        if found and int(found.group(1)) >= 2:
            held.append(route)  # answered at the end: the guest's player waits for it meanwhile
        else:
            route.continue_()

    two = party_of_two(
        live_server,
        live_server,
        title,
        new_context,
        before_guest=lambda page: page.route(lambda url: ".m4s" in url, hold_late_segments),
    )
    host, guest = two.host, two.guest
    try:
        act(host, "v.play()")
        guest.wait_for_function("() => window.__events.some(e => e.kind === 'play')", timeout=3_000)
        # the guest has two segments (8 s): it stalls at their end while the host plays on
        guest.wait_for_function(
            f"() => {VIDEO}.readyState < 3 && !{VIDEO}.paused && !{VIDEO}.seeking && {VIDEO}.currentTime > 3",
            timeout=20_000,
        )
        host.wait_for_timeout(500)  # the guest's stall has reached the party
        at = act(host, "v.pause()")
        follow(guest, "pause", at)
        at = act(host, "v.currentTime = 2")
        follow(guest, "seeking", at, "Math.abs(e.t - 2) < 0.5")
        at = act(host, "v.play()")
        ms = follow(guest, "play", at)
        guest.wait_for_function(f"() => {VIDEO}.currentTime > 3 && !{VIDEO}.paused", timeout=5_000)
        print(f"\nwatch party: a guest paused mid-stall played again {ms:.0f} ms after the host's play")
        assert ms <= 300, ms
    finally:
        for route in held:
            route.continue_()
        guest.unroute_all(behavior="ignoreErrors")
    two.host_watch.assert_clean()
