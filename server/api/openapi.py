"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every `/api/v1` route.

Request bodies come from the pydantic models the handlers validate with, so the spec and
the validation cannot drift. Each area's routes are listed here; a route added elsewhere
must be described too: `tests/server/test_accounts_openapi.py` fails for any registered
`/api/v1` route missing from the spec, and schemathesis checks the app against it. A module
may also describe its own routes with `OPERATIONS[("get", "/api/v1/x")] = operation(...)`.
"""
from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server.api import auth_models as am

OPENAPI_PATH = "/api/v1/openapi.json"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
_DESCRIPTIONS = {
    400: "invalid input (details lists field errors)",
    401: "no, bad, expired or revoked credentials",
    403: "not allowed",
    404: "not found",
    409: "conflict, or not ready",
    413: "body over the size limit",
    415: "body is not JSON",
    416: "range not satisfiable",
    429: "rate limited (see Retry-After)",
    503: "a dependency is down (see Retry-After)",
}

# ---- schemas ------------------------------------------------------------------------------

NULLABLE_STR = {"type": ["string", "null"]}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
            }
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "email", "display_name", "role", "email_verified", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "email": {"type": "string"},
            "display_name": {"type": "string"},
            "role": {"enum": ["viewer", "admin"]},
            "email_verified": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "TokenPair": {
        "type": "object",
        "required": ["access_token", "refresh_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "refresh_token": {"type": "string"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer", "description": "access token lifetime, seconds"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["id", "created_at", "last_seen_at", "user_agent", "ip", "current"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "created_at": {"type": "string", "format": "date-time"},
            "last_seen_at": {"type": "string", "format": "date-time"},
            "user_agent": {"type": "string"},
            "ip": {"type": "string"},
            "current": {"type": "boolean"},
        },
    },
    "Accepted": {"type": "object", "required": ["status"], "properties": {"status": {"const": "accepted"}}},
    "Title": {
        "type": "object",
        "required": ["id", "kind", "title", "year", "genres", "description", "status", "duration_s"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["movie", "series", "episode"]},
            "title": {"type": "string"},
            "year": {"type": ["integer", "null"]},
            "genres": {"type": "array", "items": {"type": "string"}},
            "description": {"type": "string"},
            "status": {"enum": ["pending", "processing", "ready", "failed"]},
            "duration_s": {"type": ["number", "null"]},
        },
    },
    "TitlePage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Title"}}, "next": NULLABLE_STR},
    },
    "TitleList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Title"}}},
    },
    "HistoryList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["title", "position_s", "updated_at"],
                    "properties": {
                        "title": {"$ref": "#/components/schemas/Title"},
                        "position_s": {"type": "number"},
                        "updated_at": {"type": "string"},
                    },
                },
            }
        },
    },
    "Playback": {
        "type": "object",
        "required": ["hls_url", "dash_url", "expires_at"],
        "properties": {"hls_url": {"type": "string"}, "dash_url": {"type": "string"}, "expires_at": {"type": "string"}},
    },
    "Suggestions": {
        "type": "object",
        "required": ["suggestions"],
        "properties": {"suggestions": {"type": "array", "items": {"type": "string"}}},
    },
    "Object": {"type": "object"},
}


# ---- operations ---------------------------------------------------------------------------


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _model_ref(model: type[BaseModel]) -> dict[str, str]:
    name = model.__name__
    if name not in SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, definition in schema.pop("$defs", {}).items():
            SCHEMAS.setdefault(sub, definition)
        SCHEMAS[name] = schema
    return _schema_ref(name)


def _other_model(module: str, name: str) -> dict[str, str]:
    """Another area's body model, when it exists; a plain object otherwise."""
    try:
        model = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return _schema_ref("Object")
    return _model_ref(model)


def operation(
    summary: str,
    *,
    tag: str,
    ok: int = 200,
    ok_schema: str | None = None,
    auth: bool = False,
    admin: bool = False,
    body: type[BaseModel] | dict[str, str] | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[int, ...] = (),
    headers: dict[str, Any] | None = None,
    ok_content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    codes = set(errors) | {429, 503}
    if body is not None:
        codes |= {400, 413, 415}
    if auth or admin:
        codes.add(401)
    if admin:
        codes.add(403)
    op: dict[str, Any] = {"summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = params
    if body is not None:
        ref = body if isinstance(body, dict) else _model_ref(body)
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
    if auth or admin:
        op["security"] = [{"bearer": []}]
    ok_response: dict[str, Any] = {"description": "success"}
    if ok_content is not None:
        ok_response["content"] = ok_content
    elif ok_schema is not None:
        ok_response["content"] = {"application/json": {"schema": _schema_ref(ok_schema)}}
    if headers:
        ok_response["headers"] = headers
    responses: dict[str, Any] = {str(ok): ok_response}
    for code in sorted(codes):
        responses[str(code)] = {"description": _DESCRIPTIONS[code], "content": {"application/json": {"schema": ERROR_REF}}}
    op["responses"] = responses
    return op


def _path_param(name: str, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    p = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        p["description"] = description
    return p


LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 100})
LIMIT50 = _query("limit", {"type": "integer", "minimum": 1, "maximum": 50})
CURSOR = _query("cursor", {"type": "string"}, "opaque; the `next` of the previous page")
TITLE_ID = _path_param("title_id")


def _accounts() -> dict[tuple[str, str], dict[str, Any]]:
    a = "accounts"
    return {
        ("post", "/api/v1/auth/register"): operation(
            "Create an account (a verification mail follows)", tag=a, ok=201, ok_schema="User",
            body=am.RegisterBody, errors=(409,)),
        ("post", "/api/v1/auth/login"): operation(
            "Sign in: a new session", tag=a, ok_schema="TokenPair", body=am.LoginBody, errors=(401,)),
        ("post", "/api/v1/auth/refresh"): operation(
            "Rotate the refresh token; reusing an old one revokes the session", tag=a,
            ok_schema="TokenPair", body=am.RefreshBody, errors=(401,)),
        ("post", "/api/v1/auth/logout"): operation("Revoke this session", tag=a, ok=204, auth=True),
        ("post", "/api/v1/auth/verify-email/request"): operation(
            "Send a new verification link", tag=a, ok=202, ok_schema="Accepted", auth=True, errors=(404,)),
        ("post", "/api/v1/auth/verify-email"): operation(
            "Confirm the address with a link's token", tag=a, ok_content={"application/json": {"schema": {
                "type": "object", "required": ["email_verified"], "properties": {"email_verified": {"const": True}}}}},
            body=am.VerifyEmailBody),
        ("post", "/api/v1/auth/password-reset/request"): operation(
            "Mail a reset link if the address has an account (always 202)", tag=a, ok=202,
            ok_schema="Accepted", body=am.ResetRequestBody),
        ("post", "/api/v1/auth/password-reset"): operation(
            "Set a new password with a link's token; revokes every session", tag=a, ok=204,
            body=am.ResetBody, errors=(404,)),
        ("get", "/api/v1/me"): operation("The signed-in user", tag=a, ok_schema="User", auth=True, errors=(404,)),
        ("patch", "/api/v1/me"): operation(
            "Change display name and/or password (with the current one; signs out other sessions)",
            tag=a, ok_schema="User", auth=True, body=am.ProfilePatch, errors=(403, 404)),
        ("delete", "/api/v1/me"): operation(
            "Delete the account, its sessions, favorites and history (password required)", tag=a,
            ok=204, auth=True, body=am.DeleteAccountBody, errors=(403, 404)),
        ("get", "/api/v1/me/sessions"): operation(
            "Signed-in devices", tag=a, auth=True, ok_content={"application/json": {"schema": {
                "type": "object", "required": ["items"],
                "properties": {"items": {"type": "array", "items": _schema_ref("Session")}}}}}),
        ("delete", "/api/v1/me/sessions/{session_id}"): operation(
            "Sign a device out", tag=a, ok=204, auth=True, params=[_path_param("session_id")], errors=(404,)),
        ("get", "/api/v1/admin/users"): operation(
            "Users, oldest first", tag="admin", admin=True, params=[LIMIT, CURSOR], errors=(400,),
            ok_content={"application/json": {"schema": {
                "type": "object", "required": ["items", "next"],
                "properties": {"items": {"type": "array", "items": _schema_ref("User")}, "next": NULLABLE_STR}}}}),
        ("patch", "/api/v1/admin/users/{user_id}"): operation(
            "Change a user's role", tag="admin", admin=True, ok_schema="User", body=am.RoleBody,
            params=[_path_param("user_id")], errors=(404, 409)),
        ("get", OPENAPI_PATH): operation("This document", tag="meta", ok_schema="Object"),
    }


def _catalog() -> dict[tuple[str, str], dict[str, Any]]:
    c = "catalog"
    title_create = _other_model("server.api.catalog", "TitleCreate")
    title_patch = _other_model("server.api.catalog", "TitlePatch")
    history = _other_model("server.api.library", "HistoryReport")
    # At most 200 characters *after* NFKC and dropping control characters: not a maxLength.
    q = _query("q", {"type": "string"})
    return {
        ("get", "/api/v1/titles"): operation(
            "Browse titles", tag=c, ok_schema="TitlePage", errors=(400, 401),
            params=[_query("kind", {"type": "string"}), _query("genre", {"type": "string"}), CURSOR, LIMIT]),
        ("post", "/api/v1/titles"): operation(
            "Create a title (admin)", tag=c, ok=201, ok_schema="Title", admin=True, body=title_create,
            errors=(404, 409)),
        ("get", "/api/v1/titles/{title_id}"): operation(
            "One title (a series lists its seasons and episodes)", tag=c, ok_schema="Title",
            params=[TITLE_ID], errors=(401, 404)),
        ("patch", "/api/v1/titles/{title_id}"): operation(
            "Edit a title (admin)", tag=c, ok_schema="Title", admin=True, body=title_patch,
            params=[TITLE_ID], errors=(404, 409)),
        ("delete", "/api/v1/titles/{title_id}"): operation(
            "Delete a title (admin)", tag=c, ok=204, admin=True, params=[TITLE_ID], errors=(404, 409)),
        ("get", "/api/v1/titles/{title_id}/poster"): operation(
            "The title's poster image", tag=c, params=[TITLE_ID], errors=(401, 404),
            ok_content={"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}),
        ("post", "/api/v1/titles/{title_id}/poster"): operation(
            "Upload a poster (admin)", tag=c, ok=201, ok_schema="Title", admin=True, params=[TITLE_ID],
            errors=(400, 404, 413, 415)),
        ("get", "/api/v1/search"): operation(
            "Search titles", tag=c, ok_schema="TitleList", params=[q, LIMIT50], errors=(400, 401)),
        ("get", "/api/v1/search/suggest"): operation(
            "Search suggestions", tag=c, ok_schema="Suggestions", params=[q], errors=(400, 401)),
        ("get", "/api/v1/admin/search-stats"): operation(
            "Search analytics (admin)", tag="admin", ok_schema="Object", admin=True, params=[LIMIT],
            errors=(400,)),
        ("put", "/api/v1/me/favorites/{title_id}"): operation(
            "Add a favorite", tag=c, ok=204, auth=True, params=[TITLE_ID], errors=(404, 409)),
        ("delete", "/api/v1/me/favorites/{title_id}"): operation(
            "Remove a favorite", tag=c, ok=204, auth=True, params=[TITLE_ID], errors=(404,)),
        ("get", "/api/v1/me/favorites"): operation(
            "Favorites", tag=c, ok_schema="TitleList", auth=True, params=[LIMIT], errors=(400,)),
        ("put", "/api/v1/me/history/{title_id}"): operation(
            "Report the playback position", tag=c, ok=204, auth=True, body=history, params=[TITLE_ID],
            errors=(404, 409)),
        ("get", "/api/v1/me/history"): operation(
            "Watch history", tag=c, ok_schema="HistoryList", auth=True, params=[LIMIT], errors=(400,)),
        ("get", "/api/v1/me/continue-watching"): operation(
            "Started, unfinished titles", tag=c, ok_schema="HistoryList", auth=True, errors=(400,)),
        ("get", "/api/v1/me/recommendations"): operation(
            "Recommendations", tag=c, ok_schema="TitleList", auth=True, params=[LIMIT50], errors=(400,)),
    }


def _origin_and_jobs() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("post", "/api/v1/titles/{title_id}/playback"): operation(
            "Signed HLS and DASH URLs for a ready title", tag="playback", ok_schema="Playback", auth=True,
            params=[TITLE_ID], errors=(404, 409)),
        ("get", "/api/v1/admin/jobs"): operation(
            "Transcode jobs and their progress (admin)", tag="admin", ok_schema="Object", admin=True,
            params=[_query("title_id", {"type": "string"}), _query("limit", {"type": "integer"})],
            errors=(400,)),
    }


# Extra operations other modules describe themselves: {(method, path): operation(...)}.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {}


def build_spec() -> dict[str, Any]:
    ops = {**_accounts(), **_catalog(), **_origin_and_jobs(), **OPERATIONS}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in sorted(ops.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "StreamFlix API",
            "version": "1",
            "description": "Errors are {\"error\": {\"code\", \"message\", \"details\"?}}. "
            "Authenticated routes take `Authorization: Bearer <access_token>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


SPEC = web.AppKey("openapi_spec", dict)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app[SPEC])


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every registered /api/v1 route (HEAD mirrors GET)."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/") and route.method not in ("HEAD", "OPTIONS", "*"):
            out.add((route.method.lower(), path))
    return out


async def _build_on_startup(app: web.Application) -> None:
    # At startup, not setup: every route module has been imported and added its OPERATIONS.
    app[SPEC] = build_spec()


def setup(app: web.Application) -> None:
    app.on_startup.append(_build_on_startup)
    app.router.add_get(OPENAPI_PATH, openapi_json)
