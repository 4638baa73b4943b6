"""The player libraries when they are missing (a checkout without `npm ci`, a wheel built
without node_modules): /vendor/* answers 404 and `streamflix serve` says so in one log line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from server import vendor, web
from server.commands import serve


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(web, "VENDOR_ROOT", tmp_path / "vendor")
    monkeypatch.setattr(web, "_REPO_ROOT", tmp_path)


def test_missing_files_are_named_in_one_start_up_line(nowhere: None, caplog: pytest.LogCaptureFixture) -> None:
    assert web.missing_vendor_files() == list(vendor.FILES)
    with caplog.at_level(logging.WARNING, logger="streamflix.serve"):
        serve.warn_missing_player_files()
    (record,) = caplog.records
    message = record.getMessage()
    assert "hls.min.mjs" in message and "dash.all.min.js" in message
    assert "npm ci" in message and "\n" not in message


def test_wheel_copy_is_served_first(nowhere: None, tmp_path: Path) -> None:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "hls.min.mjs").write_text("export default 1;\n")
    assert web.vendor_path("hls.min.mjs") == tmp_path / "vendor" / "hls.min.mjs"
    assert "hls.min.mjs" not in web.missing_vendor_files()


def test_nothing_is_said_when_everything_is_there(caplog: pytest.LogCaptureFixture) -> None:
    # this checkout ran `npm ci` (scripts/setup.sh)
    with caplog.at_level(logging.WARNING, logger="streamflix.serve"):
        serve.warn_missing_player_files()
    assert caplog.records == []


async def test_a_missing_file_answers_404(nowhere: None, aiohttp_client: Any) -> None:
    from aiohttp import test_utils
    from aiohttp import web as aioweb

    app = aioweb.Application()
    web.setup(app)
    client = await aiohttp_client(test_utils.TestServer(app))  # the web routes alone
    resp = await client.get("/vendor/hls.min.mjs")
    assert resp.status == 404
    assert "npm ci" in await resp.text()
