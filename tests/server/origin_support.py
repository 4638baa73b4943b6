"""Helpers for the origin tests: a title version written by hand (model + fake segment bytes)
into a storage, and a ready catalog row pointing at it. The end-to-end tests use the real
pipeline's `ready_title` instead."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from media import keys as media_keys
from packager.model import Presentation, Rendition, Segment

SEGMENT_TICKS = 4 * 90000


def fake_bytes(name: str, size: int) -> bytes:
    """Deterministic, incompressible-looking bytes (so a Range bug shows in the content)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{name}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass
class StoredVersion:
    title_id: str
    version: str
    presentation: Presentation
    objects: dict[str, bytes]  # name relative to the version -> bytes

    def url(self, name: str, token: str | None = None) -> str:
        path = f"/stream/{self.title_id}/{self.version}/{name}"
        return path if token is None else f"{path}?token={token}"


def presentation(
    title_id: str, version: str, *, segments: int = 3, segment_size: int = 20_000, audio: bool = True
) -> Presentation:
    renditions = [
        Rendition(
            id="v360",
            kind="video",
            codecs="avc1.64001e",
            bandwidth_peak=900_000,
            bandwidth_avg=800_000,
            timescale=90000,
            segments=tuple(Segment(SEGMENT_TICKS, segment_size) for _ in range(segments)),
            width=640,
            height=360,
            frame_rate="25",
        ),
        Rendition(
            id="v720",
            kind="video",
            codecs="avc1.64001f",
            bandwidth_peak=2_500_000,
            bandwidth_avg=2_000_000,
            timescale=90000,
            segments=tuple(Segment(SEGMENT_TICKS, segment_size * 2) for _ in range(segments)),
            width=1280,
            height=720,
            frame_rate="25",
        ),
    ]
    if audio:
        renditions.append(
            Rendition(
                id="a0",
                kind="audio",
                codecs="mp4a.40.2",
                bandwidth_peak=100_000,
                bandwidth_avg=96_000,
                timescale=48000,
                segments=tuple(Segment(4 * 48000, segment_size // 10) for _ in range(segments)),
                language="en",
                name="English",
                channels=2,
                sample_rate=48000,
                default=True,
            )
        )
    return Presentation(
        title_id=title_id,
        version=version,
        duration_s=4.0 * segments,
        segment_target_s=4,
        renditions=tuple(renditions),
    )


async def store_version(storage: Any, p: Presentation) -> StoredVersion:
    objects: dict[str, bytes] = {}
    for r in p.renditions:
        objects[r.init_name] = fake_bytes(f"{p.version}/{r.init_name}", 800)
        for i, seg in enumerate(r.segments):
            name = r.segment_name(r.start_number + i)
            objects[name] = fake_bytes(f"{p.version}/{name}", seg.size)
    for name, data in objects.items():
        await storage.put_bytes(media_keys.object_key(p.title_id, p.version, name), data)
    await storage.put_bytes(media_keys.model_key(p.title_id, p.version), p.to_json().encode())
    return StoredVersion(p.title_id, p.version, p, objects)


async def ready_title_row(conn: Any, version: str, *, title: str = "Origin test") -> str:
    """A catalog row in status ready pointing at `version`; returns its id."""
    from catalog import status, titles

    t = await titles.create_title(conn, kind="movie", title=title, status="processing")
    await status.publish_ready(conn, t.id, version, duration_s=12.0)
    return t.id


def new_title_id() -> str:
    return str(uuid.uuid4())


async def store_in(settings: Any, p: Presentation, *, create_bucket: bool = False) -> StoredVersion:
    """store_version into the storage that `settings` names (its S3 bucket created first
    with `create_bucket`)."""
    from media.backend import open_storage
    from media.storage_s3 import S3Storage

    storage = open_storage(settings.storage_url, settings.s3_endpoint_url)
    try:
        if create_bucket:
            assert isinstance(storage, S3Storage), "only an S3 storage has a bucket to create"
            await storage.create_bucket()
        return await store_version(storage, p)
    finally:
        await storage.close()


def token_for(secret: str, sv: StoredVersion, window_s: int = 3600) -> str:
    """A playback token for `sv`, signed with `secret`."""
    import time

    from auth import playback

    return playback.sign(playback.keyring(secret), sv.title_id, sv.version, time.time(), window_s)[0]
