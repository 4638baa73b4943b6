"""URLs the API writes into its JSON. The domain packages know which poster a title shows
(its tag); only the server knows where posters are served."""

from __future__ import annotations

API_PREFIX = "/api/v1"


def poster_url(title_id: str, tag: str) -> str:
    """`GET /api/v1/titles/{id}/poster`, versioned by the poster's tag: a new poster is a new
    URL, so the route may let it be cached for long."""
    return f"{API_PREFIX}/titles/{title_id}/poster?v={tag}"
