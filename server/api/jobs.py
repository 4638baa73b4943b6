"""`GET /api/v1/admin/jobs?title_id=&limit=`: transcode jobs with status, progress, attempts
and last error, newest first; `POST /api/v1/admin/titles/{id}/retry`: a failed title queued
again with fresh attempts (admins only)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from server import keys
from server.api.routing import ApiRoutes, Query, limit_query
from server.http.authn import require_admin
from server.http.errors import ApiError
from server.http.validation import parse_limit, parse_uuid
from transcoder import jobs
from transcoder.retry import retry_title

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
routes = ApiRoutes()


class Job(BaseModel):
    id: str
    title_id: str
    status: str
    progress: float
    attempts: int
    max_attempts: int
    deferrals: int = 0
    error: str | None
    worker_id: str | None = None
    run_after: datetime | None = None
    lease_until: datetime | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class JobList(BaseModel):
    items: list[Job]
    queue_depth: int


@routes.get(
    "/api/v1/admin/jobs",
    summary="Transcode jobs and their progress (admin)",
    tag="admin",
    response=JobList,
    auth="admin",
    errors=(400,),
    query=(Query("title_id", {"type": "string"}, "only this title's jobs"), limit_query(MAX_LIMIT)),
)
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


@routes.post(
    "/api/v1/admin/titles/{title_id}/retry",
    summary="Queue a failed title again, with fresh attempts (admin)",
    tag="admin",
    response=Job,
    status=202,
    auth="admin",
    errors=(404, 409),
)
async def retry(request: web.Request) -> web.Response:
    """202 with the new job; 404 unknown title; 409 `title_not_failed` unless it failed."""
    await require_admin(request)
    settings = request.app[keys.SETTINGS]
    job = await retry_title(
        request.app[keys.PG], request.match_info["title_id"], max_attempts=settings.job_max_attempts
    )
    return web.json_response(job.to_json(), status=202)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
