"""The transcoder's record of a title's source and probe (jobs.title_sources), and the
migration that moved both out of catalog.titles keeping existing rows."""

from __future__ import annotations

import json
import os
import secrets
import uuid

import asyncpg

from catalog import titles
from server.migrate import discover, migrate
from tests.conftest import ADMIN_DSN
from transcoder import sources

MOVED_BY = ("transcoder", 3)


async def _source(conn, title_id: str):
    return await conn.fetchval("SELECT source FROM jobs.title_sources WHERE title_id = $1::uuid", title_id)


async def test_source_and_probe_round_trip(pg):
    t = await titles.create_title(pg, kind="movie", title="Sources " + secrets.token_hex(3))
    assert await sources.get_probe(pg, t.id) is None
    await sources.record_source(pg, t.id, "/clips/a.mp4")
    await sources.set_probe(pg, t.id, {"duration_s": 1.5})
    assert await _source(pg, t.id) == "/clips/a.mp4"
    assert await sources.get_probe(pg, t.id) == {"duration_s": 1.5}
    await sources.forget(pg, [t.id])
    assert await _source(pg, t.id) is None


async def test_catalog_keeps_no_transcoder_columns(pg):
    cols = {
        r["column_name"]
        for r in await pg.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'catalog' AND table_name = 'titles'"
        )
    }
    assert cols and not cols & {"source", "probe"}


async def test_migration_keeps_existing_sources_and_probes():
    """A database at the shape before the move, with titles in it: after `migrate`, their
    source and probe are in the transcoder's table and the catalog columns are gone."""
    dbname = f"sf_test_mig_{os.getpid()}_{secrets.token_hex(3)}"
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + "/" + dbname
    try:
        # Everything up to (not including) the move, recorded as applied.
        await migrate(dsn, packages=("auth", "catalog"))
        conn = await asyncpg.connect(dsn)
        try:
            for m in discover(("transcoder",)):
                if (m.package, m.number) >= MOVED_BY:
                    continue
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO public.streamflix_migrations (package, number, name) VALUES ($1, $2, $3)",
                    m.package,
                    m.number,
                    m.name,
                )
            with_probe, source_only, neither = (uuid.uuid4() for _ in range(3))
            probe = {"duration_s": 12.5, "streams": [{"codec": "h264"}]}
            await conn.execute(
                """INSERT INTO catalog.titles (id, kind, title, source, probe) VALUES
                     ($1, 'movie', 'With probe', '/in/a.mp4', $4::jsonb),
                     ($2, 'movie', 'Source only', 's3://bucket/b.mkv', NULL),
                     ($3, 'movie', 'Neither', NULL, NULL)""",
                with_probe,
                source_only,
                neither,
                json.dumps(probe),
            )
        finally:
            await conn.close()

        # the move, then whatever the transcoder added after it
        applied = await migrate(dsn)
        assert applied[0] == "transcoder/0003_title_sources"
        assert all(name.startswith("transcoder/") for name in applied)

        conn = await asyncpg.connect(dsn)
        try:
            assert await _source(conn, str(with_probe)) == "/in/a.mp4"
            assert await sources.get_probe(conn, str(with_probe)) == probe
            assert await _source(conn, str(source_only)) == "s3://bucket/b.mkv"
            assert await sources.get_probe(conn, str(source_only)) is None
            assert await conn.fetchval("SELECT count(*) FROM jobs.title_sources") == 2
            # the titles themselves are untouched
            assert await conn.fetchval("SELECT count(*) FROM catalog.titles") == 3
            t = await titles.get_title(conn, str(with_probe))
            assert t.title == "With probe" and t.status == "pending"
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        finally:
            await admin.close()
