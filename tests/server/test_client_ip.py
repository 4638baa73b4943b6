"""The client address behind trusted proxies (server/http/clientip.py): X-Forwarded-For believed
only from configured proxies, read right to left; per-IP rate limits and the access log use
it."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets

import pytest

from server.app import create_app
from server.http.clientip import resolve
from server.settings import ConfigError, Settings, parse_networks
from tests.server.accounts_util import unique_email

LB = parse_networks(("127.0.0.1", "10.0.0.0/8", "2001:db8::/32"))


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy that forwarded nothing
        ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("127.0.0.1", ["198.51.100.1, 203.0.113.9"], "203.0.113.9"),  # the client-sent part is not believed
        ("127.0.0.1", ["203.0.113.9, 10.1.2.3"], "203.0.113.9"),  # a chain of trusted proxies
        ("127.0.0.1", ["203.0.113.9", "10.1.2.3"], "203.0.113.9"),  # the same, as two field lines
        ("127.0.0.1", ["10.9.9.9, 10.1.2.3"], "10.9.9.9"),  # all trusted: the leftmost
        ("127.0.0.1", ["203.0.113.9, not-an-ip"], "127.0.0.1"),  # garbage from the proxy's side
        ("127.0.0.1", ["not-an-ip, 10.1.2.3"], "10.1.2.3"),
        ("127.0.0.1", ["2001:db8::5, 2001:db8::1"], "2001:db8::5"),
        ("127.0.0.1", ["2001:db8:1::7"], "2001:db8:1::7"),
        ("203.0.113.50", ["198.51.100.1"], "203.0.113.50"),  # not from a proxy: header ignored
    ],
)
def test_resolve(peer, xff, expected):
    assert resolve(peer, xff, LB) == expected


def test_no_trusted_proxies_means_the_peer():
    assert resolve("127.0.0.1", ["203.0.113.9"], ()) == "127.0.0.1"


def test_settings_parse_and_refuse():
    s = Settings.load(env={"STREAMFLIX_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1 ,::1"})
    assert s.trusted_proxies == ("10.0.0.0/8", "127.0.0.1", "::1")
    for bad in ("10.0.0.0/33", "example.com", "10.0.0.1-10.0.0.9"):
        with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
            Settings.load(env={"STREAMFLIX_TRUSTED_PROXIES": bad})


def _limited(settings, **changes):
    return dataclasses.replace(
        settings,
        redis_prefix=settings.redis_prefix + secrets.token_hex(3) + ":",
        rate_limit_login_per_min=2,
        rate_limit_login_account_per_min=0,
        **changes,
    )


async def _login_codes(client, xff: str, n: int) -> list[int]:
    codes = []
    for _ in range(n):
        r = await client.post(
            "/api/v1/auth/login",
            json={"email": unique_email(), "password": "wrong password!"},
            headers={"X-Forwarded-For": xff},
        )
        codes.append(r.status)
    return codes


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(aiohttp_client, settings, caplog):
    client = await aiohttp_client(create_app(_limited(settings, trusted_proxies=("127.0.0.1",))))
    caplog.set_level(logging.INFO, logger="streamflix.access")
    assert await _login_codes(client, "203.0.113.9", 3) == [401, 401, 429]
    assert await _login_codes(client, "198.51.100.7", 2) == [401, 401]  # another viewer, own bucket
    # A viewer cannot escape its bucket by prepending a made-up address.
    assert await _login_codes(client, "192.0.2.1, 203.0.113.9", 1) == [429]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "streamflix.access"]
    assert {line["remote"] for line in lines if line["path"] == "/api/v1/auth/login"} == {"203.0.113.9", "198.51.100.7"}


async def test_without_trusted_proxies_the_header_is_ignored(aiohttp_client, settings):
    client = await aiohttp_client(create_app(_limited(settings)))
    assert await _login_codes(client, "203.0.113.9", 2) == [401, 401]
    assert await _login_codes(client, "198.51.100.7", 1) == [429]  # same peer, same bucket


async def test_stream_fast_path_logs_the_forwarded_client(aiohttp_client, settings, stored, token, caplog):
    client = await aiohttp_client(create_app(dataclasses.replace(settings, trusted_proxies=("127.0.0.0/8",))))
    caplog.set_level(logging.INFO, logger="streamflix.access")
    url = stored.url("v360/1.m4s", token)
    r = await client.get(url, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert r.status == 200 and await r.read() == stored.objects["v360/1.m4s"]
    r = await client.get(url)  # a request the proxy forwarded without the header
    assert r.status == 200
    assert client.server.handler.answered == 2 and client.server.handler.handed_over == 0
    remotes = [json.loads(rec.getMessage())["remote"] for rec in caplog.records if rec.name == "streamflix.access"]
    assert remotes == ["203.0.113.9", "127.0.0.1"]
