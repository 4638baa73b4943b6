"""Request input: bodies (`body = await parse_body(request, Model)` with a pydantic model),
ids (`parse_uuid`) and page sizes (`parse_limit`). A float field is declared `FiniteNumber`
(no inf, no integer too large for a float).

415 when the body is not JSON, 413 over `settings.max_body_bytes`, 400 `invalid_json` for
malformed JSON, 400 `invalid_body` with one entry per field error in `error.details`
(`{"field", "message", "type"}`; the rejected value is never echoed: it may be a password).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from server import keys
from server.http.errors import ApiError

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """Base of request bodies: unknown fields are errors (a typo or a `role` smuggled into
    a registration must not pass silently); no type coercion ("1" is not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _storable(value: str) -> str:
    # Postgres text cannot hold NUL, and a lone surrogate (legal in JSON "\ud800") cannot be
    # encoded as UTF-8: both would otherwise fail deep inside as a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


SafeStr = Annotated[str, AfterValidator(_storable)]


def _finite(value: float | int) -> float | int:
    # JSON has no limit on a number's size: 1e400 parses as inf, and 400 nines as an int no
    # float can hold (float() raises OverflowError). Neither is a position, a duration or a
    # price: refuse them here rather than deep inside as a 500.
    try:
        ok = math.isfinite(value)
    except OverflowError:
        ok = False
    if not ok:
        raise ValueError("must be a finite number")
    return value


# Every float field of a request body: a finite JSON number (an integer is taken as it is).
FiniteNumber = Annotated[float | int, AfterValidator(_finite)]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")


async def read_json(request: web.Request) -> Any:
    limit = request.app[keys.SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)  # before reading a byte of it
    ctype = request.content_type
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)")
    try:
        raw = await request.read()  # aiohttp stops at client_max_size (a chunked body too)
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    try:
        # RFC 8259 8.1: JSON is UTF-8; NaN/Infinity are not JSON; very deep nesting is an
        # attack on the parser's recursion, not data.
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        message = err["msg"].removeprefix("Value error, ")
        out.append({"field": loc, "message": message, "type": err["type"]})
    return out


async def parse_body(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = field_errors(exc)
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5])
        raise ApiError(400, "invalid_body", f"invalid request body: {summary}", details=details) from None


def parse_uuid(text: str, error: Exception) -> str:
    """The canonical form of a UUID from a path or query; `error` when it is not one (each
    route says what a malformed id means to it: a 404 for a path, a 400 for a filter)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise error from None


_INTEGER = re.compile(r"-?[0-9]{1,18}")


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """`?limit=`: absent or empty means `default`. Out of range is a 400 with the range in the
    message, not silently clamped: a client asking for 10^9 rows has a bug it should hear about."""
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, "invalid_query", f"limit must be a whole number between 1 and {maximum}")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise ApiError(400, "invalid_query", f"limit must be between 1 and {maximum} (got {raw})")
    return value
