"""One module per CLI command: `async def run(settings, args) -> int` (the exit code)."""
