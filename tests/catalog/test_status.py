"""Each way a title's status moves (catalog.status), from the state it may move from and
from the states it must not."""

from __future__ import annotations

import uuid

import pytest

from catalog import status, titles
from catalog.errors import TitleNotFailed, TitleNotFound
from tests.catalog.fixtures import make_title


async def test_mark_processing_from_pending(pg):
    t = await make_title(pg, ready=False)
    assert await status.mark_processing(pg, t.id)
    assert (await titles.get_title(pg, t.id)).status == "processing"


async def test_mark_processing_clears_an_earlier_failure(pg):
    t = await make_title(pg, ready=False)
    assert await status.mark_failed(pg, t.id, "bad source")
    assert await status.mark_processing(pg, t.id)
    t = await titles.get_title(pg, t.id)
    assert t.status == "processing" and t.failure_reason is None


async def test_a_ready_title_stays_ready_while_it_is_redone(pg):
    t = await make_title(pg, version="v1")
    assert not await status.mark_processing(pg, t.id)
    t = await titles.get_title(pg, t.id)
    assert t.status == "ready" and t.current_version == "v1" and t.playable


async def test_publish_ready_sets_version_and_returns_the_old_one(pg):
    t = await make_title(pg, ready=False)
    await status.mark_processing(pg, t.id)
    assert await status.publish_ready(pg, t.id, "v1", duration_s=42.0) is None
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.current_version, t.duration_s) == ("ready", "v1", 42.0)
    assert t.published_at is not None and t.visible
    assert await status.publish_ready(pg, t.id, "v2", duration_s=43.0) == "v1"
    assert (await titles.get_title(pg, t.id)).current_version == "v2"


async def test_mark_failed_without_a_version(pg):
    t = await make_title(pg, ready=False)
    await status.mark_processing(pg, t.id)
    assert await status.mark_failed(pg, t.id, "source rejected: no video stream")
    t = await titles.get_title(pg, t.id)
    assert t.status == "failed" and t.failure_reason == "source rejected: no video stream"
    assert not t.visible


async def test_mark_failed_keeps_an_older_version_playing(pg):
    t = await make_title(pg, version="v1")
    assert not await status.mark_failed(pg, t.id, "encoder crashed")
    t = await titles.get_title(pg, t.id)
    assert t.status == "ready" and t.current_version == "v1" and t.failure_reason is None


async def test_mark_failed_on_a_deleted_title_is_a_no_op(pg):
    t = await make_title(pg, ready=False)
    await titles.delete_title_tree(pg, t.id)
    assert not await status.mark_failed(pg, t.id, "gone")


async def test_release_to_pending_only_from_processing(pg):
    t = await make_title(pg, ready=False)
    assert not await status.release_to_pending(pg, t.id)  # pending already
    await status.mark_processing(pg, t.id)
    assert await status.release_to_pending(pg, t.id)
    assert (await titles.get_title(pg, t.id)).status == "pending"
    ready = await make_title(pg)
    assert not await status.release_to_pending(pg, ready.id)
    assert (await titles.get_title(pg, ready.id)).status == "ready"
    failed = await make_title(pg, ready=False)
    await status.mark_failed(pg, failed.id, "x")
    assert not await status.release_to_pending(pg, failed.id)
    assert (await titles.get_title(pg, failed.id)).status == "failed"


async def test_retry_failed_moves_a_failed_title_back_to_pending(pg):
    t = await make_title(pg, ready=False)
    assert await status.mark_failed(pg, t.id, "storage: AccessDenied")
    await status.retry_failed(pg, t.id)
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.failure_reason) == ("pending", None)


async def test_retry_failed_refuses_a_title_that_has_not_failed(pg):
    pending = await make_title(pg, ready=False)
    ready = await make_title(pg, version="v1")
    for t, now in ((pending, "pending"), (ready, "ready")):
        with pytest.raises(TitleNotFailed, match=f"is {now}, not failed"):
            await status.retry_failed(pg, t.id)
        assert (await titles.get_title(pg, t.id)).status == now


async def test_retry_failed_on_an_unknown_title(pg):
    with pytest.raises(TitleNotFound):
        await status.retry_failed(pg, str(uuid.uuid4()))
    with pytest.raises(TitleNotFound):
        await status.retry_failed(pg, "not-a-uuid")
