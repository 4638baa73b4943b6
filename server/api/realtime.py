"""`GET /api/v1/ws`, the real-time socket: declared here, served by server/realtime/socket.py
(docs/realtime.md)."""

from __future__ import annotations

from aiohttp import web

from server.api.routing import ApiRoutes
from server.realtime import hub, socket

routes = ApiRoutes()


@routes.get(
    "/api/v1/ws",
    summary="The real-time socket (a WebSocket)",
    tag="realtime",
    status=101,
    content={"text/plain": {"type": "string", "description": "the WebSocket protocol of docs/realtime.md"}},
    errors=(400, 403, 429),
    description="Upgrade to a WebSocket, then authenticate with the first message "
    '`{"type": "auth", "token": "<access token>"}` (docs/realtime.md: messages, close codes, limits).',
)
async def websocket(request: web.Request) -> web.StreamResponse:
    return await socket.serve(request)


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.on_shutdown.append(hub.close_all)
