"""Resumable uploads over tus 1.0: a real tus client (tuspy) and raw requests against the real
app, on local storage and on S3 (moto over HTTP): resume after a cut-off request, from another
server process, checksums, termination, expiry, and every bad request's status."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from auth.users import create_user
from media.backend import open_storage
from media.storage import MIN_PART_BYTES
from media.storage_s3 import S3Storage
from server.app import create_app
from server.settings import Settings
from transcoder import uploads

PASSWORD = "correct horse battery"
TUS = {"Tus-Resumable": "1.0.0"}
BASE = "/api/v1/uploads/tus"


def meta(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


async def admin_headers(client: Any, pg: asyncpg.Connection) -> dict[str, str]:
    email = f"uploader-{secrets.token_hex(4)}@example.com"
    await create_user(pg, email=email, password=PASSWORD, role="admin")
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


async def create(client: Any, auth: dict[str, str], length: int, **fields: str) -> str:
    headers = {**TUS, **auth, "Upload-Length": str(length), "Upload-Metadata": meta(**(fields or {"title": "Up"}))}
    r = await client.post(BASE, headers=headers)
    assert r.status == 201, await r.text()
    assert r.headers["Upload-Offset"] == "0" and "Upload-Expires" in r.headers
    return r.headers["Location"]


async def patch(client: Any, auth: dict[str, str], location: str, offset: int, data: bytes, **extra: str) -> Any:
    headers = {**TUS, **auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream", **extra}
    return await client.patch(location, data=data, headers=headers)


async def offset_of(client: Any, auth: dict[str, str], location: str) -> int:
    r = await client.head(location, headers={**TUS, **auth})
    assert r.status == 200, r.status
    assert r.headers["Cache-Control"] == "no-store"
    return int(r.headers["Upload-Offset"])


async def stored_source(settings: Settings, title_id: str) -> bytes:
    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        (info,) = [i for i in await storage.list(f"sources/{title_id}/") if "original" in i.key]
        return b"".join([c async for c in storage.stream(info.key)])
    finally:
        await storage.close()


async def test_options_says_what_is_supported(app_client: Any) -> None:
    r = await app_client.options(BASE)
    assert r.status == 204
    assert r.headers["Tus-Version"] == "1.0.0" and r.headers["Tus-Resumable"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "termination",
        "checksum",
    }
    assert int(r.headers["Tus-Max-Size"]) > 0 and "sha1" in r.headers["Tus-Checksum-Algorithm"]


async def _upload_in_pieces(client: Any, auth: dict[str, str], settings: Settings, pg: asyncpg.Connection) -> None:
    """A source bigger than a part, sent in uneven pieces, one of them cut off, the last one
    checksummed; completes into a title whose stored source is the same bytes."""
    data = os.urandom(MIN_PART_BYTES + 3 * 1024 * 1024 + 123)
    location = await create(client, auth, len(data), title="Pieces", filename="pieces.mp4", year="2024")
    # 1 MiB: kept as the tail (less than a part)
    r = await patch(client, auth, location, 0, data[: 1 << 20])
    assert r.status == 204, await r.text()
    assert r.headers["Upload-Offset"] == str(1 << 20)
    # a wrong offset is a 409 and changes nothing
    r = await patch(client, auth, location, 5, data[5:10])
    assert r.status == 409 and (await r.json())["error"]["code"] == "upload_offset_mismatch"
    # 5 MiB more: tail + this become part 1
    r = await patch(client, auth, location, 1 << 20, data[1 << 20 : 6 << 20])
    assert r.status == 204 and r.headers["Upload-Offset"] == str(6 << 20)
    # a checksum mismatch stores nothing (460)
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    r = await patch(client, auth, location, 6 << 20, data[6 << 20 : 7 << 20], **{"Upload-Checksum": f"sha1 {wrong}"})
    assert r.status == 460 and (await r.json())["error"]["code"] == "checksum_mismatch"
    assert await offset_of(client, auth, location) == 6 << 20
    # the rest, checksummed: completes
    rest = data[6 << 20 :]
    good = base64.b64encode(hashlib.sha256(rest).digest()).decode()
    r = await patch(client, auth, location, 6 << 20, rest, **{"Upload-Checksum": f"sha256 {good}"})
    assert r.status == 204, await r.text()
    assert r.headers["Upload-Offset"] == str(len(data))
    upload_id = location.rsplit("/", 1)[1]
    r = await client.get(f"/api/v1/uploads/{upload_id}/status", headers=auth)
    assert r.status == 200
    info = await r.json()
    assert info["status"] == "completed" and info["received"] == len(data)
    title_id = info["title_id"]
    row = await pg.fetchrow("SELECT title, year, status FROM catalog.titles WHERE id = $1", title_id)
    assert (row["title"], row["year"], row["status"]) == ("Pieces", 2024, "pending")
    assert await pg.fetchval("SELECT count(*) FROM jobs.transcode_jobs WHERE title_id = $1", title_id) == 1
    assert await stored_source(settings, title_id) == data
    # complete: more bytes are refused
    r = await patch(client, auth, location, len(data), b"x")
    assert r.status == 409 and (await r.json())["error"]["code"] == "upload_complete"


async def test_pieces_on_local_storage(app_client: Any, settings: Settings, pg: asyncpg.Connection) -> None:
    auth = await admin_headers(app_client, pg)
    await _upload_in_pieces(app_client, auth, settings, pg)


async def test_pieces_on_s3(aiohttp_client: Any, settings: Settings, s3_server: str, pg: asyncpg.Connection) -> None:
    s3 = dataclasses.replace(settings, storage_url=f"s3://up-{secrets.token_hex(4)}/media", s3_endpoint_url=s3_server)
    storage = open_storage(s3.storage_url, s3.s3_endpoint_url)
    assert isinstance(storage, S3Storage)
    await storage.create_bucket()
    await storage.close()
    client = await aiohttp_client(create_app(s3))
    await _upload_in_pieces(client, await admin_headers(client, pg), s3, pg)


async def test_resumed_on_another_server_process_with_a_real_tus_client(
    aiohttp_client: Any, settings: Settings, pg: asyncpg.Connection, tmp_path: Path
) -> None:
    """tuspy sends half through one app, the rest through another (state in Postgres, bytes in
    storage), and creation-with-upload works too."""
    from tusclient import client as tus

    data = os.urandom(3 * 1024 * 1024 + 7)
    source = tmp_path / "film.mp4"
    source.write_bytes(data)
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    auth = await admin_headers(first, pg)

    def send(url: str, stop_after: int | None, location: str | None) -> str:
        c = tus.TusClient(url, headers=auth)
        uploader = c.uploader(
            str(source),
            chunk_size=1024 * 1024,
            metadata={"title": "Resumed", "filename": "film.mp4"},
            url=location,
        )
        if stop_after is None:
            uploader.upload()
        else:
            uploader.upload(stop_at=stop_after)
        return str(uploader.url)

    url1 = str(first.make_url(BASE))
    location = await asyncio.to_thread(send, url1, 1024 * 1024, None)
    path = location[location.index(BASE) :]
    assert await offset_of(first, auth, path) == 1024 * 1024
    url2 = str(second.make_url(BASE))
    await asyncio.to_thread(send, url2, None, str(second.make_url(path)))
    r = await second.get(f"/api/v1/uploads/{path.rsplit('/', 1)[1]}/status", headers=auth)
    info = await r.json()
    assert info["status"] == "completed"
    assert await stored_source(settings, info["title_id"]) == data

    # creation-with-upload: the whole file in the POST
    headers = {
        **TUS,
        **auth,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(title="At once"),
        "Content-Type": "application/offset+octet-stream",
    }
    r = await first.post(BASE, data=data, headers=headers)
    assert r.status == 201 and r.headers["Upload-Offset"] == str(len(data))


async def test_a_cut_off_request_keeps_what_arrived(app_client: Any, pg: asyncpg.Connection) -> None:
    auth = await admin_headers(app_client, pg)
    data = os.urandom(2 * 1024 * 1024)
    location = await create(app_client, auth, len(data))

    async def body() -> Any:
        yield data[: 1024 * 1024]
        await asyncio.sleep(0.05)
        raise ConnectionResetError("the client went away")

    with pytest.raises(Exception):  # noqa: B017 (the client's own error, whatever aiohttp calls it)
        await patch(app_client, auth, location, 0, body())
    for _ in range(50):  # the server finishes storing what it got
        got = await offset_of(app_client, auth, location)
        if got:
            break
        await asyncio.sleep(0.1)
    assert got == 1024 * 1024
    r = await patch(app_client, auth, location, got, data[got:])
    assert r.status == 204 and r.headers["Upload-Offset"] == str(len(data))


async def test_a_chunked_body_is_stored_as_sent(app_client: Any, settings: Settings, pg: asyncpg.Connection) -> None:
    """A streaming client's PATCH (chunked transfer coding), in uneven pieces down to one
    byte: the server takes the chunks as they arrive, and stores every byte in order."""
    auth = await admin_headers(app_client, pg)
    data = os.urandom(300 * 1024 + 5)
    location = await create(app_client, auth, len(data), title="Chunked")
    cuts = [0, 1, 4096, 70_000, 70_001, 200_000, len(data)]

    async def body() -> Any:
        for start, end in zip(cuts, cuts[1:], strict=False):
            yield data[start:end]

    r = await patch(app_client, auth, location, 0, body())
    assert r.status == 204, await r.text()
    assert r.headers["Upload-Offset"] == str(len(data))
    r = await app_client.get(f"/api/v1/uploads/{location.rsplit('/', 1)[1]}/status", headers=auth)
    info = await r.json()
    assert info["status"] == "completed"
    assert await stored_source(settings, info["title_id"]) == data


async def test_termination_and_expiry(app_client: Any, settings: Settings, pg: asyncpg.Connection) -> None:
    auth = await admin_headers(app_client, pg)
    location = await create(app_client, auth, 100)
    assert (await patch(app_client, auth, location, 0, b"x" * 10)).status == 204
    r = await app_client.delete(location, headers={**TUS, **auth})
    assert r.status == 204
    r = await app_client.head(location, headers={**TUS, **auth})
    assert r.status == 410
    r = await patch(app_client, auth, location, 10, b"y")
    assert r.status == 410

    # expiry: past it, 410 at once; the sweep drops its bytes
    location = await create(app_client, auth, 100)
    assert (await patch(app_client, auth, location, 0, b"z" * 10)).status == 204
    upload_id = location.rsplit("/", 1)[1]
    await pg.execute("UPDATE jobs.uploads SET expires_at = now() - interval '1 second' WHERE id = $1", upload_id)
    assert (await app_client.head(location, headers={**TUS, **auth})).status == 410
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    storage = open_storage(settings.storage_url)
    try:
        assert await uploads.sweep_expired(pool, storage) >= 1
        title_id = str(await pg.fetchval("SELECT title_id FROM jobs.uploads WHERE id = $1", upload_id))
        assert await storage.list(f"sources/{title_id}/") == []
        assert await storage.list_incomplete(f"sources/{title_id}/") == []
    finally:
        await pool.close()
        await storage.close()
    assert await pg.fetchval("SELECT status FROM jobs.uploads WHERE id = $1", upload_id) == "expired"


async def test_bad_requests(app_client: Any, settings: Settings, pg: asyncpg.Connection) -> None:
    auth = await admin_headers(app_client, pg)
    ok = {**TUS, **auth, "Upload-Length": "10", "Upload-Metadata": meta(title="x")}

    async def post(headers: dict[str, str]) -> tuple[int, str]:
        r = await app_client.post(BASE, headers=headers)
        body = await r.json() if r.status >= 400 else {}
        return r.status, body.get("error", {}).get("code", "")

    assert (await post({**ok, "Tus-Resumable": "0.2.2"}))[0] == 412
    assert (await post({k: v for k, v in ok.items() if k != "Tus-Resumable"}))[0] == 412
    assert await post({**ok, "Upload-Length": "-1"}) == (400, "invalid_upload")
    assert await post({**ok, "Upload-Length": "ten"}) == (400, "invalid_upload")
    assert await post({**ok, "Upload-Length": str(settings.max_source_bytes + 1)}) == (413, "source_too_large")
    assert await post({**ok, "Upload-Metadata": "title !!notbase64"}) == (400, "invalid_upload")
    assert await post({**ok, "Upload-Metadata": meta(year="1999")}) == (400, "invalid_upload")  # no title
    assert await post({**ok, "Upload-Metadata": meta(title="x", year="soon")}) == (400, "invalid_upload")
    assert await post({**ok, "Upload-Defer-Length": "1"}) == (400, "invalid_upload")
    assert (await post({**TUS, "Upload-Length": "10"}))[0] == 401

    location = await create(app_client, auth, 10)
    r = await app_client.patch(
        location, data=b"abc", headers={**TUS, **auth, "Upload-Offset": "0", "Content-Type": "text/plain"}
    )
    assert r.status == 415
    r = await patch(app_client, auth, location, 0, b"x" * 11)
    assert r.status == 400 and "more than" in (await r.json())["error"]["message"]
    assert await offset_of(app_client, auth, location) == 0  # nothing kept
    r = await patch(app_client, auth, location, 0, b"abc", **{"Upload-Checksum": "crc32 AAAA"})
    assert r.status == 400
    r = await app_client.head(BASE + "/not-a-uuid", headers={**TUS, **auth})
    assert r.status == 404

    # another admin's upload is not found; a viewer is refused; a key needs the upload scope
    other = await admin_headers(app_client, pg)
    assert (await app_client.head(location, headers={**TUS, **other})).status == 404
    assert (await patch(app_client, other, location, 0, b"abc")).status == 404
    r = await app_client.post(
        "/api/v1/admin/api-keys", json={"name": "reader", "scopes": ["read", "catalog:write"]}, headers=auth
    )
    reader = {"Authorization": f"Bearer {(await r.json())['key']}"}
    r = await app_client.post(BASE, headers={**ok, **reader})
    assert r.status == 403 and "'upload'" in (await r.json())["error"]["message"]
    r = await app_client.post("/api/v1/admin/api-keys", json={"name": "up", "scopes": ["upload"]}, headers=auth)
    uploader = {"Authorization": f"Bearer {(await r.json())['key']}"}
    assert (await app_client.post(BASE, headers={**ok, **uploader})).status == 201
    # a revoked key stops at once
    key_id = (await r.json())["id"]
    assert (await app_client.delete(f"/api/v1/admin/api-keys/{key_id}", headers=auth)).status == 204
    assert (await app_client.post(BASE, headers={**ok, **uploader})).status == 401


async def test_the_storage_sweep_spares_live_uploads(
    app_client: Any, settings: Settings, pg: asyncpg.Connection
) -> None:
    """The hourly sweep drops incomplete writes older than an hour: never a live upload's,
    which may pause for a day."""
    from transcoder import gc

    auth = await admin_headers(app_client, pg)
    location = await create(app_client, auth, 20)
    assert (await patch(app_client, auth, location, 0, b"a" * 10)).status == 204
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    storage = open_storage(settings.storage_url)
    try:
        await gc.sweep(pool, storage, max_age_s=0)
    finally:
        await pool.close()
        await storage.close()
    r = await patch(app_client, auth, location, 10, b"b" * 10)
    assert r.status == 204, await r.text()
    info = await (await app_client.get(f"/api/v1/uploads/{location.rsplit('/', 1)[1]}/status", headers=auth)).json()
    assert info["status"] == "completed"
    assert await stored_source(settings, info["title_id"]) == b"a" * 10 + b"b" * 10


async def test_a_direct_upload_url_works_once_without_an_account(app_client: Any, pg: asyncpg.Connection) -> None:
    auth = await admin_headers(app_client, pg)
    r = await app_client.post(
        "/api/v1/uploads", json={"title": "From the field", "year": 2025, "genres": ["news"]}, headers=auth
    )
    assert r.status == 201, await r.text()
    made = await r.json()
    url = made["upload_url"]
    assert url.startswith(BASE + "?direct=") and r.headers["Cache-Control"] == "no-store"

    data = os.urandom(300_000)
    # no Authorization: the URL is the credential; the title's metadata is the one it was made with
    headers = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta(title="Hijacked", filename="clip.mov")}
    r = await app_client.post(url, headers=headers)
    assert r.status == 201, await r.text()
    location = r.headers["Location"]
    assert "?direct=" in location
    r = await app_client.patch(
        location,
        data=data,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert r.status == 204, await r.text()

    r = await app_client.get(f"/api/v1/uploads/direct/{made['id']}", headers=auth)
    assert r.status == 200
    status = await r.json()
    assert status["upload"]["status"] == "completed"
    row = await pg.fetchrow(
        "SELECT title, year, genres FROM catalog.titles WHERE id = $1", status["upload"]["title_id"]
    )
    assert (row["title"], row["year"], list(row["genres"])) == ("From the field", 2025, ["news"])

    # once only; an unknown token is a 404, an expired unused one a 410
    assert (await app_client.post(url, headers=headers)).status == 409
    assert (await app_client.post(BASE + "?direct=nope", headers=headers)).status == 404
    r = await app_client.post("/api/v1/uploads", json={"title": "Late"}, headers=auth)
    late = await r.json()
    await pg.execute(
        "UPDATE jobs.direct_uploads SET expires_at = now() - interval '1 second' WHERE id = $1", late["id"]
    )
    assert (await app_client.post(late["upload_url"], headers=headers)).status == 410
    # the direct upload is its creator's
    other = await admin_headers(app_client, pg)
    assert (await app_client.get(f"/api/v1/uploads/direct/{made['id']}", headers=other)).status == 404
    # bad bodies
    for body in ({"title": ""}, {"title": "x", "expires_in_s": 5}, {"title": "x", "kind": "series"}, {"year": 2000}):
        assert (await app_client.post("/api/v1/uploads", json=body, headers=auth)).status == 400, body


async def test_an_upload_whose_completion_failed_completes_on_the_next_head(
    app_client: Any, settings: Settings, pg: asyncpg.Connection, tmp_path: Path
) -> None:
    """Every byte stored, then the completion met an outage (the state such a request leaves):
    the client's HEAD, which sees offset == length and would send nothing more, completes it."""
    auth = await admin_headers(app_client, pg)
    data = os.urandom(4096)
    location = await create(app_client, auth, len(data), title="Finished late")
    upload_id = location.rsplit("/", 1)[1]
    row = await pg.fetchrow("SELECT storage_key, write_id FROM jobs.uploads WHERE id = $1", upload_id)
    part = tmp_path / "part"
    part.write_bytes(data)
    storage = open_storage(settings.storage_url)
    try:
        tag = await storage.put_part(row["storage_key"], row["write_id"], 1, part)
    finally:
        await storage.close()
    await pg.execute(
        "UPDATE jobs.uploads SET received = length, parts = $2::jsonb WHERE id = $1",
        upload_id,
        __import__("json").dumps([[1, tag, len(data)]]),
    )
    assert await offset_of(app_client, auth, location) == len(data)
    info = await (await app_client.get(f"/api/v1/uploads/{upload_id}/status", headers=auth)).json()
    assert info["status"] == "completed"
    assert await stored_source(settings, info["title_id"]) == data
    assert await pg.fetchval("SELECT title FROM catalog.titles WHERE id = $1", info["title_id"]) == "Finished late"
