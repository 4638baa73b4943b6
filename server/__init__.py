"""The aiohttp application, its routes and middlewares, and the `streamflix` CLI."""
