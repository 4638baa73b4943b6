"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every `/api/v1` route.

Built from the app itself: each registered `/api/v1` route's declaration
(`server.api.routing.Operation`, next to its handler) and the pydantic models it names, the
request bodies the handlers validate with and the response models that describe their
answers. Nothing is written twice, and a route without a declaration is an error at startup
(`UndocumentedRoute`), not a hole in the document.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.api.routing import ApiRoutes, Operation, operation_of
from server.http.errors import Error

OPENAPI_PATH = "/api/v1/openapi.json"
REF_TEMPLATE = "#/components/schemas/{model}"
# Every route can answer these (the per-IP limit; a dependency down).
ALWAYS = (429, 503)
DESCRIPTIONS = {
    400: "invalid input (details lists field errors)",
    401: "no, bad, expired or revoked credentials",
    403: "not allowed",
    404: "not found",
    409: "conflict, or not ready (an upload: Upload-Offset is not the upload's offset)",
    410: "gone (an upload terminated or expired)",
    412: "precondition failed (an upload: Tus-Resumable missing or unsupported)",
    413: "body over the size limit",
    415: "body is not JSON (an upload: not application/offset+octet-stream)",
    416: "range not satisfiable",
    423: "locked: another request is writing to this upload",
    429: "rate limited (see Retry-After)",
    460: "checksum mismatch (tus: the bytes do not match Upload-Checksum; nothing was stored)",
    503: "a dependency is down (see Retry-After)",
}
_PATH_PARAM = re.compile(r"\{([^}:]+)")


class UndocumentedRoute(RuntimeError):
    """An /api/v1 route registered without an `Operation` (use `server.api.routing.ApiRoutes`)."""


class OpenApiDocument(BaseModel):
    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


def api_operations(app: web.Application) -> list[Operation]:
    """The declaration of every registered /api/v1 route (HEAD mirrors GET); raises
    `UndocumentedRoute` for a route without one, or one declared for another path."""
    out = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith("/api/v1/") or route.method in ("HEAD", "OPTIONS", "*"):
            continue
        op = operation_of(route.handler)
        if op is None or (op.method, op.path) != (route.method.lower(), path):
            raise UndocumentedRoute(
                f"{route.method} {path} has no OpenAPI declaration: register it with "
                "server.api.routing.ApiRoutes (method, path, summary, response model, errors)"
            )
        out.append(op)
    return out


def _models(ops: list[Operation]) -> list[type[BaseModel]]:
    seen: dict[type[BaseModel], None] = {Error: None}
    for op in ops:
        for model in (op.body, op.response):
            if model is not None:
                seen[model] = None
    names: dict[str, type[BaseModel]] = {}
    for model in seen:
        other = names.setdefault(model.__name__, model)
        if other is not model:
            raise ValueError(f"two models named {model.__name__} ({other.__module__}, {model.__module__})")
    return list(seen)


def _operation(op: Operation, refs: dict[type[BaseModel], dict[str, str]]) -> dict[str, Any]:
    codes = set(op.errors) | set(ALWAYS)
    if op.body is not None:
        codes |= {400, 413, 415}
    if op.auth != "none":
        codes.add(401)
    if op.auth == "admin":
        codes.add(403)
    out: dict[str, Any] = {"summary": op.summary, "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    for q in op.query:
        param: dict[str, Any] = {"name": q.name, "in": "query", "required": False, "schema": dict(q.schema)}
        if q.description:
            param["description"] = q.description
        params.append(param)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[op.body]}}}
    if op.auth != "none":
        out["security"] = [{"bearer": []}]
    ok: dict[str, Any] = {"description": "success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": refs[op.response]}}
    elif op.content is not None:
        ok["content"] = {media: {"schema": dict(schema)} for media, schema in op.content.items()}
    responses: dict[str, Any] = {str(op.status): ok}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": DESCRIPTIONS[code],
            "content": {"application/json": {"schema": refs[Error]}},
        }
    out["responses"] = responses
    return out


def build_spec(app: web.Application) -> dict[str, Any]:
    ops = api_operations(app)
    models = _models(ops)
    keyed, top = models_json_schema([(m, "validation") for m in models], ref_template=REF_TEMPLATE)
    refs = {model: keyed[(model, "validation")] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(ops, key=lambda o: (o.path, o.method)):
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "StreamFlix API",
            "version": "1",
            "description": 'Errors are {"error": {"code", "message", "details"?}}. '
            "Authenticated routes take `Authorization: Bearer <access_token>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


SPEC = web.AppKey("openapi_spec", dict)
routes = ApiRoutes()


@routes.get(OPENAPI_PATH, summary="This document", tag="meta", response=OpenApiDocument)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[SPEC])


async def _build_on_startup(app: web.Application) -> None:
    # At startup, not setup: every route module has added its routes by then.
    app[SPEC] = build_spec(app)


def setup(app: web.Application) -> None:
    app.on_startup.append(_build_on_startup)
    app.add_routes(routes)
