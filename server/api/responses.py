"""Response bodies shared by several resource modules, as pydantic models. Handlers build
dicts (the domain objects' `to_json`); these models describe them for the OpenAPI document,
and the schemathesis test checks real answers against that document.

Fields a client relies on are required; the rest are listed as optional, and objects stay
open (no `additionalProperties: false`) so a new field is not a breaking change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class User(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    email: str
    display_name: str
    role: Literal["viewer", "admin"]
    email_verified: bool
    created_at: datetime
    updated_at: datetime


class Title(BaseModel):
    """A movie, series or episode. A series' page adds `seasons`, an episode's `series_title`;
    a recommendation adds `reason`, a search hit on a series `matched_episodes`."""

    id: str
    kind: Literal["movie", "series", "episode"]
    title: str
    year: int | None
    genres: list[str]
    description: str
    status: Literal["pending", "processing", "playable", "ready", "failed"] = Field(
        description="`playable`: the first version is still being encoded but plays (more qualities soon)"
    )
    duration_s: float | None
    failure_reason: str | None = None
    credits: list[dict[str, Any]] = []
    poster_url: str | None = None
    popularity: int = 0
    created_at: datetime | None = None
    published_at: datetime | None = None
    downloads_enabled: bool = Field(True, description="viewers may download it as one MP4 (docs/tracks.md)")
    series_id: str | None = None
    season_number: int | None = None
    episode_number: int | None = None


class TitlePage(BaseModel):
    items: list[Title]
    next: str | None = Field(description="opaque; pass as `cursor` for the next page, null on the last")


class TitleList(BaseModel):
    items: list[Title]
