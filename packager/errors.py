"""Typed packager errors. `code` is the snake_case string `server/http/errors.py` maps to HTTP."""

from __future__ import annotations


class PackagerError(Exception):
    """Base of every packager error: the model cannot be rendered as asked."""

    code = "packager_error"


class InvalidPresentation(PackagerError):
    """The rendition model is impossible to render (a bug upstream, not the viewer's fault)."""

    code = "invalid_presentation"


class RenditionNotFound(PackagerError):
    """A playlist was asked for a rendition id the model does not have (a 404 upstream)."""

    code = "rendition_not_found"


class PresentationIncomplete(PackagerError):
    """The asked-for format cannot describe a version that is still being published."""

    code = "presentation_incomplete"


class InvalidUri(PackagerError):
    """A URI base or query would break the playlist syntax it is written into."""

    code = "invalid_uri"
