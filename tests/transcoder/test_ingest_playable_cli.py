"""`streamflix ingest --wait-playable` returns as soon as the title plays (playable or ready);
`--wait` says once when the title became playable and still waits for ready; `titles
list/show` show a playable title."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from catalog import status, titles
from media.backend import open_storage
from server.commands.ingest import wait_for_title
from server.settings import Settings
from tests.transcoder.test_ingest_cli import run_cli


def test_wait_playable_returns_when_the_title_plays(
    settings: Settings,
    clip_factory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The in-process worker makes the title ready (a ready title plays too) or, with
    # progressive publishing, playable first; either way the command returns exit 0.
    clip = clip_factory(seconds=2, width=320, height=180)
    code, out, err = run_cli(
        monkeypatch, capsys, settings, "ingest", str(clip), "--title", "Soon", "--wait-playable", "--json"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"] in ("playable", "ready") and shown["version"]


def test_wait_and_wait_playable_exclude_each_other(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(monkeypatch, capsys, settings, "ingest", "x.mp4", "--title", "X", "--wait", "--wait-playable")
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


async def _playable_title(conn: asyncpg.Connection) -> titles.Title:
    t = await titles.create_title(conn, kind="movie", title="Early " + secrets.token_hex(3))
    await status.mark_processing(conn, t.id)
    assert await status.mark_playable(conn, t.id, "v1", duration_s=4.0)
    return t


async def test_wait_playable_does_not_wait_for_ready(settings: Settings) -> None:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    storage = open_storage(settings.storage_url)
    try:
        async with pool.acquire() as conn:
            t = await _playable_title(conn)
        title = await asyncio.wait_for(wait_for_title(settings, pool, storage, t.id, until_playable=True), 10)
        assert (title.status, title.current_version) == ("playable", "v1")
    finally:
        await storage.close()
        await pool.close()


async def test_wait_says_once_that_the_title_became_playable(settings: Settings) -> None:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    storage = open_storage(settings.storage_url)
    bar = io.StringIO()
    try:
        async with pool.acquire() as conn:
            t = await _playable_title(conn)
        waiting = asyncio.create_task(wait_for_title(settings, pool, storage, t.id, bar=bar))
        await asyncio.sleep(1.0)  # a few polls while it is playable
        assert not waiting.done()  # --wait waits for ready
        async with pool.acquire() as conn:
            await status.publish_ready(conn, t.id, "v1", duration_s=4.0)
        title = await asyncio.wait_for(waiting, 10)
        assert title.status == "ready"
    finally:
        await storage.close()
        await pool.close()
    assert bar.getvalue().count("playable after ") == 1, bar.getvalue()


def test_titles_list_and_show_a_playable_title(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def make() -> str:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return (await _playable_title(conn)).id
        finally:
            await conn.close()

    title_id = asyncio.run(make())
    code, out, err = run_cli(monkeypatch, capsys, settings, "titles", "show", title_id)
    assert code == 0, err
    assert any(line.split() == ["status", "playable"] for line in out.splitlines()), out
    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "list")
    assert code == 0
    assert any(title_id in line and "playable" in line for line in out.splitlines()), out
    code, out, _ = run_cli(monkeypatch, capsys, settings, "titles", "show", title_id, "--json")
    assert json.loads(out)["status"] == "playable"
