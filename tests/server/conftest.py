"""Fixtures of the origin tests: one hand-written title version in file storage, and a
playback token for it."""

from __future__ import annotations

import pytest

from tests.server.origin_support import new_title_id, presentation, store_in, token_for


@pytest.fixture
async def stored(settings):
    return await store_in(settings, presentation(new_title_id(), "v20240101000000-aaaaaa"))


@pytest.fixture
def token(settings, stored):
    return token_for(settings.secret_key, stored, settings.playback_window_s)
