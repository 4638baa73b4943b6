"""Route declarations: every `/api/v1` handler is registered together with what the OpenAPI
document says about it, next to the handler, in its resource module:

    routes = ApiRoutes()

    @routes.get("/api/v1/me", summary="The signed-in user", tag="accounts", response=User,
                auth="user", errors=(404,))
    async def me(request: web.Request) -> web.Response: ...

    def setup(app: web.Application) -> None:
        app.add_routes(routes)

`server/api/openapi.py` walks the app's routes and builds the document from these
declarations; an `/api/v1` route without one stops the app from starting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.web_routedef import AbstractRouteDef
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Auth = Literal["none", "user", "admin"]
_OPERATION_ATTR = "__api_operation__"


@dataclass(frozen=True)
class Query:
    """One query parameter as the document shows it (handlers parse it themselves)."""

    name: str
    schema: Mapping[str, Any]
    description: str = ""


def limit_query(maximum: int) -> Query:
    """`?limit=`, as `server.http.validation.parse_limit(..., maximum=maximum)` reads it."""
    return Query("limit", {"type": "integer", "minimum": 1, "maximum": maximum})


@dataclass(frozen=True)
class Operation:
    """What one route takes and answers. `response` is the success body's model (handlers may
    build dicts; the model describes them); `content` stands in for non-JSON answers (media
    type -> JSON schema). A 204 has neither; any other status needs exactly one."""

    method: str
    path: str
    summary: str
    tag: str
    status: int = 200
    response: type[BaseModel] | None = None
    content: Mapping[str, Mapping[str, Any]] | None = None
    body: type[BaseModel] | None = None
    auth: Auth = "none"
    errors: tuple[int, ...] = ()
    query: tuple[Query, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        has_body = self.response is not None or self.content is not None
        if self.status == 204 and has_body:
            raise TypeError(f"{self.method} {self.path}: a 204 has no response body")
        if self.status != 204 and (self.response is None) == (self.content is None):
            raise TypeError(f"{self.method} {self.path}: declare the {self.status} response: a model or content")


def operation_of(handler: object) -> Operation | None:
    """The declaration a handler was registered with, if any."""
    op = getattr(handler, _OPERATION_ATTR, None)
    return op if isinstance(op, Operation) else None


class ApiRoutes:
    """A route table whose entries carry their `Operation`; `app.add_routes(routes)` adds them."""

    def __init__(self) -> None:
        self._table = web.RouteTableDef()

    def __iter__(self) -> Iterator[AbstractRouteDef]:
        return iter(self._table)

    def route(self, method: str, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        op = Operation(method.lower(), path, **declaration)

        def register(handler: Handler) -> Handler:
            setattr(handler, _OPERATION_ATTR, op)
            self._table.route(method.upper(), path)(handler)
            return handler

        return register

    def get(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **declaration)

    def post(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **declaration)

    def put(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **declaration)

    def patch(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **declaration)

    def delete(self, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **declaration)
