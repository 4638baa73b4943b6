"""Each way a title's status moves (catalog.status), from the state it may move from and
from the states it must not."""

from __future__ import annotations

import uuid

import asyncpg
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


# ---- playable: the first version plays while it is still being encoded --------------------


async def _processing(pg):
    t = await make_title(pg, ready=False)
    assert await status.mark_processing(pg, t.id)
    return t


async def test_mark_playable_points_a_new_title_at_its_first_version(pg):
    t = await _processing(pg)
    assert await status.mark_playable(pg, t.id, "v1", duration_s=42.0)
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.current_version, t.duration_s) == ("playable", "v1", 42.0)
    assert t.published_at is not None and t.visible and t.playable
    # from pending too (a worker may publish before its processing mark is seen)
    pending = await make_title(pg, ready=False)
    assert await status.mark_playable(pg, pending.id, "v1", duration_s=1.0)
    assert (await titles.get_title(pg, pending.id)).status == "playable"


async def test_mark_playable_leaves_a_title_that_already_has_a_version(pg):
    ready = await make_title(pg, version="v1")
    assert not await status.mark_playable(pg, ready.id, "v2", duration_s=1.0)
    t = await titles.get_title(pg, ready.id)
    assert (t.status, t.current_version) == ("ready", "v1")
    playable = await _processing(pg)
    assert await status.mark_playable(pg, playable.id, "v1", duration_s=1.0)
    assert not await status.mark_playable(pg, playable.id, "v2", duration_s=1.0)  # once only
    assert (await titles.get_title(pg, playable.id)).current_version == "v1"
    failed = await make_title(pg, ready=False)
    await status.mark_failed(pg, failed.id, "x")
    assert not await status.mark_playable(pg, failed.id, "v1", duration_s=1.0)
    assert (await titles.get_title(pg, failed.id)).status == "failed"
    assert not await status.mark_playable(pg, str(uuid.uuid4()), "v1", duration_s=1.0)


async def test_a_playable_title_is_not_demoted_by_processing_or_release(pg):
    t = await _processing(pg)
    await status.mark_playable(pg, t.id, "v1", duration_s=10.0)
    assert not await status.mark_processing(pg, t.id)
    assert not await status.release_to_pending(pg, t.id)
    assert not await status.mark_failed(pg, t.id, "another job failed")  # it still plays v1
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.current_version, t.failure_reason) == ("playable", "v1", None)


async def test_publish_ready_completes_the_playable_version(pg):
    t = await _processing(pg)
    await status.mark_playable(pg, t.id, "v1", duration_s=10.0)
    published = (await titles.get_title(pg, t.id)).published_at
    # the same version completed: nothing replaced, nothing to clean up
    assert await status.publish_ready(pg, t.id, "v1", duration_s=10.04) is None
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.current_version, t.duration_s) == ("ready", "v1", 10.04)
    assert t.published_at == published and t.visible


async def test_publish_ready_of_another_version_replaces_the_playable_one(pg):
    t = await _processing(pg)
    await status.mark_playable(pg, t.id, "v1", duration_s=10.0)
    assert await status.publish_ready(pg, t.id, "v2", duration_s=10.0) == "v1"
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.current_version) == ("ready", "v2")


async def test_fail_progressive_drops_the_version_that_never_completed(pg):
    t = await _processing(pg)
    await status.mark_playable(pg, t.id, "v1", duration_s=10.0)
    assert not await status.fail_progressive(pg, t.id, "v0", "encoder crashed")  # not its version
    assert await status.fail_progressive(pg, t.id, "v1", "encoder crashed")
    t = await titles.get_title(pg, t.id)
    assert (t.status, t.current_version, t.failure_reason) == ("failed", None, "encoder crashed")
    assert not t.visible and not t.playable
    # a failed title can be retried, and play again
    await status.retry_failed(pg, t.id)
    assert await status.mark_playable(pg, t.id, "v2", duration_s=10.0)


async def test_fail_progressive_leaves_ready_titles_alone(pg):
    ready = await make_title(pg, version="v1")
    assert not await status.fail_progressive(pg, ready.id, "v1", "late failure")
    assert (await titles.get_title(pg, ready.id)).status == "ready"
    assert not await status.fail_progressive(pg, str(uuid.uuid4()), "v1", "gone")


async def test_the_status_check_allows_playable_only_among_known_statuses(pg):
    t = await make_title(pg, ready=False)
    assert titles.STATUSES == ("pending", "processing", "playable", "ready", "failed")
    with pytest.raises(asyncpg.CheckViolationError, match="titles_status_check"):
        await pg.execute("UPDATE catalog.titles SET status = 'encoding' WHERE id = $1", uuid.UUID(t.id))
