"""Typed catalog errors; `server/errors.py` maps them to HTTP."""
from __future__ import annotations


class CatalogError(Exception):
    code = "catalog_error"


class TitleNotFound(CatalogError):
    code = "title_not_found"


class TitleNotReady(CatalogError):
    code = "title_not_ready"


class DuplicateEpisode(CatalogError):
    code = "duplicate_episode"


class InvalidTitle(CatalogError):
    code = "invalid_title"
