"""The web client: a single-page app served from `server/static/` without a build step.

- `GET /` and any unknown non-API path (`/title/...`, `/watch/...`) answer `index.html`, so the
  client's history routing survives a reload; `/api/*`, `/stream/*` and the asset prefixes never
  do (a missing asset or API route stays a 404, not an HTML page a player would choke on).
- `/static/*` are the app's own modules, CSS and icons; `/vendor/*` the player libraries of
  server/vendor.py's table (never a CDN): from `server/static/vendor/` in an installed wheel
  (setup.py's build step copies them there), else from a checkout's `node_modules/` (`npm ci`).
  A missing one answers 404, and `missing_vendor_files()` lets start-up say so.
- `/sw.js` sits at the root because a service worker only controls pages under its own path.
- Every response here carries the security headers: a CSP that allows only this origin,
  `nosniff`, and a referrer policy.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from server import vendor

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = STATIC_DIR / "index.html"
VENDOR_ROOT = Path(__file__).resolve().parent / vendor.VENDOR_DIR
_REPO_ROOT = Path(__file__).resolve().parent.parent

# The app's own origin only. `blob:` for media and workers because hls.js and dash.js feed
# the <video> through MediaSource object URLs and hls.js runs its demuxer in a blob worker.
# `data:` for media because hls.js gives each subtitle track a `<track src="data:,WEBVTT">`
# (the cues are added from script; the element only makes the TextTrack).
CSP = "; ".join(
    [
        "default-src 'self'",
        "media-src 'self' blob: data:",
        "worker-src 'self' blob:",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

# Paths that belong to someone else or to assets: never answered with index.html.
RESERVED_PREFIXES = ("/api/", "/stream/", "/static/", "/vendor/")
RESERVED_EXACT = {"/api", "/stream", "/healthz", "/readyz", "/metrics", "/sw.js"}

# Shell files may change on deploy: revalidate (cheap 304 via ETag/Last-Modified).
SHELL_CACHE = "no-cache"
VENDOR_CACHE = "public, max-age=86400"

mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("image/svg+xml", ".svg")


def vendor_path(name: str) -> Path | None:
    """Where a player library file lives on this machine: the wheel's copy, else a checkout's
    node_modules; None when it is in neither (or is not one of ours)."""
    spec = vendor.FILES.get(name)
    if spec is None:
        return None
    package, rel = spec
    for candidate in (VENDOR_ROOT / name, _REPO_ROOT / "node_modules" / package / rel):
        if candidate.is_file():
            return candidate
    return None


def missing_vendor_files() -> list[str]:
    """The player library files this install cannot serve (the web player fails without them)."""
    return [name for name in vendor.FILES if vendor_path(name) is None]


def _file(path: Path, cache_control: str) -> web.FileResponse:
    content_type, _ = mimetypes.guess_type(path.name)
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = cache_control
    if content_type:
        headers["Content-Type"] = content_type + ("; charset=utf-8" if _is_text(content_type) else "")
    return web.FileResponse(path, headers=headers)


def _is_text(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in (
        "application/json",
        "application/manifest+json",
        "image/svg+xml",
    )


def index_response() -> web.FileResponse:
    return _file(INDEX, SHELL_CACHE)


async def index(request: web.Request) -> web.StreamResponse:
    return index_response()


async def static_file(request: web.Request) -> web.StreamResponse:
    rel = request.match_info["path"]
    root = STATIC_DIR.resolve()
    path = (root / rel).resolve()
    # No `..`, no absolute paths, no dotfiles, no escaping the static root through symlinks.
    if root not in path.parents or any(part.startswith(".") for part in Path(rel).parts) or not path.is_file():
        raise web.HTTPNotFound()
    return _file(path, SHELL_CACHE)


async def vendor_file(request: web.Request) -> web.StreamResponse:
    path = vendor_path(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text=f"player library missing: {vendor.HOW_TO_GET}")
    return _file(path, VENDOR_CACHE)


async def service_worker(request: web.Request) -> web.StreamResponse:
    resp = _file(STATIC_DIR / "sw.js", "no-cache")
    resp.headers["Service-Worker-Allowed"] = "/"
    return resp


async def manifest(request: web.Request) -> web.StreamResponse:
    return _file(STATIC_DIR / "manifest.webmanifest", SHELL_CACHE)


async def favicon(request: web.Request) -> web.StreamResponse:
    return _file(STATIC_DIR / "icons" / "icon.svg", SHELL_CACHE)


def is_app_path(path: str) -> bool:
    """True for paths the client router owns (they get index.html on a direct load)."""
    if path in RESERVED_EXACT or path.startswith(RESERVED_PREFIXES):
        return False
    return True


@web.middleware
async def spa_fallback(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown GET/HEAD paths outside the API and media answer the app shell (history routing)."""
    if request.method not in ("GET", "HEAD") or not is_app_path(request.path):
        return await handler(request)
    exc = request.match_info.http_exception
    if isinstance(exc, web.HTTPNotFound):
        return index_response()
    return await handler(request)


def setup(app: web.Application) -> None:
    app.router.add_get("/", index, name="web_index")
    app.router.add_get("/static/{path:.+}", static_file, name="web_static")
    app.router.add_get("/vendor/{name}", vendor_file, name="web_vendor")
    app.router.add_get("/sw.js", service_worker, name="web_sw")
    app.router.add_get("/manifest.webmanifest", manifest, name="web_manifest")
    app.router.add_get("/favicon.ico", favicon, name="web_favicon")
    app.middlewares.append(spa_fallback)
