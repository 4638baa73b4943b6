"""Malformed HTTP over a raw socket to a real server (the stream fast path in front of aiohttp,
as `streamflix serve` runs): a JSON 400 (431 for oversized headers) in the one error shape,
and one INFO line, never an ERROR with a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

STREAM = "/stream/00000000-0000-0000-0000-000000000000/v1/master.m3u8?token=abc"
BIG = "a" * 20000  # over aiohttp's 8190-byte field limit


def head(target: str, *fields: str, method: str = "GET") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n" + "".join(f + "\r\n" for f in fields) + "\r\n"
    ).encode()


CASES = [
    pytest.param(head("/api/v1/auth/login", "Content-Length: abc", method="POST"), 400, id="api-content-length-text"),
    pytest.param(
        head("/api/v1/auth/login", "Content-Length: -1", method="POST"), 400, id="api-content-length-negative"
    ),
    pytest.param(
        head("/api/v1/auth/login", "Content-Length: 1", "Content-Length: 2", method="POST"),
        400,
        id="api-content-length-twice",
    ),
    pytest.param(
        head("/api/v1/auth/login", "Content-Length: 5", "Transfer-Encoding: chunked", method="POST") + b"0\r\n\r\n",
        400,
        id="api-content-length-and-chunked",
    ),
    pytest.param(head("/api/v1/titles", f"X-Big: {BIG}"), 431, id="api-oversized-header"),
    pytest.param(head(STREAM, "Content-Length: abc"), 400, id="stream-content-length-text"),
    pytest.param(
        head(STREAM, "Content-Length: 5", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
        400,
        id="stream-content-length-and-chunked",
    ),
    pytest.param(head(STREAM, f"X-Big: {BIG}"), 431, id="stream-oversized-header"),
    pytest.param(head("/healthz", "Bad Header: x"), 400, id="space-in-field-name"),
    pytest.param(head("/api/v1/titles?q=" + "a" * 70000), 414, id="request-line-over-the-limit"),
]

CODES = {400: "malformed_request", 414: "uri_too_long", 431: "header_fields_too_large"}


async def exchange(host: str, port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)  # the server closes after an error
    finally:
        writer.close()
    top, _, body = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


@pytest.mark.parametrize(("data", "status"), CASES)
async def test_malformed_request_is_a_json_error_and_one_info_line(app_client: Any, caplog: Any, data, status):
    caplog.set_level(logging.DEBUG)
    got, headers, body = await exchange(app_client.server.host, app_client.server.port, data)
    assert got == status, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"}
    assert error["code"] == CODES[status]
    lines = [r for r in caplog.records if r.getMessage().startswith("malformed HTTP request")]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info], caplog.text


async def test_server_still_answers_after_malformed_requests(app_client: Any):
    for param in CASES:
        data = param.values[0]
        assert isinstance(data, bytes)
        await exchange(app_client.server.host, app_client.server.port, data)
    r = await app_client.get("/healthz")
    assert r.status == 200
