from tests.catalog.fixtures import admin_headers, genre, viewer_headers  # noqa: F401
