"""The web client's HTTP side, without a browser: the shell for client routes and never for
the API or media, security headers on HTML and static files, vendored player libraries, and
no HTML-string APIs anywhere in the client's code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

STATIC = Path(__file__).resolve().parents[2] / "server" / "static"
REQUIRED_CSP = [
    "default-src 'self'",
    "media-src 'self' blob: data:",
    "worker-src 'self' blob:",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
]


def assert_security_headers(resp: Any) -> None:
    csp = resp.headers["Content-Security-Policy"]
    for directive in REQUIRED_CSP:
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"]


@pytest.mark.parametrize("path", ["/", "/title/123", "/watch/abc", "/search?q=x", "/profile", "/no/such/page"])
async def test_client_routes_answer_the_shell(app_client: Any, path: str) -> None:
    resp = await app_client.get(path)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert '<main id="main"' in await resp.text()
    assert_security_headers(resp)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/nothing",
        "/stream/nothing",
        "/stream/a/b/c.m4s",
        "/static/nope.js",
        "/vendor/nope.js",
    ],
)
async def test_api_media_and_assets_never_get_the_shell(app_client: Any, path: str) -> None:
    resp = await app_client.get(path)
    assert resp.status >= 400
    assert resp.content_type != "text/html"


async def test_only_get_and_head_fall_back(app_client: Any) -> None:
    resp = await app_client.post("/title/123", data=b"")
    assert resp.status in (404, 405)
    resp = await app_client.head("/title/123")
    assert resp.status == 200


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/js/app.js", "text/javascript"),
        ("/static/css/app.css", "text/css"),
        ("/static/icons/icon.svg", "image/svg+xml"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/sw.js", "text/javascript"),
        ("/vendor/hls.min.mjs", "text/javascript"),
        ("/vendor/dash.all.min.js", "text/javascript"),
    ],
)
async def test_static_files(app_client: Any, path: str, content_type: str) -> None:
    resp = await app_client.get(path)
    assert resp.status == 200, f"{path}: {resp.status} (vendor files come from `npm ci` in scripts/setup.sh)"
    assert resp.content_type == content_type
    assert_security_headers(resp)


async def test_service_worker_may_control_the_whole_app(app_client: Any) -> None:
    resp = await app_client.get("/sw.js")
    assert resp.headers["Service-Worker-Allowed"] == "/"
    body = await resp.text()
    # it must leave the API and media alone
    assert "'/api/'" in body and "'/stream/'" in body


@pytest.mark.parametrize(
    "path",
    [
        "/static/../web.py",
        "/static/%2e%2e/web.py",
        "/static/js/%2e%2e/%2e%2e/web.py",
        "/static/.hidden",
        "/static/js/..%2fapp.js",
    ],
)
async def test_static_traversal_is_refused(app_client: Any, path: str) -> None:
    resp = await app_client.get(path)
    assert resp.status == 404 or (resp.status == 200 and resp.content_type == "text/html")
    assert "STATIC_DIR" not in await resp.text()


def test_client_code_builds_no_html_from_strings() -> None:
    """Catalog text reaches the page only as text nodes (a title may be `<img onerror=...>`)."""
    forbidden = re.compile(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|new Function|\beval\(")
    offenders = [
        f"{p.relative_to(STATIC)}:{n}"
        for p in STATIC.rglob("*.js")
        if "vendor" not in p.parts
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if forbidden.search(line)
    ]
    assert offenders == []


def test_service_worker_precaches_every_module() -> None:
    sw = (STATIC / "sw.js").read_text()
    modules = {"/static/" + str(p.relative_to(STATIC)) for p in (STATIC / "js").rglob("*.js")}
    missing = [m for m in sorted(modules) if f"'{m}'" not in sw]
    assert missing == [], "add these to SHELL in server/static/sw.js"
