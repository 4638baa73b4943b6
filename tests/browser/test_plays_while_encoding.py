"""A title plays in the web client while its encode is still running: the real worker
encodes it chunk by chunk in the background, the viewer presses Play as soon as the title is
playable, and hls.js plays on across the chunk boundaries while the rest is being made (the
origin waits for a segment that is not there yet)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

VIDEO = "document.getElementById('video')"


def start_encoding(live_server: Any, clip: Any, name: str) -> tuple[dict[str, Any], Any]:
    """Ingest `clip` and start a real worker on it in the server's loop, in the background:
    one ffmpeg thread and one segment per task, so a 1080p ladder outlasts the first seconds of
    playback. Returns the title (JSON) and a function that stops the worker."""
    settings = live_server.settings

    async def start() -> tuple[dict[str, Any], Any, Any, Any]:
        import asyncpg

        from media.backend import open_storage
        from server.api.links import poster_url
        from transcoder.ingest import ingest
        from transcoder.worker import Worker

        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
        storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
        title = await ingest(
            pool, storage, source=str(clip), title=name, max_source_bytes=10**9, work_dir=settings.work_dir
        )
        worker = Worker(
            pool,
            storage,
            work_dir=settings.work_dir,
            segment_s=settings.segment_duration_s,
            preset=settings.x264_preset,
            title_id=title.id,
            chunk_segments=1,
            encoder_threads=1,
        )
        runner = asyncio.create_task(worker.run(once=True))
        return title.to_json(poster_url), worker, runner, (pool, storage)

    title, worker, runner, (pool, storage) = live_server.call(start())

    def stop() -> None:
        async def finish() -> None:
            worker.stop()
            await asyncio.wait({runner})
            await storage.close()
            await pool.close()

        live_server.call(finish())

    return title, stop


def status_of(live_server: Any, title_id: str) -> str:
    async def read() -> str:
        import asyncpg

        conn = await asyncpg.connect(live_server.settings.database_url)
        try:
            return await conn.fetchval("SELECT status FROM catalog.titles WHERE id = $1::uuid", title_id)
        finally:
            await conn.close()

    return live_server.call(read())


def test_a_title_plays_while_it_is_still_encoding(live_server: Any, clip_factory: Any, new_context: Any) -> None:
    clip = clip_factory(seconds=60, width=1920, height=1080)
    account = live_server.register_and_login()
    title, stop = start_encoding(live_server, clip, "Hot off the encoder")
    try:
        deadline = time.monotonic() + 120
        status = status_of(live_server, title["id"])
        while time.monotonic() < deadline and status not in ("playable", "ready", "failed"):
            time.sleep(0.05)
            status = status_of(live_server, title["id"])
        assert status == "playable", status  # made playable long before a 1080p ladder is done

        _ctx, page, watch = new_context(width=1280, height=800)
        sign_in(page, live_server.url, account)
        page.goto(f"{live_server.url}/watch/{title['id']}")
        try:
            page.locator("#encoding-note").wait_for()
        except Exception:
            raise AssertionError(page.inner_text("body")[:2000] + repr(watch)) from None
        page.evaluate(f"() => {{ const v = {VIDEO}; if (v) v.muted = true; }}")
        page.wait_for_function(f"() => {VIDEO} && {VIDEO}.currentTime > 0.5", timeout=30_000)
        assert status_of(live_server, title["id"]) == "playable"  # it started playing while the encode ran
        # on across the boundaries of the first chunks (one segment each, 4 s)
        page.wait_for_function(f"() => {VIDEO}.currentTime >= 9", timeout=60_000)
        assert page.evaluate(f"{VIDEO}.error") is None
        watch.assert_clean()
    finally:
        stop()
