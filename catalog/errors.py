"""Typed catalog errors; `server/http/errors.py` maps them to HTTP."""

from __future__ import annotations


class CatalogError(Exception):
    code = "catalog_error"


class TitleNotFound(CatalogError):
    code = "title_not_found"


class TitleNotReady(CatalogError):
    code = "title_not_ready"


class TitleNotFailed(CatalogError):
    """A retry was asked for a title that has not failed (pending, processing or ready)."""

    code = "title_not_failed"


class DuplicateEpisode(CatalogError):
    code = "duplicate_episode"


class InvalidTitle(CatalogError):
    code = "invalid_title"


class InvalidQuery(CatalogError):
    """A bad browse or search parameter (limit, genre, year, q too long...)."""

    code = "invalid_query"


class InvalidCursor(InvalidQuery):
    code = "invalid_cursor"


class InvalidHistory(CatalogError):
    code = "invalid_history"


class InvalidPoster(CatalogError):
    code = "invalid_poster"


class PosterTooLarge(InvalidPoster):
    code = "poster_too_large"


class PosterNotFound(CatalogError):
    code = "poster_not_found"


class InvalidWebhook(CatalogError):
    code = "invalid_webhook"


class WebhookNotFound(CatalogError):
    code = "webhook_not_found"


class DeliveryNotFound(CatalogError):
    code = "delivery_not_found"


class InvalidNotification(CatalogError):
    code = "invalid_notification"


class CommentNotFound(CatalogError):
    code = "comment_not_found"
