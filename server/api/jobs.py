"""`GET /api/v1/admin/jobs?title_id=&limit=`: transcode jobs with status, progress, attempts
and last error, newest first (admins only)."""
from __future__ import annotations

from aiohttp import web

from server import keys
from server.http.authn import require_admin
from server.http.errors import ApiError
from server.http.validation import parse_limit, parse_uuid
from transcoder import jobs

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
routes = web.RouteTableDef()


@routes.get("/api/v1/admin/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    await require_admin(request)
    title_id = request.query.get("title_id") or None
    if title_id is not None:
        title_id = parse_uuid(title_id, ApiError(400, "invalid_query", "title_id must be a title id (a UUID)"))
    limit = parse_limit(request.query.get("limit"), default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    async with request.app[keys.PG].acquire() as conn:
        items = await jobs.list_jobs(conn, title_id=title_id, limit=limit)
        depth = await jobs.queue_depth(conn)
    return web.json_response({"items": [j.to_json() for j in items], "queue_depth": depth})


def setup(app: web.Application) -> None:
    app.add_routes(routes)
